#!/usr/bin/env bash
# Builds the binaries `scripts/gpu_check.sh` runs and packs them into `.devbin/`, stripped and
# xz-compressed, for a GPU machine without Rust: build here, carry `.devbin` (and the Vulkan
# loader) with the run. `--no-xz` leaves them uncompressed (gpu_check.sh's own build).
# `--fusion` adds `rnn-bench-fusion`, the bench built with Burn's fusion feature (a second build
# of Burn, ≈ 15 min on 2 cores; ≈ 13 MB more packed, which a 64 MiB carry may not hold).
set -euo pipefail
cd "$(dirname "$0")/.."
xz=1 fusion=0
for arg in "$@"; do
  case "$arg" in
    --no-xz) xz=0 ;;
    --fusion) fusion=1 ;;
    *) echo "unknown argument: $arg (expected --no-xz, --fusion)" >&2; exit 2 ;;
  esac
done
if [ "$fusion" = 1 ]; then
  cargo build -p rnn-bench --features fusion
  cp target/debug/rnn-bench target/rnn-bench-fusion
fi
cargo test --workspace --no-run
cargo build --workspace --bins
rm -rf .devbin && mkdir -p .devbin
for t in parity engines finite_diff; do
  f=$(ls -t target/debug/deps/"$t"-* | grep -v '\.d$' | head -1)
  cp "$f" .devbin/"$t"
done
cp target/debug/rnn-bench target/debug/mnist_birnn .devbin/
[ "$fusion" = 1 ] && cp target/rnn-bench-fusion .devbin/
strip .devbin/*
[ "$xz" = 0 ] || xz -T2 -9e .devbin/*
realpath . >.devbin/root
du -sh .devbin
