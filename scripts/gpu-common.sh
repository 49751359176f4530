# Sourced by the scripts that run on a GPU machine with PyTorch and no Rust
# (gpu-check.sh, gpu-text.sh, gpu-compare.sh): the bundle's binary with its
# plugins (PDT) against the machine's PyTorch libraries, and the exit status.
BUNDLE=${BUNDLE:-gpu-bundle}
TORCH_LIB=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
PDT=("$BUNDLE/probdrop-tui" --plugins "$BUNDLE/plugins")
status=0

# The date, the GPU and the cores, first in every output.
machine_header() {
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  nproc
}
