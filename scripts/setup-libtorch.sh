#!/usr/bin/env bash
# Installs the PyTorch wheel whose LibTorch the `tch` feature builds against
# (torch 2.11.0 from PyPI, about 7 GB with its CUDA libraries) into a virtual
# environment, .venv-torch/ by default. `.ci/run` then also builds with
# `--features tch` and runs the LibTorch tests; without it they are skipped.
#
#   scripts/setup-libtorch.sh            # or TORCH_VENV=/path scripts/setup-libtorch.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${TORCH_VENV:-$PWD/.venv-torch}
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet torch==2.11.0
"$VENV/bin/python" -c 'import torch; print("torch", torch.__version__, "in", torch.__file__)'
