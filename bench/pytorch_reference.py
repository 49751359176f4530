#!/usr/bin/env python3
"""Training-step throughput: probdrop-tui against PyTorch, same models, same DropBlock.

One command prints both sides and their ratio:

    python3 bench/pytorch_reference.py --ours target/release/probdrop-tui

With --repeat N the two sides alternate N times and a last line per arm gives
the median rates and their ratio: on a shared machine one pair of runs can be
off by a quarter.

With --count-ops, both sides also count the ATen operators one training step
calls (top-level calls only: an op's own inner calls are not counted), and how
many of them are not views or metadata (a stand-in for kernels launched).

The PyTorch side builds the small CNN (conv 1->32, pool, conv 32->64, pool,
DropBlock slot, linear 3136->128->10) and a CIFAR-style ResNet-18 (3x3 stem, no
max-pool, DropBlock after stages 3 and 4), and times forward + backward + SGD
(momentum 0.9) on random inputs, like `probdrop-tui bench-step`. DropBlock is
written here from its formula (seed rate gamma = p / b^2 * HW / ((H-b+1)(W-b+1)),
seeds in the valid region, b x b max-pool, rescale by numel / kept).

Not part of the product: the product never needs Python.
"""

import argparse
import json
import os
import statistics
import subprocess
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def drop_block(x, p, b):
    if p == 0.0:
        return x
    n, c, h, w = x.shape
    b = min(b, h, w)
    gamma = p / (b * b) * (h * w) / ((h - b + 1) * (w - b + 1))
    seeds = torch.zeros(n, c, h, w, device=x.device)
    valid = torch.rand(n, c, h - b + 1, w - b + 1, device=x.device) < gamma
    off = b // 2
    seeds[:, :, off:off + h - b + 1, off:off + w - b + 1] = valid.float()
    dropped = F.max_pool2d(seeds, kernel_size=b, stride=1, padding=b // 2)
    if b % 2 == 0:
        dropped = dropped[:, :, :h, :w]
    keep = 1.0 - dropped
    keep = keep * (keep.numel() / (keep.sum() + 1e-6))
    return x * keep


class SmallCnn(nn.Module):
    def __init__(self, p, b):
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, 3, padding=1)
        self.c2 = nn.Conv2d(32, 64, 3, padding=1)
        self.f1 = nn.Linear(64 * 7 * 7, 128)
        self.f2 = nn.Linear(128, 10)
        self.p, self.b = p, b

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)  # [n, 32, 14, 14]
        x = F.max_pool2d(F.relu(self.c2(x)), 2)  # [n, 64, 7, 7]
        x = drop_block(x, self.p, self.b)
        return self.f2(F.relu(self.f1(x.flatten(1))))


class Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.a = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.an = nn.BatchNorm2d(cout)
        self.b = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.an(self.a(x)))
        y = self.bn(self.b(y))
        return F.relu(y + (x if self.short is None else self.short(x)))


class ResNet18(nn.Module):
    def __init__(self, p, b):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        widths, cin, stages = [64, 128, 256, 512], 64, []
        for i, wdt in enumerate(widths):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(Basic(cin, wdt, stride), Basic(wdt, wdt, 1)))
            cin = wdt
        self.stages = nn.ModuleList(stages)
        self.fc = nn.Linear(512, 10)
        self.p, self.b = p, b

    def forward(self, x):
        x = self.stem(x)
        for i, s in enumerate(self.stages):
            x = s(x)
            if i >= 2:  # after stage 3 and stage 4
                x = drop_block(x, self.p, self.b)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


# Operators that make no kernel: views, metadata, allocation.
NOT_KERNELS = {
    "aten::view", "aten::reshape", "aten::_reshape_alias", "aten::permute", "aten::expand",
    "aten::as_strided", "aten::select", "aten::slice", "aten::unsqueeze", "aten::squeeze",
    "aten::transpose", "aten::t", "aten::detach", "aten::alias", "aten::empty",
    "aten::empty_like", "aten::empty_strided", "aten::lift_fresh", "aten::resolve_conj",
    "aten::resolve_neg", "aten::_unsafe_view", "aten::flatten", "aten::numpy_T",
    "aten::result_type", "aten::is_nonzero", "aten::item", "aten::_local_scalar_dense",
    "aten::set_", "aten::contiguous", "aten::to", "aten::_to_copy", "aten::size",
}


def kernels(counts):
    """Top-level ops that are neither views nor metadata (aten::to and
    contiguous count only when they copy, which a name cannot tell: left out)."""
    return sum(n for name, n in counts.items() if name not in NOT_KERNELS)


def top_level_ops(step):
    """ATen ops one call of `step` makes, by name, counting only those with no
    ATen op above them (as the shim's counter does on our side)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    counts = {}
    for e in prof.events():
        if not e.name.startswith("aten::"):
            continue
        parent, nested = e.cpu_parent, False
        while parent is not None:
            if parent.name.startswith("aten::"):
                nested = True
                break
            parent = parent.cpu_parent
        if not nested:
            counts[e.name] = counts.get(e.name, 0) + 1
    return counts


def torch_step_rate(model_name, batch, steps, device, p, b, count_ops=False):
    torch.manual_seed(0)
    if model_name == "small-cnn":
        model, shape = SmallCnn(p, b), (1, 28, 28)
    else:
        model, shape = ResNet18(p, b), (3, 32, 32)
    model = model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, *shape, device=device)
    y = torch.arange(batch, device=device) % 10

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    rate = batch * steps / (time.perf_counter() - start)
    return rate, (top_level_ops(step) if count_ops else None)


def ours_step_rate(binary, model, batch, steps, device, p, b, backend, plugins, cudnn_benchmark,
                   optimizer=None, count_ops=False, threads=0):
    cmd = [binary, "--plugins", plugins, "bench-step", "--model", model, "--batch", str(batch),
           "--steps", str(steps), "--device", device, "--p", str(p), "--block-size", str(b),
           "--cudnn-benchmark", "true" if cudnn_benchmark else "false"]
    if backend == "flex-upstream":
        # The same binary with the patched flex's native kernels off (vendor/README.md).
        cmd += ["--backend", "flex", "--flex-kernels", "upstream"]
    elif backend:
        cmd += ["--backend", backend]
    if optimizer:
        cmd += ["--optimizer", optimizer]
    if count_ops and backend == "libtorch":
        cmd += ["--count-ops"]
    env = dict(os.environ)
    if threads:
        # flex's thread pool (rayon) gets the same number of threads as torch.
        env["RAYON_NUM_THREADS"] = str(threads)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    report = json.loads(out.strip().splitlines()[-1])
    counts = dict(report["ops_by_name"]) if "ops_by_name" in report else None
    return report["samples_per_s"], report.get("optimizer", "?"), counts


def describe_ops(counts):
    if counts is None:
        return ""
    return f" {sum(counts.values()):>6.0f} {kernels(counts):>7.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours", help="probdrop-tui binary; without it only PyTorch is timed")
    ap.add_argument("--plugins", default="plugins")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--backends", default="flex", help="comma list of our backends to time (flex,libtorch)")
    ap.add_argument("--models", default="small-cnn,resnet18")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--p", type=float, default=0.1)
    ap.add_argument("--block-size", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--optimizers", default="",
                    help="comma list of our optimizer kinds to time (per-parameter,foreach); default: ours's default")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds, alternating the two sides; with more than one, also the medians")
    ap.add_argument("--count-ops", action="store_true",
                    help="also count the ATen ops of one step on both sides (ours: LibTorch only)")
    ap.add_argument("--cudnn-benchmark", type=int, default=1, choices=[0, 1],
                    help="cuDNN's per-shape algorithm search on both sides (default 1, as our experiments)")
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = bool(args.cudnn_benchmark)
    if args.threads:
        torch.set_num_threads(args.threads)
    ours_device = "cuda:0" if args.device.startswith("cuda") else "cpu"
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, "
          f"DropBlock p={args.p} b={args.block_size}, SGD momentum 0.9, "
          f"cudnn.benchmark {torch.backends.cudnn.benchmark}, TF32 conv {torch.backends.cudnn.allow_tf32} "
          f"matmul {torch.backends.cuda.matmul.allow_tf32} (LibTorch's defaults are the same), no AMP")
    ops_head = f" {'ops':>6} {'kernels':>7}" if args.count_ops else ""
    print(f"{'model':<10} {'batch':>5} {'PyTorch samples/s':>18}{ops_head} {'ours backend':>13} "
          f"{'optimizer':>13} {'ours samples/s':>15} {'ratio':>6}{ops_head}")
    for model in args.models.split(","):
        batch = 64 if model == "small-cnn" else 128
        rounds = {}
        for r in range(args.repeat):
            count_ops = args.count_ops and r == 0
            theirs, their_ops = torch_step_rate(model, batch, args.steps, args.device, args.p,
                                                args.block_size, count_ops)
            head = f"{model:<10} {batch:>5} {theirs:>18.1f}{describe_ops(their_ops)}"
            if not args.ours:
                print(head)
                continue
            for backend in args.backends.split(","):
                for optimizer in (args.optimizers.split(",") if args.optimizers else [None]):
                    ours, kind, our_ops = ours_step_rate(
                        args.ours, model, batch, args.steps, ours_device, args.p, args.block_size,
                        backend, args.plugins, args.cudnn_benchmark, optimizer, count_ops,
                        args.threads)
                    rounds.setdefault((backend, kind), []).append((theirs, ours))
                    print(f"{head} {backend:>13} {kind:>13} {ours:>15.1f} {ours / theirs:>6.2f}"
                          f"{describe_ops(our_ops)}", flush=True)
        if args.repeat > 1:
            print_medians(model, batch, rounds)


def print_medians(model, batch, rounds):
    """One line per arm over the alternating rounds: each side's median rate,
    the ratio of the medians and the range of the per-round ratios."""
    for (backend, kind), pairs in rounds.items():
        theirs = statistics.median(t for t, _ in pairs)
        ours = statistics.median(o for _, o in pairs)
        ratios = [o / t for t, o in pairs]
        print(f"{model:<10} {batch:>5} median of {len(pairs)}: PyTorch {theirs:.1f}, {backend} {kind} "
              f"{ours:.1f}, ratio {ours / theirs:.2f} (rounds {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
