#!/usr/bin/env bash
# Builds what scripts/gpu-check.sh runs on a GPU machine that has PyTorch but no
# Rust: a `--features tch` binary (stripped) and the bundled plugins as prebuilt
# libraries, in gpu-bundle/ (git-ignored).
#
#   TORCH_VENV=/path/to/venv-with-torch scripts/gpu-bundle.sh
#
# Build against the torch version the GPU machine has (e.g. PyPI's torch==2.11.0,
# CUDA 13): tch 0.22 expects 2.9.0, so LIBTORCH_BYPASS_VERSION_CHECK=1 is set.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${TORCH_VENV:?set TORCH_VENV to a Python environment with the target torch installed}
export PATH="$VENV/bin:$PATH" LIBTORCH_USE_PYTORCH=1 LIBTORCH_BYPASS_VERSION_CHECK=1
TARGET=${CARGO_TARGET_DIR:-target-tch}
CARGO_TARGET_DIR="$TARGET" cargo build --release --features tch
# The plugins do not depend on LibTorch: the default build's are the same.
cargo build --release -p probdropblock -p dropblock -p dropout -p dropout2d -p droppath \
  -p dropblock1d -p probdropblock1d -p drophead
# The native-op checks (tests/native_ops.rs), which gpu-check.sh runs against
# LibTorch CUDA there.
TEST_BIN=$(CARGO_TARGET_DIR="$TARGET" cargo test --release --features tch --test native_ops --no-run 2>&1 |
  sed -n 's/.*Executable.*(\(.*native_ops-[0-9a-f]*\)).*/\1/p')
rm -rf gpu-bundle && mkdir -p gpu-bundle/plugins
cp "$TARGET/release/probdrop-tui" gpu-bundle/
cp "$TEST_BIN" gpu-bundle/native_ops
strip gpu-bundle/native_ops
strip gpu-bundle/probdrop-tui
for p in probdropblock dropblock dropout dropout2d droppath dropblock1d probdropblock1d drophead; do
  cp "target/release/lib$p.so" gpu-bundle/plugins/
  strip "gpu-bundle/plugins/lib$p.so"
done
# scripts/gpu-compare.sh's data: the 15,000 training images its experiment
# uses and the whole test set, cut from data/fashion-mnist/
# (scripts/fetch-fashion-mnist.sh), 11 MB where the full set is 30 MB.
if [ -f data/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  python3 data/fashion-mnist-subset/cut.py --source data/fashion-mnist \
    --out gpu-bundle/fashion-mnist --train 15000 --test 10000
  cp data/fashion-mnist-subset/LICENSE gpu-bundle/fashion-mnist/
fi
readelf -d gpu-bundle/probdrop-tui | grep -E 'NEEDED.*torch' || true
du -sh gpu-bundle
