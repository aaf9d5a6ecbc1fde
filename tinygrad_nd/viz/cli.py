"""``python -m tinygrad_nd.viz`` (or ``tinygrad-nd-viz``): draw an example model's graph.

The example models are built from ``tinygrad_nd.nn`` layers, imported when a model is built,
so that ``to_dot`` and ``render`` work with the ops alone.
"""
from __future__ import annotations

import argparse
import math
import sys

from .. import factories
from ..tensor import Tensor
from .dot import to_dot
from .render import FORMATS, GraphvizNotFoundError, render

MODELS = ("mlp", "cnn")
DEFAULT_SHAPES = {"mlp": (4, 64), "cnn": (1, 1, 8, 8)}
CLASSES = 10


def _nn():
    try:
        from .. import nn

        nn.Module, nn.Sequential, nn.Linear, nn.ReLU, nn.Flatten  # noqa: B018  (all present?)
    except (ImportError, AttributeError) as exc:
        raise RuntimeError(f"the example models need the tinygrad_nd.nn layers, which failed "
                           f"to import ({exc}); to_dot and render work on any graph "
                           "without them") from None
    return nn


def example_model(name: str, input_shape):
    """A small example model and an input for it.

    ``"mlp"``: Linear(in, 32), ReLU, Linear(32, 10) on ``(batch, in)``. ``"cnn"``: the digits
    CNN, Conv(C, 8, 3, padding=1), ReLU, MaxPool(2), Conv(8, 16, 3, padding=1), ReLU,
    MaxPool(2), Flatten, Linear(16 * prod(spatial // 4), 10), with as many spatial dims as
    ``input_shape`` has after ``(batch, C)``: ``(1, 1, 8, 8)`` is the 8x8 digits.

    Returns
    -------
    (Module, Tensor)
        The model (seeded, so the same every run) and a random input of ``input_shape``.

    Examples
    --------
    >>> from tinygrad_nd.viz import example_model
    >>> model, x = example_model("cnn", (2, 1, 8, 8))
    >>> model(x).shape
    (2, 10)
    """
    nn = _nn()
    shape = tuple(int(s) for s in input_shape)
    factories.manual_seed(0)
    if name == "mlp":
        if len(shape) < 2:
            raise ValueError(f"mlp: input shape must be (batch, features), got {shape}")
        model = nn.Sequential(nn.Linear(shape[-1], 32), nn.ReLU(), nn.Linear(32, CLASSES))
    elif name == "cnn":
        spatial = shape[2:]
        if len(shape) < 3 or min(spatial) < 4:
            raise ValueError(f"cnn: input shape must be (batch, channels, *spatial) with every "
                             f"spatial size at least 4, got {shape}")
        model = _cnn(nn, shape[1], spatial)
    else:
        raise ValueError(f"unknown example model {name!r}: choose one of {MODELS}")
    return model, factories.randn(*shape)


def _cnn(nn, channels, spatial):
    n = len(spatial)
    conv = getattr(nn, f"Conv{n}d", None) if n <= 3 else None
    pool = getattr(nn, f"MaxPool{n}d", None) if n <= 3 else None
    if conv is None:  # ConvNd takes the kernel as an N-tuple
        conv = lambda cin, cout, k, padding: nn.ConvNd(cin, cout, (k,) * n, padding=padding)  # noqa: E731
        pool = lambda k: nn.MaxPoolNd((k,) * n)  # noqa: E731

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                conv(channels, 8, 3, padding=1), nn.ReLU(), pool(2),
                conv(8, 16, 3, padding=1), nn.ReLU(), pool(2))
            self.classifier = nn.Sequential(
                nn.Flatten(), nn.Linear(16 * math.prod(s // 4 for s in spatial), CLASSES))

        def forward(self, x):
            return self.classifier(self.features(x))

    return CNN()


def example_graph(name, input_shape, loss=False, backward=False):
    """Run an example model; return ``(root, params)`` for ``to_dot``: the output, or with
    ``loss``/``backward`` an ``nn.CrossEntropyLoss`` against labels ``arange(batch) % 10``
    (after ``backward(retain_graph=True)`` when ``backward``). ``params`` names the input."""
    model, x = example_model(name, input_shape)
    root = model(x)
    if loss or backward:
        labels = Tensor(factories.arange(x.shape[0]).numpy() % CLASSES)
        root = _nn().CrossEntropyLoss()(root, labels)
        if backward:
            root.backward(retain_graph=True)
    return root, {"x": x}


def _shape(text):
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints like 1,1,8,8, got {text!r}") from None
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes like 1,1,8,8, got {text!r}")
    return shape


def main(argv=None) -> int:
    """Command line entry: parse ``argv`` (default ``sys.argv[1:]``), draw, return an exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m tinygrad_nd.viz",
        description="Draw the computation graph of an example tinygrad_nd model.")
    parser.add_argument("--model", choices=MODELS, default="cnn",
                        help="example model (default cnn: the digits CNN)")
    parser.add_argument("--input-shape", type=_shape, default=None,
                        help="input shape, e.g. 1,1,8,8 (cnn) or 4,64 (mlp)")
    parser.add_argument("--out", default="graph.svg",
                        help="image to write (default graph.svg); '-' prints the DOT text")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="image format (default: from --out's suffix, else svg)")
    parser.add_argument("--loss", action="store_true", help="draw up to a cross-entropy loss")
    parser.add_argument("--backward", action="store_true",
                        help="run backward from the loss and show gradient norms (implies --loss)")
    parser.add_argument("--hide-intermediate", action="store_true",
                        help="leave intermediate shapes off the edges")
    parser.add_argument("--max-nodes", type=int, default=None, help="cap on the nodes drawn")
    parser.add_argument("--rankdir", choices=("TB", "LR"), default="TB", help="layout direction")
    args = parser.parse_args(argv)

    shape = args.input_shape or DEFAULT_SHAPES[args.model]
    try:
        root, params = example_graph(args.model, shape, args.loss, args.backward)
    except (ValueError, RuntimeError) as exc:
        parser.error(str(exc))
    options = dict(params=params, hide_intermediate=args.hide_intermediate,
                   max_nodes=args.max_nodes, rankdir=args.rankdir)
    if args.out == "-":
        sys.stdout.write(to_dot(root, **options))
        return 0
    try:
        path = render(root, path=args.out, format=args.format, **options)
    except (GraphvizNotFoundError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0
