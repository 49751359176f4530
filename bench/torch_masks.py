"""DropBlock mask cost in PyTorch (torchvision.ops.drop_block2d) on the CPU, for
comparison with `cargo bench --bench masks`. Not part of the product.

    pip install torch==2.9.0 torchvision==0.24.0
    python3 bench/torch_masks.py [--threads 2]

drop_block2d returns x * mask, so this times the mask *and* the multiply.
"""

import argparse
import statistics
import time

import torch
from torchvision.ops import drop_block2d


def median_ms(fn, repeats):
    fn()  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples), min(samples), max(samples)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for shape in [(32, 64, 16, 16), (128, 256, 14, 14)]:
        x = torch.randn(shape)
        med, lo, hi = median_ms(
            lambda: drop_block2d(x, p=0.1, block_size=5, inplace=False, training=True),
            args.repeats,
        )
        print(f"drop_block2d {list(shape)} b=5 p=0.1: median {med:.2f} ms (min {lo:.2f}, max {hi:.2f})")


if __name__ == "__main__":
    main()
