#!/usr/bin/env python3
"""Writes tests/fixtures/flex_ops/torch.json: PyTorch's results for the ops the
patched burn-flex runs natively (vendor/README.md), on fixed inputs, so that
`tests/flex_ops.rs` checks them against PyTorch without torch in CI.

Inputs come from the same xorshift generator the test uses (`values(n, seed)`),
so the fixture holds only the seeds, the shapes, the options and PyTorch's
outputs (and each input's first values, to catch a generator that drifted).

    python3 bench/flex_ops_fixture.py            # needs torch
"""

import json
import pathlib

import torch
import torch.nn.functional as F

MASK = (1 << 64) - 1


def values(n, seed):
    """Deterministic values in [-1, 1): tests/flex_ops.rs has the same."""
    s = ((seed * 0x9E3779B97F4A7C15) & MASK) | 1
    out = []
    for _ in range(n):
        s ^= (s << 13) & MASK
        s ^= s >> 7
        s ^= (s << 17) & MASK
        out.append((s >> 40) / float(1 << 23) - 1.0)
    return out


def tensor(shape, seed):
    n = 1
    for d in shape:
        n *= d
    return torch.tensor(values(n, seed), dtype=torch.float32).reshape(shape)


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


# (input shape, weight shape, stride, padding as ((top, bottom), (left, right)), dilation, groups)
CONV_CASES = [
    ([3, 4, 9, 7], [5, 4, 3, 3], [1, 1], [[1, 1], [1, 1]], [1, 1], 1),
    ([3, 4, 9, 7], [6, 4, 3, 3], [2, 2], [[1, 1], [1, 1]], [1, 1], 1),
    ([2, 6, 8, 8], [6, 3, 3, 3], [1, 2], [[0, 0], [1, 1]], [2, 1], 2),
    ([5, 8, 6, 6], [4, 8, 1, 1], [1, 1], [[0, 0], [0, 0]], [1, 1], 1),
    ([5, 8, 7, 7], [4, 8, 1, 1], [2, 2], [[0, 0], [0, 0]], [1, 1], 1),
    ([7, 16, 4, 4], [8, 16, 3, 3], [1, 1], [[1, 1], [1, 1]], [1, 1], 1),
    ([1, 3, 10, 11], [4, 3, 5, 2], [3, 1], [[2, 2], [0, 0]], [1, 2], 1),
    ([3, 4, 9, 7], [5, 4, 3, 2], [1, 2], [[1, 2], [0, 1]], [1, 1], 1),
    ([3, 1, 12, 12], [8, 1, 3, 3], [1, 1], [[1, 1], [1, 1]], [1, 1], 1),
]

# (input shape, kernel, stride, padding, dilation, ceil_mode)
POOL_CASES = [
    ([2, 3, 8, 8], [2, 2], [2, 2], [0, 0], [1, 1], False),
    ([2, 3, 7, 9], [3, 3], [1, 1], [1, 1], [1, 1], False),
    ([1, 2, 9, 7], [3, 2], [2, 3], [1, 0], [2, 1], False),
    ([2, 2, 7, 7], [2, 2], [2, 2], [0, 0], [1, 1], True),
]

BN_SHAPES = [[4, 3, 5, 6], [3, 2, 1, 1], [6, 5, 2, 3], [8, 16, 4, 4]]
EPS = 1e-5


def conv_case(i, case):
    xs, ws, stride, padding, dilation, groups = case
    x = tensor(xs, 1 + i).requires_grad_()
    w = tensor(ws, 50 + i).requires_grad_()
    b = tensor([ws[0]], 99).requires_grad_()
    (top, bottom), (left, right) = padding
    y = F.conv2d(F.pad(x, (left, right, top, bottom)), w, b, stride=stride,
                 dilation=dilation, groups=groups)
    dy = tensor(list(y.shape), 7 + i)
    y.backward(dy)
    return {
        "input": xs, "weight": ws, "stride": stride, "padding": padding,
        "dilation": dilation, "groups": groups,
        "seeds": {"x": 1 + i, "weight": 50 + i, "bias": 99, "dy": 7 + i},
        "x_head": flat(x)[:4],
        "output_shape": list(y.shape),
        "output": flat(y), "x_grad": flat(x.grad), "weight_grad": flat(w.grad),
        "bias_grad": flat(b.grad),
    }


def pool_case(i, case):
    shape, kernel, stride, padding, dilation, ceil_mode = case
    x = tensor(shape, 40 + i).requires_grad_()
    y, idx = F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode=ceil_mode,
                          return_indices=True)
    dy = tensor(list(y.shape), 60 + i)
    y.backward(dy)
    return {
        "input": shape, "kernel": kernel, "stride": stride, "padding": padding,
        "dilation": dilation, "ceil_mode": ceil_mode,
        "seeds": {"x": 40 + i, "dy": 60 + i},
        "output_shape": list(y.shape),
        "output": flat(y), "indices": [int(v) for v in idx.reshape(-1).tolist()],
        "x_grad": flat(x.grad),
    }


def bn_case(i, shape):
    c = shape[1]
    x = tensor(shape, 3 + i).requires_grad_()
    gamma = tensor([c], 11).requires_grad_()
    beta = tensor([c], 12).requires_grad_()
    y = F.batch_norm(x, None, None, gamma, beta, training=True, eps=EPS)
    dims = [d for d in range(len(shape)) if d != 1]
    mean = x.mean(dim=dims)
    var = x.var(dim=dims, unbiased=False)
    dy = tensor(shape, 21 + i)
    y.backward(dy)
    running_mean, running_var = tensor([c], 31) * 0.1, tensor([c], 32).abs() + 0.5
    inference = F.batch_norm(x.detach(), running_mean, running_var, gamma.detach(),
                             beta.detach(), training=False, eps=EPS)
    return {
        "shape": shape, "epsilon": EPS,
        "seeds": {"x": 3 + i, "gamma": 11, "beta": 12, "dy": 21 + i},
        "x_head": flat(x)[:4],
        "output": flat(y), "mean": flat(mean), "variance": flat(var),
        "x_grad": flat(x.grad), "gamma_grad": flat(gamma.grad), "beta_grad": flat(beta.grad),
        "running_mean": flat(running_mean), "running_var": flat(running_var),
        "inference": flat(inference),
    }


def main():
    torch.set_num_threads(1)
    fixture = {
        "about": "PyTorch's results for tests/flex_ops.rs; written by bench/flex_ops_fixture.py",
        "torch": torch.__version__,
        "conv2d": [conv_case(i, c) for i, c in enumerate(CONV_CASES)],
        "batch_norm": [bn_case(i, s) for i, s in enumerate(BN_SHAPES)],
        "max_pool2d": [pool_case(i, c) for i, c in enumerate(POOL_CASES)],
    }
    out = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/flex_ops/torch.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
