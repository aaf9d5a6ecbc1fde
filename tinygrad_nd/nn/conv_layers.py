"""N-dimensional convolution and pooling layers: ``ConvNd``, ``MaxPoolNd``, ``AvgPoolNd`` and their
1-, 2- and 3-d forms, thin Modules over ``functional_conv``.

``ConvNd`` takes the number of spatial dims N from ``len(kernel_size)``; ``Conv1d/2d/3d`` fix N
and accept an int kernel size. Inputs are ``(batch, C, *spatial)`` or unbatched ``(C, *spatial)``.
"""
from __future__ import annotations

from ..factories import empty
from ..tensor import Tensor
from . import functional_conv as FC
from .layers import check_input, check_positive_int, float_dtype, init_weight_and_bias
from .module import Module, Parameter


def spatial_names(n: int) -> tuple:
    """Letters for the spatial dims in error messages: L; H, W; D, H, W; else D1..Dn."""
    return {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}.get(n) or tuple(f"D{i + 1}" for i in range(n))


def _ntuple(layer: str, name: str, value, n: int, minimum: int) -> tuple:
    """An int -> ``(value,) * n``; a sequence of ``n`` ints >= ``minimum`` -> a tuple."""
    items = (value,) * n if isinstance(value, int) else value
    try:
        items = tuple(items)
    except TypeError:
        items = None
    if (items is None or len(items) != n
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in items)):
        raise ValueError(f"{layer}: {name} must be an int >= {minimum} or a tuple of {n} such ints, "
                         f"got {value!r}")
    return items


def _rethrow(layer: Module, exc: Exception):
    """Re-raise an error of the functional layer with the layer's repr in front."""
    return type(exc)(f"{layer!r}: {exc}")


class ConvNd(Module):
    """N-d convolution (cross-correlation, as PyTorch): ``F.conv_nd`` with a learned weight
    ``(out_channels, in_channels / groups, *kernel_size)`` and bias ``(out_channels,)``.

    N is ``len(kernel_size)``. Weight and bias start uniform on ``+-1/sqrt(fan_in)`` with
    ``fan_in = in_channels / groups * prod(kernel_size)``, as PyTorch's.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : tuple of N ints
    stride, dilation : int or N-tuple
    padding : int, N-tuple, ``"valid"`` or ``"same"`` (stride 1 only)
    groups : int
        Must divide both channel counts.
    bias : bool

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> conv = nn.ConvNd(2, 4, kernel_size=(3, 3, 3, 3), padding=1)
    >>> conv(tnd.zeros(1, 2, 5, 5, 5, 5)).shape
    (1, 4, 5, 5, 5, 5)
    >>> nn.Conv2d(3, 8, 3, stride=2)
    Conv2d(3, 8, kernel_size=(3, 3), stride=(2, 2))
    """

    _fixed_n = None  # Conv1d/2d/3d fix the number of spatial dims

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        n = self._fixed_n
        if n is None:
            if isinstance(kernel_size, int):
                raise ValueError(f"{name}: an int kernel_size ({kernel_size}) does not say how many "
                                 "spatial dims to use: pass a tuple such as (3, 3), or use "
                                 "Conv1d, Conv2d or Conv3d")
            try:
                n = len(kernel_size)
            except TypeError:
                raise ValueError(f"{name}: kernel_size must be a tuple of ints, got "
                                 f"{kernel_size!r}") from None
            if n < 1:
                raise ValueError(f"{name}: kernel_size must have at least one entry, got {kernel_size!r}")
        self.in_channels = check_positive_int(name, "in_channels", in_channels)
        self.out_channels = check_positive_int(name, "out_channels", out_channels)
        self.kernel_size = _ntuple(name, "kernel_size", kernel_size, n, 1)
        self.stride = _ntuple(name, "stride", stride, n, 1)
        self.dilation = _ntuple(name, "dilation", dilation, n, 1)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: padding must be an int, a tuple, 'same' or 'valid', "
                                 f"got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{name}: padding='same' needs stride 1, got stride={self.stride}")
            self.padding = padding
        else:
            self.padding = _ntuple(name, "padding", padding, n, 0)
        self.groups = check_positive_int(name, "groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        dtype = float_dtype(name, dtype)
        self.weight = Parameter(empty(out_channels, in_channels // groups, *self.kernel_size, dtype=dtype))
        self.register_parameter("bias", Parameter(empty(out_channels, dtype=dtype)) if bias else None)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        init_weight_and_bias(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        n = len(self.kernel_size)
        spatial = ", ".join(spatial_names(n))
        check_input(self, input, lambda x: x.ndim in (n + 1, n + 2) and x.shape[-n - 1] == self.in_channels,
                    f"(N, {self.in_channels}, {spatial}) or ({self.in_channels}, {spatial})")
        try:
            return FC.conv_nd(input, self.weight, self.bias, self.stride, self.padding,
                              self.dilation, self.groups)
        except (ValueError, TypeError) as exc:
            raise _rethrow(self, exc) from None

    def extra_repr(self) -> str:
        n = len(self.kernel_size)
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * n:
            text += f", padding={self.padding!r}"
        if self.dilation != (1,) * n:
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text


class Conv1d(ConvNd):
    """``ConvNd`` on ``(N, C, L)`` inputs; an int kernel_size means ``(k,)``.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> nn.Conv1d(2, 3, 5)(tnd.zeros(4, 2, 10)).shape
    (4, 3, 6)
    """

    _fixed_n = 1


class Conv2d(ConvNd):
    """``ConvNd`` on ``(N, C, H, W)`` inputs; an int kernel_size means ``(k, k)``.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> nn.Conv2d(1, 8, 3)(tnd.zeros(2, 1, 28, 28)).shape
    (2, 8, 26, 26)
    """

    _fixed_n = 2


class Conv3d(ConvNd):
    """``ConvNd`` on ``(N, C, D, H, W)`` inputs; an int kernel_size means ``(k, k, k)``.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> nn.Conv3d(1, 2, 3, padding=1)(tnd.zeros(1, 1, 4, 4, 4)).shape
    (1, 2, 4, 4, 4)
    """

    _fixed_n = 3


class _PoolNd(Module):
    """Shared argument checks of the pooling layers. N comes from the class (MaxPool2d...), else
    from any tuple argument, else from the input's rank at call time."""

    _fixed_n = None

    def _setup(self, kernel_size, stride, padding, dilation=1):
        name = type(self).__name__
        n = self._fixed_n
        for value in (kernel_size, stride, padding, dilation):
            if n is None and isinstance(value, (tuple, list)):
                n = len(value)
        size = n or 1  # validate ints as 1-tuples when N is not known yet
        for arg, value, minimum in (("kernel_size", kernel_size, 1), ("stride", stride, 1),
                                    ("padding", padding, 0), ("dilation", dilation, 1)):
            if value is not None and not isinstance(value, int):
                _ntuple(name, arg, value, size, minimum)
            elif isinstance(value, int):
                _ntuple(name, arg, value, 1, minimum)
        self._n = n
        self.kernel_size = tuple(kernel_size) if isinstance(kernel_size, list) else kernel_size
        self.stride = self.kernel_size if stride is None else (tuple(stride) if isinstance(stride, list) else stride)
        self.padding = tuple(padding) if isinstance(padding, list) else padding

    def _check(self, input):
        n = self._n
        if n is None:
            check_input(self, input, lambda x: x.ndim >= 3, "(N, C, D1, ..., Dk) with k >= 1")
            return input.ndim - 2
        spatial = ", ".join(spatial_names(n))
        check_input(self, input, lambda x: x.ndim in (n + 1, n + 2), f"(N, C, {spatial}) or (C, {spatial})")
        return n

    def _kernel(self, n):
        """kernel_size as an n-tuple, so the functional sees the layer's N (unbatched inputs)."""
        return (self.kernel_size,) * n if isinstance(self.kernel_size, int) else self.kernel_size


class MaxPoolNd(_PoolNd):
    """N-d max pooling (``F.max_pool_nd``): padding is ``-inf``; ties send the gradient to the
    first maximal element of the window (row-major order). Stride defaults to kernel_size.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> nn.MaxPoolNd((2, 2, 2, 2))(tnd.zeros(1, 1, 4, 4, 4, 4)).shape
    (1, 1, 2, 2, 2, 2)
    >>> nn.MaxPool2d(2)
    MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):
        super().__init__()
        self._setup(kernel_size, stride, padding, dilation)
        self.dilation = tuple(dilation) if isinstance(dilation, list) else dilation
        self.return_indices = bool(return_indices)
        self.ceil_mode = bool(ceil_mode)

    def forward(self, input: Tensor):
        n = self._check(input)
        try:
            return FC.max_pool_nd(input, self._kernel(n), self.stride, self.padding, self.dilation,
                                  ceil_mode=self.ceil_mode, return_indices=self.return_indices)
        except (ValueError, TypeError) as exc:
            raise _rethrow(self, exc) from None

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(MaxPoolNd):
    """``MaxPoolNd`` on ``(N, C, L)`` or ``(C, L)``."""

    _fixed_n = 1


class MaxPool2d(MaxPoolNd):
    """``MaxPoolNd`` on ``(N, C, H, W)`` or ``(C, H, W)``.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> nn.MaxPool2d(2)(tnd.arange(16.0).reshape(1, 1, 4, 4)).tolist()
    [[[[5.0, 7.0], [13.0, 15.0]]]]
    """

    _fixed_n = 2


class MaxPool3d(MaxPoolNd):
    """``MaxPoolNd`` on ``(N, C, D, H, W)`` or ``(C, D, H, W)``."""

    _fixed_n = 3


class AvgPoolNd(_PoolNd):
    """N-d average pooling (``F.avg_pool_nd``); ``count_include_pad`` says whether the zero
    padding counts in the divisor. Stride defaults to kernel_size.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> nn.AvgPool1d(2)(tnd.tensor([[[1.0, 3.0, 5.0, 7.0]]])).tolist()
    [[[2.0, 6.0]]]
    >>> nn.AvgPool2d(2)
    AvgPool2d(kernel_size=2, stride=2, padding=0)
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True):
        super().__init__()
        self._setup(kernel_size, stride, padding)
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, input: Tensor) -> Tensor:
        n = self._check(input)
        try:
            return FC.avg_pool_nd(input, self._kernel(n), self.stride, self.padding,
                                  ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad)
        except (ValueError, TypeError) as exc:
            raise _rethrow(self, exc) from None

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(AvgPoolNd):
    """``AvgPoolNd`` on ``(N, C, L)`` or ``(C, L)``."""

    _fixed_n = 1


class AvgPool2d(AvgPoolNd):
    """``AvgPoolNd`` on ``(N, C, H, W)`` or ``(C, H, W)``."""

    _fixed_n = 2


class AvgPool3d(AvgPoolNd):
    """``AvgPoolNd`` on ``(N, C, D, H, W)`` or ``(C, D, H, W)``."""

    _fixed_n = 3
