"""Basic layers: ``Linear``, activations, ``Flatten``, ``Dropout``, ``Identity`` and the loss modules.

Each layer checks its input and raises an error that names the layer (its repr) and the shape
it expected.
"""
from __future__ import annotations

import math

from .. import backend
from ..factories import empty
from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module, Parameter


def check_input(layer: Module, input, ok=None, expected: str = "") -> None:
    """Raise TypeError for a non-Tensor, ValueError naming ``layer`` and ``expected`` unless
    ``ok(input)`` holds."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{layer!r}: expected a Tensor input, got {type(input).__name__}")
    if ok is not None and not ok(input):
        raise ValueError(f"{layer!r}: expected input {expected}, got {input.shape}")


def check_positive_int(layer: str, name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}")
    return value


def float_dtype(layer: str, dtype):
    dtype = backend.float32 if dtype is None else backend.as_dtype(dtype)
    if not backend.is_float_dtype(dtype):
        raise TypeError(f"{layer}: dtype must be floating point, got {dtype}")
    return dtype


def init_weight_and_bias(weight: Parameter, bias: Parameter | None) -> None:
    """PyTorch's default for Linear and Conv: kaiming_uniform_(a=sqrt(5)) for the weight, which
    is uniform on +-1/sqrt(fan_in), and the bias uniform on the same +-1/sqrt(fan_in)."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(bias, -bound, bound)


class Linear(Module):
    """``y = x @ weight.T + bias``: weight ``(out_features, in_features)``, bias ``(out_features,)``.

    Input ``(*, in_features)``, output ``(*, out_features)``. Weight and bias start uniform on
    ``+-1/sqrt(in_features)``, as PyTorch's.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> layer = nn.Linear(3, 2)
    >>> layer(tnd.ones(4, 3)).shape
    (4, 2)
    >>> layer
    Linear(in_features=3, out_features=2, bias=True)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__()
        self.in_features = check_positive_int("Linear", "in_features", in_features)
        self.out_features = check_positive_int("Linear", "out_features", out_features)
        dtype = float_dtype("Linear", dtype)
        self.weight = Parameter(empty(out_features, in_features, dtype=dtype))
        self.register_parameter("bias", Parameter(empty(out_features, dtype=dtype)) if bias else None)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        init_weight_and_bias(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        check_input(self, input, lambda x: x.ndim >= 1 and x.shape[-1] == self.in_features,
                    f"(*, {self.in_features})")
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. to switch a layer off)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input: Tensor) -> Tensor:
        return input


class ReLU(Module):
    """``max(x, 0)`` elementwise (gradient 0 at 0).

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> nn.ReLU()(tnd.tensor([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """

    def forward(self, input: Tensor) -> Tensor:
        check_input(self, input)
        return F.relu(input)


class Sigmoid(Module):
    """``1 / (1 + exp(-x))`` elementwise.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> nn.Sigmoid()(tnd.tensor([0.0])).tolist()
    [0.5]
    """

    def forward(self, input: Tensor) -> Tensor:
        check_input(self, input)
        return F.sigmoid(input)


class Tanh(Module):
    """``tanh(x)`` elementwise.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> nn.Tanh()(tnd.tensor([0.0])).tolist()
    [0.0]
    """

    def forward(self, input: Tensor) -> Tensor:
        check_input(self, input)
        return F.tanh(input)


class Flatten(Module):
    """Merge dims ``start_dim..end_dim`` (by default all but the batch dim).

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> nn.Flatten()(tnd.zeros(2, 3, 4, 5)).shape
    (2, 60)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input: Tensor) -> Tensor:
        check_input(self, input)
        try:
            return input.flatten(self.start_dim, self.end_dim)
        except (IndexError, ValueError) as exc:
            raise ValueError(f"{self!r}: cannot flatten an input of shape {input.shape}: {exc}") from None

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """In training, zero each element with probability ``p`` and scale the others by
    ``1 / (1 - p)``; in eval mode, the identity. The mask comes from the seeded host generator.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> drop = nn.Dropout(0.5).eval()
    >>> drop(tnd.ones(3)).tolist()
    [1.0, 1.0, 1.0]
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be a probability in [0, 1], got {p!r}")
        self.p = float(p)

    def forward(self, input: Tensor) -> Tensor:
        check_input(self, input)
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _check_reduction(layer: str, reduction: str) -> str:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{layer}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


class MSELoss(Module):
    """Squared error between ``input`` and ``target`` (same shape), averaged by default.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> nn.MSELoss()(tnd.tensor([1.0, 3.0]), tnd.tensor([0.0, 0.0])).item()
    5.0
    >>> nn.MSELoss(reduction="sum")(tnd.tensor([1.0, 3.0]), tnd.tensor([0.0, 0.0])).item()
    10.0
    """

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = _check_reduction("MSELoss", reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        check_input(self, input)
        return F.mse_loss(input, target, reduction=self.reduction)

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class CrossEntropyLoss(Module):
    """Cross entropy of logits ``(N, C)`` or ``(N, C, d1, ...)`` against integer class targets
    ``(N,)`` or ``(N, d1, ...)``: ``-log softmax(input, dim=1)[target]``, averaged by default.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> round(nn.CrossEntropyLoss()(tnd.zeros(2, 4), tnd.tensor([1, 2])).item(), 4)
    1.3863
    """

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = _check_reduction("CrossEntropyLoss", reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        check_input(self, input, lambda x: x.ndim >= 2, "logits (N, C) or (N, C, d1, ..., dk)")
        return F.cross_entropy(input, target, reduction=self.reduction)

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"
