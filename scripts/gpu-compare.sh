#!/usr/bin/env bash
# Runs issue 17's GPU comparison (experiments/compare-fashion-resnet18.toml:
# ResNet-18 on Fashion-MNIST, seven arms, 3 seeds) on a GPU machine with
# PyTorch and no Rust, from the repository root, with gpu-bundle/ made by
# scripts/gpu-bundle.sh after scripts/fetch-fashion-mnist.sh (the bundle then
# holds the images the experiment uses, gpu-bundle/fashion-mnist/; carry it):
#
#   scripts/gpu-compare.sh [OUT_DIR]
#
# JOBS trainers share the GPU (default 7, one per arm; DEVICE, default cuda:0,
# names it: DEVICE=cpu tries the script anywhere). LIMIT seconds (default
# 420) bound the comparison so that one device call returns; `compare` is
# resumable, so running the script again with the same OUT_DIR finishes what is
# left. Checkpoints are deleted at the end so that only metrics, events,
# snapshots and the comparison report come back.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-/tmp/gpu-compare}}
mkdir -p "$OUT"
JOBS=${JOBS:-7}
DEVICE=${DEVICE:-cuda:0}
LIMIT=${LIMIT:-420}
source scripts/gpu-common.sh
machine_header
DATA=${DATA:-$BUNDLE/fashion-mnist}
if [ ! -f "$DATA/train-images-idx3-ubyte.gz" ]; then
  echo "$DATA is missing: run scripts/fetch-fashion-mnist.sh then scripts/gpu-bundle.sh where apt reaches Debian"
  exit 2
fi
sed "s|^path = .*|path = \"$(cd "$DATA" && pwd)\"|" experiments/compare-fashion-resnet18.toml > "$OUT/compare-fashion-resnet18.toml"

echo "== ResNet-18, Fashion-MNIST, $JOBS trainers on $DEVICE, at most $LIMIT s"
start=$(date +%s)
timeout --signal=INT "$LIMIT" "${PDT[@]}" compare "$OUT/compare-fashion-resnet18.toml" \
  --device "$DEVICE" --jobs "$JOBS" --runs "$OUT/runs" --out "$OUT/compare/compare-fashion-resnet18"
rc=$?
echo "wall seconds: $(( $(date +%s) - start )) (compare exit $rc; 124 or 130: stopped at the limit, run again to finish)"
[ "$rc" -eq 0 ] || status=1
python3 - "$OUT/runs" <<'PY'
import glob, json, statistics, sys
for path in sorted(glob.glob(sys.argv[1] + "/*/metrics.jsonl")):
    rates = [json.loads(l)["value"] for l in open(path) if '"samples_per_s"' in l]
    if rates:
        print(f"{path.split('/')[-2]}: median {statistics.median(rates):.0f} samples/s")
PY
cat "$OUT"/compare/compare-fashion-resnet18/*.md 2>/dev/null | head -60

find "$OUT/runs" -name checkpoint -type d -prune -exec rm -rf {} +
find "$OUT/runs" -name 'control.sock' -delete
du -sh "$OUT"
exit $status
