"""A 1-d CNN tells noisy sine, square and sawtooth waves apart (synthetic data, no download).

    python examples/conv1d_signals.py            # about 99% test accuracy in a few seconds
    python examples/conv1d_signals.py --noise 0.5   # harder: sine and square blur

Each signal has a random frequency, phase and amplitude, plus Gaussian noise. Two Conv1d blocks
learn local shape detectors (a jump, a ramp, a smooth bend); max pooling makes them tolerant
of small shifts; a linear layer reads the class off.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import tinygrad_nd as tnd
import tinygrad_nd.nn.functional as F
from tinygrad_nd import nn, optim
from tinygrad_nd.data import DataLoader, TensorDataset

CLASSES = ("sine", "square", "sawtooth")


def make_signals(n, length, noise, rng):
    """``n`` signals ``(n, 1, length)`` float32 and their class ids ``(n,)`` int64."""
    labels = rng.integers(0, len(CLASSES), n)
    t = np.arange(length) / length
    cycles = rng.uniform(1.5, 5.0, (n, 1))                # periods per window
    phase = rng.uniform(0.0, 1.0, (n, 1))
    amplitude = rng.uniform(0.5, 1.5, (n, 1))
    position = (cycles * t + phase) % 1.0                 # (n, length) in [0, 1)
    waves = np.stack([np.sin(2 * np.pi * position),       # sine
                      np.where(position < 0.5, 1.0, -1.0),  # square
                      2.0 * position - 1.0])              # sawtooth; (3, n, length)
    signals = amplitude * waves[labels, np.arange(n)] + noise * rng.standard_normal((n, length))
    return signals[:, None].astype(np.float32), labels.astype(np.int64)  # (n, 1, length)


def build_model(length):
    return nn.Sequential(
        nn.Conv1d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),   # (N, 16, L/2)
        nn.Conv1d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),  # (N, 32, L/4)
        nn.Flatten(),
        nn.Linear(32 * (length // 4), len(CLASSES)),
    )


def accuracy(model, x, y):
    model.eval()
    with tnd.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean().item())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--length", type=int, default=64, help="samples per signal (multiple of 4)")
    parser.add_argument("--noise", type=float, default=0.3, help="standard deviation of the noise")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tiny", action="store_true", help="a few batches only (for tests)")
    args = parser.parse_args(argv)
    if args.length % 4:
        parser.error(f"--length must be a multiple of 4, got {args.length}")

    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    tnd.manual_seed(args.seed)
    n_train, n_test = (64, 32) if args.tiny else (2400, 600)
    x, y = make_signals(n_train + n_test, args.length, args.noise, rng)
    x, y = tnd.tensor(x, device=args.device), tnd.tensor(y, device=args.device)
    x_train, y_train, x_test, y_test = x[:n_train], y[:n_train], x[n_train:], y[n_train:]

    model = build_model(args.length).to(args.device)
    optimizer = optim.Adam(model.parameters(), lr=3e-3)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True, seed=args.seed)
    epochs = 1 if args.tiny else args.epochs
    for epoch in range(1, epochs + 1):
        model.train()
        total = 0.0
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * yb.shape[0]
        print(f"epoch {epoch}: train loss {total / n_train:.4f}, "
              f"test accuracy {100 * accuracy(model, x_test, y_test):.1f}%")

    model.eval()
    with tnd.no_grad():
        predicted = model(x_test).argmax(dim=1).numpy()
    truth = y_test.numpy()
    for k, name in enumerate(CLASSES):
        mask = truth == k
        print(f"  {name:8s}: {100 * (predicted[mask] == k).mean():5.1f}% of {mask.sum()} correct")
    acc = float((predicted == truth).mean())
    print(f"test accuracy: {100 * acc:.2f}% in {time.perf_counter() - start:.1f} s")
    return acc


if __name__ == "__main__":
    main(sys.argv[1:])
