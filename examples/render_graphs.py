"""Regenerate the diagrams of docs/visualization.md (needs Graphviz's `dot` and the graphviz package).

    python examples/render_graphs.py                  # writes docs/images/*.svg
    python examples/render_graphs.py --out /tmp/g --format png

Diagrams:

- ``digits_cnn_forward``: the digits CNN and its cross-entropy loss on four 8x8 digits, before
  backward (op parameters, tensor shapes, one box per module);
- ``digits_cnn_backward``: the same graph after ``loss.backward(retain_graph=True)``, each
  parameter coloured by the L2 norm of its gradient;
- ``deep_sigmoid_mlp``: eight Linear + Sigmoid layers, where the gradient fades layer by layer
  from the loss back to the input (the vanishing-gradient problem, in colour).
"""
from __future__ import annotations

import argparse
import os

import tinygrad_nd as tnd
from tinygrad_nd import nn, viz
from tinygrad_nd.data import load_digits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class DigitsCNN(nn.Module):
    """(N, 1, 8, 8) -> (N, 10) logits: two conv blocks, then a linear classifier."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # (N, 8, 4, 4)
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, 16, 2, 2)
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def digits_cnn_graphs(out, fmt):
    tnd.manual_seed(0)
    model, criterion = DigitsCNN(), nn.CrossEntropyLoss()
    images, labels = load_digits()
    x, y = images[:4], labels[:4]
    loss = criterion(model(x), y)
    params = {"x": x, **dict(model.named_parameters())}
    before = viz.render(loss, path=os.path.join(out, f"digits_cnn_forward.{fmt}"), params=params)
    loss.backward(retain_graph=True)  # keep the graph to draw it again, now with gradients
    after = viz.render(loss, path=os.path.join(out, f"digits_cnn_backward.{fmt}"), params=params)
    return [before, after]


def deep_sigmoid_graph(out, fmt):
    tnd.manual_seed(0)
    layers = []
    for _ in range(8):
        layers += [nn.Linear(16, 16), nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(16, 1))
    x, target = tnd.randn(32, 16), tnd.ones(32, 1)
    loss = nn.MSELoss()(model(x), target)
    loss.backward(retain_graph=True)
    return [viz.render(loss, path=os.path.join(out, f"deep_sigmoid_mlp.{fmt}"),
                       params={"x": x, "target": target}, hide_intermediate=True)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "images"),
                        help="folder for the images (default docs/images)")
    parser.add_argument("--format", choices=viz.FORMATS, default="svg")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    written = digits_cnn_graphs(args.out, args.format) + deep_sigmoid_graph(args.out, args.format)
    for path in written:
        print(f"wrote {os.path.relpath(path)}")
    return written


if __name__ == "__main__":
    main()
