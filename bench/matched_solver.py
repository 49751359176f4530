"""How close ProbDropBlock's matched seed rate lands to the exact root.

Replays, in float64 NumPy, the solve of strategy-kit's `matched_gamma` (2.1:
two Newton steps on log(-log m) against log(gamma), the first with the
small-q slope, the last with the exact one) and 2.0's (two Newton steps on m
with the small-q slope), and reports each one's dropped fraction relative to
DropBlock's expected fraction (the target), against a bisection to machine
precision. Salience: |N(0,1)| and ReLU(N(0,1)) normalised to mean 1,
log-normal, softmax at tau 1, 0.5 and 0.2, and 5 %-active scattered units.

Run: python3 bench/matched_solver.py   (needs numpy)
"""

import numpy as np

Q_MAX = 1 - 1e-6


def window_sum(t, b):
    """Zero-padded b x b window sums over the last two dims (b // 2 before)."""
    h, w = t.shape[-2:]
    pad = [(0, 0)] * (t.ndim - 2) + [(b // 2 + 1, (b - 1) // 2)] * 2
    c = np.pad(t, pad).cumsum(-1).cumsum(-2)
    return c[..., b:b + h, b:b + w] - c[..., :h, b:b + w] - c[..., b:b + h, :w] + c[..., :h, :w]


def kept(s, g, b):
    return np.exp(window_sum(np.log1p(-np.clip(s * g, 0, Q_MAX)), b))


def dropblock_kept(h, w, b, p):
    gamma = p * h * w / (b * b * (h - b + 1) * (w - b + 1))
    q = np.zeros((h, w))
    q[b // 2:h - (b - 1) // 2, b // 2:w - (b - 1) // 2] = gamma
    return np.exp(window_sum(np.log1p(-q), b)).mean()


def solve_2_0(s, target, b):
    reach = window_sum(s, b)
    g = (1 - target) / reach.mean()
    for _ in range(2):
        k = kept(s, g, b)
        g = max(0.0, g + (k.mean() - target) / (k * reach).mean())
    return g


def solve_2_1(s, target, b):
    reach = window_sum(s, b)
    g = -np.log(target) / reach.mean()
    phi_target = np.log(-np.log(target))
    for exact in (False, True):
        q = np.clip(s * g, 0, Q_MAX)
        k = kept(s, g, b)
        rate = window_sum(np.where(q < Q_MAX, s / (1 - q), 0), b) if exact else reach
        m = k.mean()
        dphi = g * (k * rate).mean() / (m * -np.log(m)) + 1e-12
        g *= np.exp(-np.clip((np.log(-np.log(m)) - phi_target) / dphi, -5, 1))
    return g


def mean_one(s):
    m = s.mean(axis=(-1, -2), keepdims=True)
    return s / (m + 1e-12) + (m == 0)


def softmax(s, tau):
    t = s / tau
    e = np.exp(t - t.max(axis=(-1, -2), keepdims=True))
    return e / e.sum(axis=(-1, -2), keepdims=True) * s.shape[-1] * s.shape[-2]


def main():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(16, 8, 16, 16))
    cases = {
        "|N(0,1)|": mean_one(np.abs(g)),
        "ReLU(N(0,1))": mean_one(np.maximum(g, 0)),
        "log-normal, sigma 2": mean_one(np.exp(2 * rng.normal(size=(16, 8, 7, 7)))),
        "softmax, tau 1": softmax(np.abs(g), 1.0),
        "softmax, tau 0.5": softmax(np.abs(g), 0.5),
        "softmax, tau 0.2": softmax(np.abs(g), 0.2),
        "5 % active": mean_one(np.where(g > 1.645, g, 0)),
    }
    print("worst |relative error| of the dropped fraction over b in {3, 5, 7}")
    print(f"{'salience':22s} {'2.0, p<=0.2':>12s} {'2.1, p<=0.2':>12s} {'2.0, p=0.4':>11s} {'2.1, p=0.4':>11s}")
    for name, s in cases.items():
        h, w = s.shape[-2:]
        worst = {}
        for b in (3, 5, 7):
            for p in (0.05, 0.1, 0.2, 0.4):
                target = dropblock_kept(h, w, b, p)
                for label, solve in (("2.0", solve_2_0), ("2.1", solve_2_1)):
                    got = 1 - kept(s, solve(s, target, b), b).mean()
                    key = (label, p == 0.4)
                    worst[key] = max(worst.get(key, 0.0), abs(got / (1 - target) - 1))
        cells = [worst[(label, high)] for high in (False, True) for label in ("2.0", "2.1")]
        print(f"{name:22s} {cells[0]:12.4f} {cells[1]:12.4f} {cells[2]:11.4f} {cells[3]:11.4f}")


if __name__ == "__main__":
    main()
