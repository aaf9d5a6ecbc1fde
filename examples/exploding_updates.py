"""Why did my loss explode? A summed loss times a fixed step, against a mean loss and Adam.

    python examples/exploding_updates.py         # prints three loss curves, writes a PNG

The question learners ask: "my network trains in the tutorial, but mine diverges to inf/nan".
Often the loss is a *sum* over the batch (``reduction="sum"``, or a hand-written
``((y - t) ** 2).sum()``). The gradient of a sum grows with the number of terms, here
batch x 10 outputs = 640 times the gradient of the mean, and plain SGD's step is
``lr * gradient``: a step that suits the mean is 640 times too large for the sum. The last
layer is a least-squares problem, and gradient descent on a quadratic diverges geometrically
as soon as ``lr * curvature > 2``.

Three runs from the same initial weights, on the same batches:

1. SGD, summed loss, lr 0.5: overshoots, and the loss grows to inf or NaN within a few steps;
2. SGD, mean loss, the same lr 0.5: the same direction, 640 times smaller steps, converges;
3. Adam, summed loss, lr 0.01: Adam divides each step by a running root mean square of the
   gradient, so scaling the loss by any constant leaves its steps unchanged; it converges.
"""
from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

import tinygrad_nd as tnd
import tinygrad_nd.nn.functional as F
from tinygrad_nd import nn, optim
from tinygrad_nd.data import DataLoader, TensorDataset

RUNS = (
    # label, loss reduction, optimizer
    ("SGD, summed loss, lr 0.5", "sum", lambda params: optim.SGD(params, lr=0.5)),
    ("SGD, mean loss, lr 0.5", "mean", lambda params: optim.SGD(params, lr=0.5)),
    ("Adam, summed loss, lr 0.01", "sum", lambda params: optim.Adam(params, lr=0.01)),
)


def build_model():
    """A small net: conv, max pool, ReLU, then a linear read-out, (N, 1, 8, 8) -> (N, 10)."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),  # (N, 8, 4, 4)
        nn.Flatten(),                                                  # (N, 128)
        nn.Linear(8 * 4 * 4, 10),
    )


def train(model, reduction, optimizer, loader, steps):
    """Losses (per sample, so runs compare) of ``steps`` steps; stops early on divergence."""
    losses = []
    while len(losses) < steps:
        for x, target in loader:
            loss = F.mse_loss(model(x), target, reduction=reduction)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            # the sum is over batch x 10 terms, the mean divides it by that: report per sample
            per_sample = loss.item() * (1 / x.shape[0] if reduction == "sum" else 10)
            losses.append(per_sample)
            if not math.isfinite(per_sample) or per_sample > 1e30:
                return losses
            if len(losses) == steps:
                break
    return losses


def plot(curves, path):
    """Left: every run on a log scale (the blow-up); right: a linear zoom on the runs that learn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (full, zoom) = plt.subplots(1, 2, figsize=(11, 4))
    for label, losses in curves.items():
        values = [v if math.isfinite(v) else np.nan for v in losses]
        steps = range(1, len(values) + 1)
        line, = full.plot(steps, values, label=label)
        zoom.plot(steps, values, label=label, color=line.get_color())
        if len(losses) < max(len(c) for c in curves.values()):  # stopped early: it diverged
            full.annotate(f"  {losses[-1]:.3g} at step {len(losses)}: diverged",
                          (len(losses), np.nanmax(values)), color=line.get_color(), va="top")
    full.set(xlabel="step", ylabel="summed squared error per sample", yscale="log",
             title="all three runs (log scale)")
    first = max(c[0] for c in curves.values() if math.isfinite(c[0]))
    zoom.set(xlabel="step", ylim=(0, 1.2 * first), title="zoom: the runs that converge")
    for ax in (full, zoom):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default=os.path.join("runs", "exploding"))
    parser.add_argument("--tiny", action="store_true", help="a few steps only (for tests)")
    args = parser.parse_args(argv)
    steps = 12 if args.tiny else args.steps

    images, labels = tnd.data.load_digits()
    targets = tnd.eye(10)[labels]  # one-hot (N, 10), the targets of a squared error
    loader_args = dict(batch_size=args.batch_size, shuffle=True, drop_last=True)

    tnd.manual_seed(args.seed)
    initial = build_model().state_dict()  # every run starts from these weights
    curves, accuracies = {}, {}
    for label, reduction, make_optimizer in RUNS:
        model = build_model()
        model.load_state_dict(initial)
        loader = DataLoader(TensorDataset(images, targets), seed=args.seed, **loader_args)
        with np.errstate(over="ignore", invalid="ignore"):  # the first run overflows on purpose
            curves[label] = train(model, reduction, make_optimizer(model.parameters()), loader, steps)
            with tnd.no_grad():
                accuracies[label] = float((model(images).argmax(dim=1) == labels).float().mean().item())

    marks = sorted({1, 2, 3, 5, 10, 20, 50, 100, 200, steps} & set(range(1, steps + 1)))
    print("summed squared error per sample (the mean loss times 10 outputs), by step")
    print(f"{'step':>6s}" + "".join(f"{label:>30s}" for label in curves))
    for step in marks:
        row = [f"{c[step - 1]:30.4g}" if step <= len(c) else f"{'(stopped)':>30s}" for c in curves.values()]
        print(f"{step:6d}" + "".join(row))
    for label, losses in curves.items():
        verdict = ("DIVERGED" if not math.isfinite(losses[-1]) or losses[-1] > 1e30 else
                   "converging" if losses[-1] < losses[0] else "not improving")
        print(f"{label}: {verdict} (first {losses[0]:.4g}, last {losses[-1]:.4g} after {len(losses)} "
              f"steps; training accuracy {100 * accuracies[label]:.1f}%)")

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "exploding_updates.png")
    plot(curves, path)
    print(f"plot: {path}")
    return curves


if __name__ == "__main__":
    main(sys.argv[1:])
