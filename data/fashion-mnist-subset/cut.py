"""Cuts the committed Fashion-MNIST subset from the full set that Debian's
`dataset-fashion-mnist` package installs. Reproduces the files beside it:

    apt-get install dataset-fashion-mnist
    python3 data/fashion-mnist-subset/cut.py

Takes the first N records of each split, unchanged, in the same IDX format.
`--source`, `--out`, `--train` and `--test` cut other slices (scripts/gpu-bundle.sh
cuts the GPU comparison's 15,000 training images this way).
"""

import argparse
import gzip
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent


def cut(source, out, name, count):
    with gzip.open(source / name, "rb") as f:
        data = f.read()
    magic, total = struct.unpack(">II", data[:8])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    record = 1
    for d in dims[1:]:
        record *= d
    header = struct.pack(">I", magic) + struct.pack(">I", count) + data[8 : 4 + 4 * ndim]
    body = data[4 + 4 * ndim : 4 + 4 * ndim + count * record]
    # mtime=0: the same bytes on every run.
    with open(out / name, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(header + body)
    print(f"{name}: {count} of {total} records of {dims[1:]}")


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--source", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
parser.add_argument("--out", type=Path, default=HERE)
parser.add_argument("--train", type=int, default=6000)
parser.add_argument("--test", type=int, default=1000)
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
for split, count in {"train": args.train, "t10k": args.test}.items():
    cut(args.source, args.out, f"{split}-images-idx3-ubyte.gz", count)
    cut(args.source, args.out, f"{split}-labels-idx1-ubyte.gz", count)
