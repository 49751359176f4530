#!/usr/bin/env bash
# Puts the full Fashion-MNIST (60,000 + 10,000 images, IDX, MIT licence) in
# data/fashion-mnist/ (git-ignored) from Debian's dataset-fashion-mnist package,
# unpacked without installing it (no root needed beyond apt's download):
#
#   scripts/fetch-fashion-mnist.sh [DIR]
#
# experiments/compare-fashion-resnet18.toml reads it from there; on a machine
# with the package installed, /usr/share/datasets/fashion-mnist/ is the same.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-data/fashion-mnist}
if [ -f "$DIR/train-images-idx3-ubyte.gz" ]; then
  echo "already there: $DIR"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download dataset-fashion-mnist >/dev/null 2>&1)
dpkg -x "$work"/dataset-fashion-mnist_*.deb "$work/x"
mkdir -p "$DIR"
cp "$work"/x/usr/share/datasets/fashion-mnist/*-ubyte.gz "$DIR/"
cp data/fashion-mnist-subset/LICENSE "$DIR/LICENSE"
cp "$work"/x/usr/share/doc/dataset-fashion-mnist/copyright "$DIR/debian-copyright"
ls -l "$DIR"
