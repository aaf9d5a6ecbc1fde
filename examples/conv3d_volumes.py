"""A 3-d CNN tells spheres from cubes in small noisy volumes (synthetic data, no download).

    python examples/conv3d_volumes.py            # about 96% test accuracy in about 10 seconds

Each 12x12x12 volume holds one solid shape of random size and position, with Gaussian noise
added. Sizes are drawn so that spheres and cubes have overlapping volumes: counting bright
voxels does not give the answer away, the shape of the boundary (flat faces and corners against
a round surface) does. The smallest shapes, a few voxels across, are genuinely ambiguous at this
resolution, which is where the remaining errors are.
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

CLASSES = ("sphere", "cube")


def make_volumes(n, size, noise, rng):
    """``n`` volumes ``(n, 1, size, size, size)`` float32 and labels ``(n,)`` int64 (0 sphere, 1 cube)."""
    labels = rng.integers(0, 2, n)
    grid = np.arange(size) + 0.5
    z, y, x = np.meshgrid(grid, grid, grid, indexing="ij")          # (size, size, size) each
    volumes = np.empty((n, size, size, size), dtype=np.float32)
    for i in range(n):
        # equal-volume pairs: a cube of side s holds as much as a sphere of radius 0.62 s
        side = rng.uniform(3.5, 6.5)
        radius = side * rng.uniform(0.5, 0.75)
        extent = side / 2 if labels[i] else radius
        centre = rng.uniform(extent, size - extent, 3)
        dz, dy, dx = z - centre[0], y - centre[1], x - centre[2]
        if labels[i]:
            inside = np.maximum(np.maximum(abs(dz), abs(dy)), abs(dx)) <= side / 2
        else:
            inside = dz**2 + dy**2 + dx**2 <= radius**2
        volumes[i] = inside
    volumes += noise * rng.standard_normal(volumes.shape).astype(np.float32)
    return volumes[:, None], labels.astype(np.int64)  # (n, 1, size, size, size)


def build_model(size):
    return nn.Sequential(
        nn.Conv3d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool3d(2),    # (N, 8, s/2, s/2, s/2)
        nn.Conv3d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool3d(2),   # (N, 16, s/4, s/4, s/4)
        nn.Flatten(),
        nn.Linear(16 * (size // 4) ** 3, len(CLASSES)),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--size", type=int, default=12, help="voxels per side (multiple of 4)")
    parser.add_argument("--noise", type=float, default=0.3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tiny", action="store_true", help="a few batches only (for tests)")
    args = parser.parse_args(argv)
    if args.size % 4 or args.size < 8:
        parser.error(f"--size must be a multiple of 4 and at least 8, got {args.size}")

    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    tnd.manual_seed(args.seed)
    n_train, n_test = (48, 16) if args.tiny else (1200, 400)
    x, y = make_volumes(n_train + n_test, args.size, args.noise, rng)
    x, y = tnd.tensor(x, device=args.device), tnd.tensor(y, device=args.device)
    x_train, y_train, x_test, y_test = x[:n_train], y[:n_train], x[n_train:], y[n_train:]

    model = build_model(args.size).to(args.device)
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
        model.eval()
        with tnd.no_grad():
            acc = float((model(x_test).argmax(dim=1) == y_test).float().mean().item())
        print(f"epoch {epoch}: train loss {total / n_train:.4f}, test accuracy {100 * acc:.1f}%")
    print(f"test accuracy: {100 * acc:.2f}% in {time.perf_counter() - start:.1f} s")
    return acc


if __name__ == "__main__":
    main(sys.argv[1:])
