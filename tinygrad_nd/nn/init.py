"""Weight initialisers with PyTorch's names, signatures and fan computations.

Each function fills its tensor in place (its ``data`` is replaced under ``no_grad``, so nothing
is recorded) and returns it. Random numbers are drawn on the host by the generator that
``tnd.manual_seed`` seeds, in float64, then cast and copied to the tensor's device, so CPU and GPU
runs of one seed start from identical weights.

For a weight of shape ``(out, in, *kernel)``: ``fan_in = in * prod(kernel)`` and
``fan_out = out * prod(kernel)``.
"""
from __future__ import annotations

import math

from .. import backend
from ..autograd import no_grad
from ..factories import generator
from ..tensor import Tensor

_LINEAR_LIKE = ("linear", "conv1d", "conv2d", "conv3d", "conv_nd", "conv_transpose1d",
                "conv_transpose2d", "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended gain for an activation: 1 (linear, conv, sigmoid), 5/3 (tanh),
    sqrt(2) (relu), sqrt(2 / (1 + slope**2)) (leaky_relu, slope ``param`` or 0.01), 3/4 (selu).

    Examples
    --------
    >>> from tinygrad_nd import nn
    >>> round(nn.init.calculate_gain("relu"), 6), nn.init.calculate_gain("tanh")
    (1.414214, 1.6666666666666667)
    """
    if nonlinearity in _LINEAR_LIKE:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; expected one "
                     f"of {', '.join(_LINEAR_LIKE + ('tanh', 'relu', 'leaky_relu', 'selu'))}")


def _calculate_fan_in_and_fan_out(tensor: Tensor):
    """``(fan_in, fan_out)`` of a weight ``(out, in, *kernel)``; needs at least 2 dims."""
    if tensor.ndim < 2:
        raise ValueError(f"nn.init: fan in and fan out need a tensor with at least 2 dimensions "
                         f"(out, in, *kernel), got shape {tensor.shape}")
    receptive = 1
    for size in tensor.shape[2:]:
        receptive *= size
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"nn.init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _check(tensor, name):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"nn.init.{name}: expected a Tensor, got {type(tensor).__name__}")


def _fill(tensor: Tensor, host_values) -> Tensor:
    """Put host values into ``tensor`` (its dtype, its device), recording nothing."""
    with no_grad():
        tensor.data = backend.as_array(host_values, dtype=tensor.dtype, device=tensor.device)
    return tensor


def _rng(gen):
    return generator() if gen is None else gen


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    """Fill with samples of the uniform distribution on ``[a, b)``.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> w = nn.init.uniform_(tnd.empty(100), -0.5, 0.5)
    >>> bool((w.abs() <= 0.5).numpy().all())
    True
    """
    _check(tensor, "uniform_")
    if not a <= b:
        raise ValueError(f"nn.init.uniform_: needs a <= b, got a={a}, b={b}")
    return _fill(tensor, _rng(generator).uniform(a, b, size=tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    """Fill with samples of the normal distribution ``N(mean, std**2)``.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> nn.init.normal_(tnd.empty(2, 3), std=0.01).shape
    (2, 3)
    """
    _check(tensor, "normal_")
    if std < 0:
        raise ValueError(f"nn.init.normal_: std must be >= 0, got {std}")
    return _fill(tensor, _rng(generator).normal(mean, std, size=tensor.shape))


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> nn.init.constant_(tnd.empty(3), 0.5).tolist()
    [0.5, 0.5, 0.5]
    """
    _check(tensor, "constant_")
    return _fill(tensor, backend.filled(tensor.shape, val, tensor.dtype))


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with zeros.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> nn.init.zeros_(tnd.ones(2)).tolist()
    [0.0, 0.0]
    """
    return constant_(tensor, 0)


def ones_(tensor: Tensor) -> Tensor:
    """Fill with ones.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> nn.init.ones_(tnd.zeros(2)).tolist()
    [1.0, 1.0]
    """
    return constant_(tensor, 1)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot & Bengio (2010): uniform on ``[-b, b]`` with ``b = gain * sqrt(6 / (fan_in + fan_out))``.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> w = nn.init.xavier_uniform_(tnd.empty(3, 5))  # bound sqrt(6 / 8)
    >>> bool((w.abs() <= 0.75 ** 0.5).numpy().all())
    True
    """
    _check(tensor, "xavier_uniform_")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return _fill(tensor, _rng(generator).uniform(-bound, bound, size=tensor.shape))


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot & Bengio (2010): ``N(0, std**2)`` with ``std = gain * sqrt(2 / (fan_in + fan_out))``.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> nn.init.xavier_normal_(tnd.empty(3, 5)).shape
    (3, 5)
    """
    _check(tensor, "xavier_normal_")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return _fill(tensor, _rng(generator).normal(0.0, std, size=tensor.shape))


def _kaiming_std(tensor, a, mode, nonlinearity):
    fan = _fan(tensor, mode)
    if fan == 0:
        raise ValueError(f"nn.init: cannot initialise a tensor of shape {tensor.shape}: its "
                         f"{mode} is 0")
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
    """He et al. (2015): uniform on ``[-b, b]``, ``b = gain * sqrt(3 / fan)``, where
    ``gain = calculate_gain(nonlinearity, a)`` and ``fan`` is ``fan_in`` or ``fan_out``.

    PyTorch's ``Linear`` and ``Conv`` layers use ``a=sqrt(5)``, which gives ``b = 1 / sqrt(fan_in)``.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> w = nn.init.kaiming_uniform_(tnd.empty(8, 6), nonlinearity="relu")  # b = sqrt(6 / 6)
    >>> bool((w.abs() <= 1.0).numpy().all())
    True
    """
    _check(tensor, "kaiming_uniform_")
    if tensor.numel() == 0:
        return tensor
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return _fill(tensor, _rng(generator).uniform(-bound, bound, size=tensor.shape))


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
    """He et al. (2015): ``N(0, std**2)`` with ``std = gain / sqrt(fan)`` (see ``kaiming_uniform_``).

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> nn.init.kaiming_normal_(tnd.empty(16, 4, 3, 3), mode="fan_out", nonlinearity="relu").shape
    (16, 4, 3, 3)
    """
    _check(tensor, "kaiming_normal_")
    if tensor.numel() == 0:
        return tensor
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    return _fill(tensor, _rng(generator).normal(0.0, std, size=tensor.shape))
