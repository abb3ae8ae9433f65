#!/usr/bin/env bash
# Builds the binaries `scripts/gpu_check.sh` runs and packs them into `.devbin/`, stripped and
# xz-compressed, for a GPU machine without Rust: build here, carry `.devbin` (and the Vulkan
# loader) with the run. `--no-xz` leaves them uncompressed (gpu_check.sh's own build).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --no-run
cargo build --workspace --bins
rm -rf .devbin && mkdir -p .devbin
for t in parity engines finite_diff; do
  f=$(ls -t target/debug/deps/"$t"-* | grep -v '\.d$' | head -1)
  cp "$f" .devbin/"$t"
done
cp target/debug/rnn-bench target/debug/mnist_birnn .devbin/
strip .devbin/*
[ "${1:-}" = --no-xz ] || xz -T2 -9e .devbin/*
realpath . >.devbin/root
du -sh .devbin
