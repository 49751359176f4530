#!/usr/bin/env bash
# Runs the two text comparisons of RESULTS.md on a GPU machine with PyTorch and
# no Rust, from the repository root, with gpu-bundle/ made by
# scripts/gpu-bundle.sh and SST-2 copied to gpu-bundle/sst2 (train.tsv, dev.tsv):
#
#   scripts/gpu-text.sh [OUT_DIR]
#
# Checkpoints are deleted at the end so that only metrics, events, snapshots and
# the comparison reports come back.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-/tmp/gpu-text}}
mkdir -p "$OUT"
source scripts/gpu-common.sh
SST2=${SST2:-$BUNDLE/sst2}
JOBS=${JOBS:-5}
machine_header

echo "== Austen sentences"
start=$(date +%s)
"${PDT[@]}" compare experiments/compare-text.toml --device cuda:0 --jobs "$JOBS" \
  --runs "$OUT/runs" --out "$OUT/compare/compare-text" || status=1
echo "wall seconds: $(( $(date +%s) - start ))"

echo "== SST-2"
sed "s|^path = .*|path = \"$PWD/$SST2\"|" experiments/compare-sst2.toml > "$OUT/compare-sst2.toml"
start=$(date +%s)
"${PDT[@]}" compare "$OUT/compare-sst2.toml" --device cuda:0 --jobs "$JOBS" \
  --runs "$OUT/runs" --out "$OUT/compare/compare-sst2" || status=1
echo "wall seconds: $(( $(date +%s) - start ))"

find "$OUT/runs" -name checkpoint -type d -prune -exec rm -rf {} +
find "$OUT/runs" -name 'control.sock' -delete
du -sh "$OUT"
exit $status
