"""Cuts the committed Fashion-MNIST subset from the full set that Debian's
`dataset-fashion-mnist` package installs. Reproduces the files beside it:

    apt-get install dataset-fashion-mnist
    python3 data/fashion-mnist-subset/cut.py

Takes the first N records of each split, unchanged, in the same IDX format.
"""

import gzip
import struct
from pathlib import Path

SOURCE = Path("/usr/share/datasets/fashion-mnist")
HERE = Path(__file__).resolve().parent
SPLITS = {"train": 6000, "t10k": 1000}


def cut(name, count):
    with gzip.open(SOURCE / name, "rb") as f:
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
    with open(HERE / name, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as out:
        out.write(header + body)
    print(f"{name}: {count} of {total} records of {dims[1:]}")


for split, count in SPLITS.items():
    cut(f"{split}-images-idx3-ubyte.gz", count)
    cut(f"{split}-labels-idx1-ubyte.gz", count)
