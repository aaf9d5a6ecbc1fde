"""Per-op overhead of the tape: microseconds per recorded elementwise op, forward + backward.

A chain of `--length` small ops (mul, add, sigmoid, tanh, in turn) on a tensor of `--size`
elements is built and differentiated; the time divided by the number of ops is the engine's
per-op cost (the arithmetic on 16 elements is negligible). PyTorch (CPU) runs the same chain
in the same process when it is installed.

    python benchmarks/overhead.py [--length 200] [--size 16] [--repeat 30] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time


def chain(x, length):
    y = x
    for i in range(length):
        kind = i % 4
        if kind == 0:
            y = y * 1.001
        elif kind == 1:
            y = y + 0.01
        elif kind == 2:
            y = y.sigmoid()
        else:
            y = y.tanh()
    return y.sum()


def time_step(make_input, length, repeat):
    def step():
        x = make_input()
        chain(x, length).backward()
    for _ in range(3):  # warm-up
        step()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        samples.append(time.perf_counter() - start)
    return [s / (length + 1) * 1e6 for s in samples]  # +1: the final sum


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import numpy as np

    import tinygrad_nd as tnd

    rows = []
    host = np.random.default_rng(0).standard_normal(args.size).astype(np.float32)
    ours = time_step(lambda: tnd.tensor(host, requires_grad=True), args.length, args.repeat)
    rows.append(("tinygrad_nd", ours))
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(args.threads)
        theirs = time_step(lambda: torch.tensor(host, requires_grad=True), args.length, args.repeat)
        rows.append((f"torch {torch.__version__}", theirs))

    print(f"chain of {args.length} elementwise ops on {args.size} float32 elements, forward + backward, "
          f"{args.threads} thread(s), median of {args.repeat}")
    print(f"{'engine':<22}{'us/op median':>14}{'min':>9}{'max':>9}{'ratio':>8}")
    base = statistics.median(rows[-1][1])
    for name, samples in rows:
        med = statistics.median(samples)
        print(f"{name:<22}{med:>14.2f}{min(samples):>9.2f}{max(samples):>9.2f}{med / base:>8.2f}")


if __name__ == "__main__":
    main()
