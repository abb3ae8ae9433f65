#!/usr/bin/env bash
# The GPU checks in one prepared run, for a machine with an NVIDIA GPU (Vulkan for wgpu, CUDA for
# the PyTorch peer), sized for a short lease (≈ 9 min of runs on 16 cores):
#   1. `rnn-bench` on wgpu — our fused op, our composed path, burn-nn — against PyTorch + cuDNN,
#      then our fused op again with its time loops per step (`RNN_GPU_LOOP=per-step`),
#      persistent with 1 batch row per cube (`persistent:1`; the default is 16) and with
#      lavapipe's tiling (`persistent:16:4`: 4 vectors of features per unit, where a 32-wide
#      plane gets 1 at H = 128), and with the input projected inside the persistent loop
#      (`RNN_GPU_INPUT=in-loop`, lavapipe's default; a GPU projects with one matmul), and
#      training with the weight gradients summed in our kernel (`RNN_GPU_WEIGHT_GRADS=kernel`,
#      lavapipe's default; a GPU sums them with Burn's matmuls);
#   2. the parity grid, the engine agreement and the finite-difference tests through the fused
#      GPU op on the real GPU (wgpu);
#   3. `rnn-bench` on flex against PyTorch CPU on every thread, two rounds (the CPU side of the
#      same machine);
#   4. `mnist_birnn` epoch times on the GPU and on the CPU (the embedded 5,000-digit sample);
#   5. when `.devbin/` holds it (`gpu_pack.sh --fusion`), the wgpu bench again built with Burn's
#      fusion feature.
# Each stage has its own time limit and a failing stage does not stop the next.
#
# The binaries come from `.devbin/` (`scripts/gpu_pack.sh`): packed elsewhere and carried, for a
# machine without Rust, or built here first when `.devbin/` is empty.
# Everything it prints also lands in $OUT (default target/gpu-check).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-target/gpu-check}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1

echo "== $(date -u) $(nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"
if [ ! -f .devbin/root ]; then
  python3 -c "import torch" 2>/dev/null || pip install torch
  time scripts/gpu_pack.sh --no-xz || exit 1
fi
BIN=/tmp/devbin
rm -rf "$BIN" && mkdir -p "$BIN"
for f in .devbin/*; do
  case "$f" in
    */root) ;;
    *.xz) xz -dc "$f" >"$BIN/$(basename "$f" .xz)" ;;
    *) cp "$f" "$BIN/" ;;
  esac
done
chmod +x "$BIN"/*
# The binaries were built in $PACKED_ROOT and find their fixtures and scripts there.
PACKED_ROOT=$(cat .devbin/root)
if [ ! -e "$PACKED_ROOT" ]; then
  mkdir -p "$(dirname "$PACKED_ROOT")" && ln -s "$(realpath .)" "$PACKED_ROOT"
elif [ "$(realpath "$PACKED_ROOT")" != "$(realpath .)" ]; then
  echo "warning: $PACKED_ROOT is another folder; the tests read their fixtures there"
fi
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
CASES=(--filter A --filter A-bi --filter B --filter C --filter D --filter E)

echo "== bench: wgpu (fused, composed, burn-nn) vs PyTorch + cuDNN"
timeout 220 "$BIN/rnn-bench" --backend wgpu --reference --torch-device cuda "${CASES[@]}" \
  --out "$OUT/bench-wgpu" || echo "(bench wgpu: exit $?)"
for time_loop in per-step persistent:1 persistent:16:4; do
  echo "== bench: wgpu, our fused op with RNN_GPU_LOOP=$time_loop"
  RNN_GPU_LOOP=$time_loop timeout 50 "$BIN/rnn-bench" --backend wgpu --only ours --no-torch \
    "${CASES[@]}" --out "$OUT/bench-wgpu-$time_loop" || echo "(bench $time_loop: exit $?)"
done
echo "== bench: wgpu, our fused op with RNN_GPU_INPUT=in-loop"
RNN_GPU_INPUT=in-loop timeout 50 "$BIN/rnn-bench" --backend wgpu --only ours --no-torch \
  "${CASES[@]}" --out "$OUT/bench-wgpu-in-loop" || echo "(bench in-loop: exit $?)"
echo "== bench: wgpu, our fused op's training with RNN_GPU_WEIGHT_GRADS=kernel"
RNN_GPU_WEIGHT_GRADS=kernel timeout 40 "$BIN/rnn-bench" --backend wgpu --only ours --no-torch \
  --mode train "${CASES[@]}" --out "$OUT/bench-wgpu-wgrad-kernel" || echo "(bench kernel: exit $?)"

echo "== parity through the GPU op (wgpu)"
# The GPU's defaults, each loop, and lavapipe's products (the projection and the weight
# gradients in our kernels).
for setting in "" RNN_GPU_LOOP=per-step RNN_GPU_LOOP=persistent:2:4 \
  "RNN_GPU_INPUT=in-loop RNN_GPU_WEIGHT_GRADS=kernel"; do
  for t in parity engines finite_diff; do
    # `$setting` unquoted: zero, one or two assignments for `env`.
    # shellcheck disable=SC2086
    env $setting timeout 60 "$BIN/$t" wgpu 2>&1 \
      | grep -E "^test |test result|panicked|rror" || echo "($t, ${setting:-defaults}: exit $?)"
  done
done

echo "== bench: flex vs PyTorch CPU, every thread (two paired rounds: each ratio's spread)"
timeout 180 "$BIN/rnn-bench" --backend flex --rounds 2 "${CASES[@]}" --out "$OUT/bench-flex" \
  || echo "(bench flex: exit $?)"

echo "== mnist_birnn epochs: GPU, then CPU"
for backend in wgpu flex; do
  start=$SECONDS
  timeout 45 "$BIN/mnist_birnn" --backend "$backend" --dataset mnist --epochs 2 --quiet 2>&1 \
    | grep -E "^epoch|Testing|backend|rror"
  echo "$backend: $((SECONDS - start)) s wall"
done

if [ -x "$BIN/rnn-bench-fusion" ]; then
  echo "== bench: wgpu under Burn's fusion (fused, composed, burn-nn), no PyTorch"
  timeout 150 "$BIN/rnn-bench-fusion" --backend wgpu --reference --no-torch "${CASES[@]}" \
    --out "$OUT/bench-wgpu-fusion" || echo "(bench fusion: exit $?)"
fi
echo "== done $(date -u)"
