#!/usr/bin/env bash
# The GPU checks in one prepared run, for a machine with an NVIDIA GPU (Vulkan for wgpu, CUDA for
# the PyTorch peer), sized for a short lease (≈ 10–15 min on 16 cores):
#   1. the dev-profile build the test suite uses (dependencies at opt-level 3);
#   2. the parity grid, the engine agreement and the finite-difference tests through the fused
#      GPU op on the real GPU (wgpu);
#   3. `rnn-bench` on wgpu — our fused op, our composed path, burn-nn — against PyTorch + cuDNN,
#      and the same cases on flex for the CPU side;
#   4. `mnist_birnn` epoch times on the GPU and on the CPU (two epochs of 12,800 images each).
# Everything it prints also lands in $OUT (default target/gpu-check).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-target/gpu-check}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1

echo "== $(date -u) $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
  || pip install torch
time cargo build --workspace --tests

echo "== parity through the GPU op (wgpu)"
cargo test --workspace --test parity --test engines --test finite_diff -- wgpu 2>&1 | grep -E "^test |test result"

echo "== bench: wgpu (fused, composed, burn-nn) vs PyTorch + cuDNN"
target/debug/rnn-bench --backend wgpu --reference --torch-device cuda \
  --filter A --filter A-bi --filter B --filter C --filter D --filter E --out "$OUT/bench-wgpu"
echo "== bench: flex vs PyTorch CPU"
target/debug/rnn-bench --backend flex --filter A --filter A-bi --filter B --filter C --filter D --filter E \
  --out "$OUT/bench-flex"

echo "== mnist_birnn epochs: GPU, then CPU"
for backend in wgpu flex; do
  target/debug/mnist_birnn --backend "$backend" --epochs 2 --limit 12800 --quiet 2>&1 | grep -E "^epoch|Testing|backend"
done
echo "== done $(date -u)"
