"""Train a small CNN on the 8x8 handwritten digits that scikit-learn ships (no download).

    python examples/train_digits.py                    # 98.6-99.7% test accuracy, ~6 s on 2 cores
    python examples/train_digits.py --optimizer sgd --lr 0.05 --epochs 30
    python examples/train_digits.py --device cuda      # needs CuPy and an NVIDIA GPU

Writes to --out (default runs/digits): ``digits.npz`` (checkpoint: model and optimizer state,
the options and the history; load it with ``tnd.load``), ``curves.png`` (loss and accuracy per
epoch) and ``graph.svg`` (the model's graph, when Graphviz is installed).

The run is deterministic: one seed gives the same initial weights, the same split, the same
batches and so the same accuracy every time (on one machine and thread count).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

import tinygrad_nd as tnd
import tinygrad_nd.nn.functional as F
from tinygrad_nd import nn, optim
from tinygrad_nd.data import DataLoader, TensorDataset

OPTIMIZERS = {
    # name: (constructor, default learning rate)
    "adam": (lambda params, lr: optim.Adam(params, lr=lr), 3e-3),
    "adamw": (lambda params, lr: optim.AdamW(params, lr=lr, weight_decay=1e-2), 3e-3),
    "sgd": (lambda params, lr: optim.SGD(params, lr=lr, momentum=0.9, nesterov=True), 5e-2),
    "rmsprop": (lambda params, lr: optim.RMSprop(params, lr=lr), 1e-3),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, split and shuffling")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=None, help="default depends on --optimizer")
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--out", default=os.path.join("runs", "digits"), help="output folder")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--tiny", action="store_true", help="a few batches only (for tests)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1:
        parser.error(f"--epochs and --batch-size must be at least 1, got {args.epochs} and {args.batch_size}")
    if not 0 < args.test_fraction < 1:
        parser.error(f"--test-fraction must lie strictly between 0 and 1, got {args.test_fraction}")
    return args


def build_model() -> nn.Module:
    """Two conv blocks and a linear classifier: (N, 1, 8, 8) -> (N, 10) logits.

    Batch normalisation after each convolution makes training insensitive to the learning rate
    and the seed; in eval mode it uses the running statistics gathered during training.
    """
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),   # (N, 32, 4, 4)
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),  # (N, 64, 2, 2)
        nn.Flatten(),                                                                     # (N, 256)
        nn.Linear(64 * 2 * 2, 10),
    )


def split(images, labels, test_fraction, seed):
    """A seeded, class-stratified train/test split (the same split for every run of one seed)."""
    rng = np.random.default_rng(seed)
    y = labels.numpy()
    test = []
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(y == digit))
        test.extend(members[: round(len(members) * test_fraction)].tolist())
    is_test = np.zeros(len(y), dtype=bool)
    is_test[test] = True
    train_rows, test_rows = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    return (images[train_rows], labels[train_rows]), (images[test_rows], labels[test_rows])


def evaluate(model, loader):
    """(mean loss, accuracy) of ``model`` over ``loader``, without recording a graph."""
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    with tnd.no_grad():
        for x, y in loader:
            logits = model(x)
            total_loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.argmax(dim=1) == y).sum().item())
            count += y.shape[0]
    return total_loss / max(count, 1), correct / max(count, 1)


def progress(iterable, args, **kwargs):
    """A tqdm bar when tqdm is installed (it is an optional dependency), else the bare iterable."""
    if args.quiet:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, leave=True, dynamic_ncols=True, **kwargs)


def plot_curves(history, path):
    """Loss and accuracy per epoch, train and test, as a PNG (matplotlib with the Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = range(1, len(history["train_loss"]) + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, history["train_loss"], label="train")
    left.plot(epochs, history["test_loss"], label="test")
    left.set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="loss")
    right.plot(epochs, [100 * a for a in history["train_acc"]], label="train")
    right.plot(epochs, [100 * a for a in history["test_acc"]], label="test")
    right.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def draw_model(model, x, y, path):
    """An SVG of the graph of one loss through ``model``; a one-line note instead if that fails."""
    try:
        from tinygrad_nd import viz
    except ImportError as exc:
        return f"graph diagram skipped: tinygrad_nd.viz is unavailable ({exc})"
    model.eval()  # batch norm uses its running statistics: the diagram shows inference plus the loss
    model.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward(retain_graph=True)  # keep the graph to draw it, with each parameter's gradient norm
    try:
        return f"graph diagram: {viz.render(loss, path=path, params=dict(model.named_parameters()))}"
    except (ImportError, RuntimeError, OSError, subprocess.CalledProcessError) as exc:  # no graphviz or no `dot`
        return f"graph diagram skipped: {str(exc).splitlines()[0]}"


def train(args) -> dict:
    """Run the whole experiment described by ``args``; returns the history and the output paths."""
    start = time.perf_counter()
    tnd.manual_seed(args.seed)  # initial weights
    images, labels = tnd.data.load_digits()
    (x_train, y_train), (x_test, y_test) = split(images, labels, args.test_fraction, args.seed)
    if args.tiny:
        x_train, y_train, x_test, y_test = x_train[:96], y_train[:96], x_test[:64], y_test[:64]
    x_train, y_train = x_train.to(args.device), y_train.to(args.device)
    x_test, y_test = x_test.to(args.device), y_test.to(args.device)
    train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=args.batch_size,
                              shuffle=True, seed=args.seed)
    test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=256)

    model = build_model().to(args.device)
    make_optimizer, default_lr = OPTIMIZERS[args.optimizer]
    lr = default_lr if args.lr is None else args.lr
    optimizer = make_optimizer(model.parameters(), lr)
    epochs = 1 if args.tiny else args.epochs
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    print(f"{len(x_train)} training and {len(x_test)} test images, {args.optimizer} lr={lr}, "
          f"{sum(p.numel() for p in model.parameters())} parameters on {args.device}")

    history = {"train_loss": [], "train_acc": [], "test_loss": [], "test_acc": []}
    for epoch in range(1, epochs + 1):
        model.train()
        seen, loss_sum, correct = 0, 0.0, 0
        bar = progress(train_loader, args, desc=f"epoch {epoch:2d}/{epochs}", unit="batch")
        for x, y in bar:
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += y.shape[0]
            loss_sum += loss.item() * y.shape[0]
            correct += int((logits.argmax(dim=1) == y).sum().item())
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{100 * correct / seen:.1f}%")
        scheduler.step()
        test_loss, test_acc = evaluate(model, test_loader)
        history["train_loss"].append(loss_sum / seen)
        history["train_acc"].append(correct / seen)
        history["test_loss"].append(test_loss)
        history["test_acc"].append(test_acc)
        if not args.quiet:  # through tqdm.write, when there is a bar, so that the bar stays intact
            (bar.write if hasattr(bar, "write") else print)(
                f"epoch {epoch:2d}: test loss {test_loss:.4f}, test accuracy {100 * test_acc:.2f}%")
    seconds = time.perf_counter() - start

    os.makedirs(args.out, exist_ok=True)
    checkpoint = os.path.join(args.out, "digits.npz")
    tnd.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epochs,
              "args": {k: v for k, v in vars(args).items() if v is not None}, "history": history},
             checkpoint)
    curves = os.path.join(args.out, "curves.png")
    plot_curves(history, curves)
    note = draw_model(model, x_test[:4], y_test[:4], os.path.join(args.out, "graph.svg"))

    test_acc = history["test_acc"][-1]
    print(f"test accuracy: {100 * test_acc:.2f}% ({round(test_acc * len(x_test))}/{len(x_test)}) "
          f"after {epochs} epochs in {seconds:.1f} s")
    print(f"checkpoint: {checkpoint}")
    print(f"curves: {curves}")
    print(note)
    return {"history": history, "test_accuracy": test_acc, "seconds": seconds,
            "checkpoint": checkpoint, "curves": curves}


def main(argv=None):
    return train(parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
