#!/usr/bin/env python3
"""DropBlock masks: probdrop-tui against torchvision's drop_block2d, statistically.

For each shape and (p, block size) it draws masks from both over many seeds and
compares what a researcher would check: the dropped fraction, and the sizes of
the dropped regions (4-connected groups of dropped cells in each H x W map;
overlapping blocks merge into one region). Prints a Markdown table; RESULTS.md
quotes it.

    pip install torch==2.9.0 torchvision==0.24.0 scipy numpy
    python3 bench/reference_stats.py --ours target/release/probdrop-tui

Our masks come from `probdrop-tui mask dropblock --out mask.npy`, through the
real plugin path. torchvision's come from drop_block2d on an all-ones input
(the output is then the mask times its rescale, zero where dropped).
Not part of the product: the product never needs Python.
"""

import argparse
import os
import subprocess
import tempfile

import numpy as np
import torch
from scipy import ndimage
from torchvision.ops import drop_block2d

CASES = [
    # (N, C, H, W), p, block size
    ((8, 64, 16, 16), 0.1, 3),
    ((8, 64, 16, 16), 0.1, 5),
    ((8, 64, 16, 16), 0.2, 5),
    ((8, 64, 28, 28), 0.1, 7),
    ((8, 128, 8, 8), 0.1, 3),
    ((8, 256, 14, 14), 0.1, 7),
]


def region_sizes(dropped):
    """Sizes of the 4-connected dropped regions of every 2-D map in `dropped` [N, C, H, W]."""
    sizes = []
    four = ndimage.generate_binary_structure(2, 1)
    for plane in dropped.reshape(-1, dropped.shape[-2], dropped.shape[-1]):
        if not plane.any():
            continue
        labels, count = ndimage.label(plane, structure=four)
        sizes.extend(np.bincount(labels.ravel())[1:count + 1].tolist())
    return np.asarray(sizes)


def torchvision_mask(shape, p, b, seed):
    torch.manual_seed(seed)
    y = drop_block2d(torch.ones(shape), p, b, training=True)
    return y.numpy()


def ours_mask(exe, plugins, shape, p, b, seed, tmp):
    out = os.path.join(tmp, f"mask-{seed}.npy")
    subprocess.run(
        [exe, "--plugins", plugins, "mask", "dropblock", "--shape", ",".join(map(str, shape)),
         "--p", str(p), "--param", f"block_size={b}", "--seed", str(seed), "--out", out],
        check=True, stdout=subprocess.DEVNULL)
    return np.load(out)


def summarize(masks, b):
    fractions = np.array([(m == 0).mean() for m in masks])
    sizes = np.concatenate([region_sizes(m == 0) for m in masks])
    means = np.array([m.mean() for m in masks])
    return {
        "fraction": fractions.mean(),
        "fraction_sd": fractions.std(ddof=1),
        "regions_per_map": len(sizes) / sum(m.shape[0] * m.shape[1] for m in masks),
        "size_mean": sizes.mean() if len(sizes) else float("nan"),
        "size_median": np.median(sizes) if len(sizes) else float("nan"),
        "size_p90": np.percentile(sizes, 90) if len(sizes) else float("nan"),
        "exact_block": (sizes == b * b).mean() if len(sizes) else float("nan"),
        "mask_mean": means.mean(),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ours", required=True, help="path to the probdrop-tui binary")
    ap.add_argument("--plugins", default="plugins")
    ap.add_argument("--seeds", type=int, default=20)
    args = ap.parse_args()

    print(f"torch {torch.__version__}, {args.seeds} seeds per case\n")
    header = ("| shape | p | b | source | dropped fraction | regions per map | region size mean "
              "| median | 90th pct | exactly b×b | mean(mask) |")
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    with tempfile.TemporaryDirectory() as tmp:
        for shape, p, b in CASES:
            theirs = [torchvision_mask(shape, p, b, s) for s in range(args.seeds)]
            ours = [ours_mask(args.ours, args.plugins, shape, p, b, s, tmp)
                    for s in range(args.seeds)]
            for name, masks in (("torchvision", theirs), ("probdrop-tui", ours)):
                st = summarize(masks, b)
                print(f"| {'×'.join(map(str, shape))} | {p} | {b} | {name} "
                      f"| {st['fraction']:.4f} ± {st['fraction_sd']:.4f} "
                      f"| {st['regions_per_map']:.2f} | {st['size_mean']:.1f} "
                      f"| {st['size_median']:.0f} | {st['size_p90']:.0f} "
                      f"| {100 * st['exact_block']:.1f} % | {st['mask_mean']:.4f} |")


if __name__ == "__main__":
    main()
