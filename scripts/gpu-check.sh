#!/usr/bin/env bash
# Runs on a GPU machine with PyTorch and no Rust, from the repository root, with
# gpu-bundle/ made by scripts/gpu-bundle.sh: the environment, `doctor` (whose
# "machine:" lines are the dashboard's NVML panel on the real GPU), the
# quickstart trained on cuda:0, a ResNet-18 throughput figure (CIFAR shapes,
# synthetic data), the same models in PyTorch on the same GPU, and the cost of
# each block mask in a step (none / DropBlock / ProbDropBlock matched).
#
#   scripts/gpu-check.sh [OUT_DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-/tmp/gpu-check}}
mkdir -p "$OUT"
source scripts/gpu-common.sh
step() { echo; echo "== $*"; }

step environment
date -u
python3 -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "available", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
readelf -d "$BUNDLE/probdrop-tui" 2>/dev/null | grep -E 'NEEDED.*(torch|c10)' || echo "(readelf not available)"

step doctor
"${PDT[@]}" doctor || status=1

step "quickstart on cuda:0"
start=$(date +%s)
"${PDT[@]}" run experiments/quickstart.toml --device cuda:0 --runs "$OUT/runs" -q || status=1
echo "wall seconds: $(( $(date +%s) - start ))"
cat "$OUT"/runs/*quickstart*/events.jsonl 2>/dev/null | head -3

step "ResNet-18, CIFAR shapes, synthetic data, 1 epoch on cuda:0"
python3 - "$OUT/cifar" <<'PY'
import os, random, sys
d = sys.argv[1]; os.makedirs(d, exist_ok=True)
rng = random.Random(0)
def batch(name, n):
    with open(os.path.join(d, name), "wb") as f:
        for _ in range(n):
            f.write(bytes([rng.randrange(10)]) + os.urandom(3072))
for i in range(1, 6):
    batch(f"data_batch_{i}.bin", 1024)
batch("test_batch.bin", 1024)
PY
cat > "$OUT/resnet18.toml" <<TOML
name = "gpu-resnet18"
seeds = [0]
device = "cuda:0"
[data]
format = "cifar10"
path = "$OUT/cifar"
augment = "crop-flip"
workers = 4
[model]
kind = "resnet18"
[optimizer]
lr = 0.05
momentum = 0.9
[train]
epochs = 1
batch_size = 128
log_every = 5
snapshot_every = 20
[[strategy]]
plugin = "dropblock"
params = { block_size = 3 }
schedule = { kind = "linear", end = 0.1 }
TOML
"${PDT[@]}" run "$OUT/resnet18.toml" --runs "$OUT/runs" -q || status=1
python3 - "$OUT/runs" <<'PY'
import glob, json, statistics, sys
for path in sorted(glob.glob(sys.argv[1] + "/*/metrics.jsonl")):
    rates = [json.loads(l)["value"] for l in open(path) if '"samples_per_s"' in l]
    if rates:
        print(f"{path.split('/')[-2]}: median {statistics.median(rates[1:] or rates):.0f} samples/s over {len(rates)} logged windows")
PY

step "native LibTorch ops (conv backward, batch norm, ReLU backward, foreach optimiser) on CUDA"
"$BUNDLE/native_ops" --test-threads 1 || status=1

step "step throughput: probdrop-tui (LibTorch CUDA) vs PyTorch, same GPU, 3 alternating rounds"
python3 bench/pytorch_reference.py --ours "$BUNDLE/probdrop-tui" --plugins "$BUNDLE/plugins" \
  --device cuda --backends libtorch --optimizers per-parameter,foreach --steps 30 --repeat 3 || status=1

step "ATen operators per step, both sides (one counted step each)"
python3 bench/pytorch_reference.py --ours "$BUNDLE/probdrop-tui" --plugins "$BUNDLE/plugins" \
  --device cuda --backends libtorch --optimizers per-parameter,foreach --steps 5 --count-ops || status=1

step "mask cost in a training step on cuda:0 (bench-step, b = 3, p = 0.1; ProbDropBlock at its default, gamma = matched)"
for model_batch in resnet18:128 small-cnn:64; do
  model=${model_batch%:*} batch=${model_batch#*:}
  for strategy in none dropblock probdropblock; do
    "${PDT[@]}" bench-step --model "$model" --batch "$batch" --device cuda:0 --backend libtorch \
      --strategy "$strategy" --block-size 3 --p 0.1 --steps 30 || status=1
  done
done

echo; echo "gpu-check finished with status $status"
exit $status
