"""Convolution and pooling wrappers (PyTorch names and defaults), re-exported by ``functional``.

Each wrapper turns ints, tuples and ``"same"``/``"valid"`` into the normalised static
parameters of a primitive in ``ops.conv`` or ``ops.pool``, adds the batch axis to an unbatched
input and removes it again; the bias goes to the convolution primitive, which adds it.
"""
from __future__ import annotations

import functools
from numbers import Integral

from ..ops.conv import ConvNd, check_conv_shapes, conv_static
from ..ops.pool import AvgPoolNd, MaxPoolNd, check_pool_shape, max_pool_nd_indices, pool_static
from ..tensor import Tensor


def _is_int(value):
    if type(value) is int:  # the common case, checked cheaply
        return True
    return isinstance(value, Integral) and not isinstance(value, bool)  # numpy ints too


def _ntuple(value, n, name, op):
    """An int -> ``(value,) * n``; a sequence of ``n`` ints -> a tuple; else ValueError."""
    if _is_int(value):
        return (int(value),) * n
    try:
        items = tuple(value)
    except TypeError:
        items = None
    if items is None or len(items) != n or not all(_is_int(v) for v in items):
        raise ValueError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value!r}")
    return tuple(int(v) for v in items)


def _conv_padding(padding, kernel, stride, dilation, op):
    """``padding`` as N ``(lo, hi)`` pairs. ``"same"`` pads ``d * (k - 1)`` in all, the odd
    element on the end (as PyTorch), and needs stride 1; ``"valid"`` is no padding."""
    n = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * n
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{op}: padding='same' is not supported for strided "
                                 f"convolutions (stride={stride})")
            total = [d * (k - 1) for k, d in zip(kernel, dilation)]
            return tuple((t // 2, t - t // 2) for t in total)
        raise ValueError(f"{op}: padding must be an int, a tuple, 'valid' or 'same', "
                         f"got {padding!r}")
    if _is_int(padding):
        return ((int(padding), int(padding)),) * n
    items = tuple(padding)
    if len(items) != n:
        raise ValueError(f"{op}: padding {padding!r} needs {n} entries, one per spatial dim")
    pairs = []
    for p in items:
        if _is_int(p):
            pairs.append((int(p), int(p)))
        elif isinstance(p, (tuple, list)) and len(p) == 2 and all(_is_int(v) for v in p):
            pairs.append((int(p[0]), int(p[1])))  # an extension of PyTorch: (lo, hi) per dim
        else:
            raise ValueError(f"{op}: padding entries must be ints or (lo, hi) pairs, got {p!r}")
    return tuple(pairs)


def _unbatched(shape, n: int, op: str, what: str) -> bool:
    """Whether an input of ``shape`` lacks the batch axis; ValueError for other ranks."""
    if len(shape) == n + 2:
        return False
    if len(shape) == n + 1:
        return True
    dims = ", ".join(f"D{i + 1}" for i in range(n))
    raise ValueError(f"{op}: {what} needs an input of shape (batch, C, {dims}) or (C, {dims}), "
                     f"got shape {shape}")


def _conv_params(op, x_shape, w_shape, stride, padding, dilation, groups):
    """``(unbatched, params)``: whether the input lacks the batch axis, and the primitive's
    static parameters checked against the shapes (errors named ``op``)."""
    n, kernel = len(w_shape) - 2, w_shape[2:]
    if n < 1:
        raise ValueError(f"{op}: weight must be (C_out, C_in / groups, *kernel) with at least "
                         f"one spatial dim, got shape {w_shape}")
    unbatched = _unbatched(x_shape, n, op, f"a weight of shape {w_shape}")
    stride = _ntuple(stride, n, "stride", op)
    dilation = _ntuple(dilation, n, "dilation", op)
    params = conv_static(op, stride, _conv_padding(padding, kernel, stride, dilation, op),
                         dilation, groups)
    check_conv_shapes(op, (1,) + x_shape if unbatched else x_shape, w_shape, **params)
    return unbatched, params


# pure in hashable arguments; typed, so that True never hits the entry of 1 (bools are refused)
_conv_params_cached = functools.lru_cache(maxsize=256, typed=True)(_conv_params)


def _conv(op, input, weight, bias, stride, padding, dilation, groups):
    x_data, w_data = input.data, weight.data  # metadata read on every step: read once
    try:  # the same arguments every step: one cached lookup (the dict is never modified)
        unbatched, params = _conv_params_cached(op, x_data.shape, w_data.shape, stride, padding,
                                                dilation, groups)
    except TypeError:  # a list argument (unhashable)
        unbatched, params = _conv_params(op, x_data.shape, w_data.shape, stride, padding,
                                         dilation, groups)
    if x_data.dtype != w_data.dtype:
        raise TypeError(f"{op}: input ({x_data.dtype}) and weight ({w_data.dtype}) dtypes differ; "
                        "convert one with .to(dtype=...)")
    x = input.unsqueeze(0) if unbatched else input
    if bias is None:
        y = ConvNd.apply_checked(params, x, weight)
    else:
        b_data = bias.data
        if b_data.shape != w_data.shape[:1]:
            raise ValueError(f"{op}: bias must have shape ({w_data.shape[0]},), got {b_data.shape}")
        if b_data.dtype != w_data.dtype:
            raise TypeError(f"{op}: bias ({b_data.dtype}) and weight ({w_data.dtype}) dtypes "
                            "differ; convert one with .to(dtype=...)")
        y = ConvNd.apply_checked(params, x, weight, bias)  # the bias add runs inside the primitive
    return y.squeeze(0) if unbatched else y


def conv_nd(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
            dilation=1, groups: int = 1) -> Tensor:
    """N-dimensional convolution (cross-correlation, no kernel flip, as PyTorch).

    ``y[b, o, *p] = bias[o] + sum_{c, k} weight[o, c, *k] * x[b, g * C_in/groups + c,
    *(p * stride - pad_lo + k * dilation)]`` where ``g = o // (C_out / groups)`` and ``x`` is
    zero outside the input.

    Parameters
    ----------
    input : Tensor
        ``(N, C_in, D1, ..., Dk)``, or ``(C_in, D1, ..., Dk)`` unbatched.
    weight : Tensor
        ``(C_out, C_in / groups, K1, ..., Kk)``; the number of spatial dims ``k >= 1`` is
        ``weight.ndim - 2``.
    bias : Tensor, optional
        ``(C_out,)``, added to every output position.
    stride, dilation : int or k-tuple of int
        Positive.
    padding : int, k-tuple, ``"valid"`` or ``"same"``
        Zeros on both sides of each spatial dim; an entry may also be a ``(lo, hi)`` pair.
        ``"same"`` keeps the spatial size (stride 1 only); an odd total goes to the end.
    groups : int
        Splits the channels into ``groups`` independent convolutions.

    Returns
    -------
    Tensor
        ``(N, C_out, O1, ..., Ok)`` with ``O = (D + lo + hi - dilation * (K - 1) - 1) // stride
        + 1``; unbatched in, unbatched out.

    Raises
    ------
    ValueError
        Wrong input rank for the weight, channel mismatch, ``groups`` not dividing the
        channels, a kernel larger than the padded input, non-positive stride or dilation,
        negative padding, ``"same"`` with stride > 1, or a bias of the wrong shape.
    TypeError
        Input and weight of different dtypes.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> import tinygrad_nd.nn.functional as F
    >>> x = tnd.arange(5.0).reshape(1, 1, 5)
    >>> F.conv_nd(x, tnd.tensor([[[1.0, 0.0, -1.0]]])).tolist()
    [[[-2.0, -2.0, -2.0]]]
    >>> F.conv_nd(tnd.ones(2, 3, 8, 8, 8), tnd.ones(4, 3, 3, 3, 3), stride=2, padding=1).shape
    (2, 4, 4, 4, 4)
    """
    return _conv("conv_nd", input, weight, bias, stride, padding, dilation, groups)


def _conv_checked(n):
    name = f"conv{n}d"

    def conv(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
             dilation=1, groups: int = 1) -> Tensor:
        if weight.data.ndim != n + 2:
            raise ValueError(f"{name}: weight must be (C_out, C_in / groups, *{n} kernel dims), "
                             f"got shape {weight.shape}")
        return _conv(name, input, weight, bias, stride, padding, dilation, groups)

    conv.__name__ = conv.__qualname__ = name
    conv.__doc__ = f"""{n}-d convolution: ``conv_nd`` with a weight of {n + 2} dims checked.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> import tinygrad_nd.nn.functional as F
    >>> F.{name}(tnd.ones(1, 2{', 6' * n}), tnd.ones(3, 2{', 3' * n}), padding="same").shape
    (1, 3{', 6' * n})
    """
    return conv


conv1d = _conv_checked(1)
conv2d = _conv_checked(2)
conv3d = _conv_checked(3)


def _pool_args(shape, kernel_size, stride, padding, dilation, n, op):
    """``(unbatched, params)`` for an input of ``shape``: whether a batch axis must be added,
    and the normalised window parameters."""
    if n is None:  # the generic form: N from a tuple kernel_size, else from the input rank
        n = len(kernel_size) if isinstance(kernel_size, (tuple, list)) else len(shape) - 2
        if n < 1:
            raise ValueError(f"{op}: needs an input (batch, C, *spatial), got shape {shape}")
    unbatched = _unbatched(shape, n, op, f"a {n}-d window")
    kernel_size = _ntuple(kernel_size, n, "kernel_size", op)
    stride = kernel_size if stride is None or stride == () or stride == [] else \
        _ntuple(stride, n, "stride", op)
    dilation = (1,) * n if dilation is None else _ntuple(dilation, n, "dilation", op)
    params = pool_static(op, kernel_size, stride, _ntuple(padding, n, "padding", op), dilation)
    return unbatched, params


def _max_pool_args(op, n, shape, kernel_size, stride, padding, dilation, ceil_mode):
    """``_pool_args`` checked against the (batched) input shape, with ``ceil_mode``: the
    parameters of a ``MaxPoolNd`` node."""
    unbatched, params = _pool_args(shape, kernel_size, stride, padding, dilation, n, op)
    params["ceil_mode"] = bool(ceil_mode)
    check_pool_shape(op, (1,) + shape if unbatched else shape, **params)
    return unbatched, params


_max_pool_args_cached = functools.lru_cache(maxsize=256, typed=True)(_max_pool_args)


def _max_pool(op, n, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    try:  # the same arguments every step: one cached lookup
        unbatched, params = _max_pool_args_cached(op, n, input.data.shape, kernel_size, stride,
                                                  padding, dilation, ceil_mode)
    except TypeError:  # a list argument (unhashable)
        unbatched, params = _max_pool_args(op, n, input.shape, kernel_size, stride, padding,
                                           dilation, ceil_mode)
    x = input.unsqueeze(0) if unbatched else input
    y = MaxPoolNd.apply_checked(params, x)  # params: cached, never modified
    if unbatched:
        y = y.squeeze(0)
    if not return_indices:
        return y
    indices = max_pool_nd_indices(x, **params)  # a second pass
    return y, indices.squeeze(0) if unbatched else indices


def _avg_pool(op, n, input, kernel_size, stride, padding, ceil_mode, count_include_pad):
    unbatched, params = _pool_args(input.shape, kernel_size, stride, padding, None, n, op)
    x = input.unsqueeze(0) if unbatched else input
    check_pool_shape(op, x.shape, ceil_mode=ceil_mode, **params)
    del params["dilation"]  # average pooling has none
    y = AvgPoolNd.apply(x, ceil_mode=ceil_mode, count_include_pad=count_include_pad, **params)
    return y.squeeze(0) if unbatched else y


def max_pool_nd(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
                ceil_mode: bool = False, return_indices: bool = False):
    """N-dimensional max pooling.

    ``y[b, c, *o]`` is the maximum of ``x[b, c, *(o * stride - padding + k * dilation)]`` over
    the window offsets ``k``; padding is ``-inf`` and never chosen.

    Parameters
    ----------
    input : Tensor
        ``(N, C, D1, ..., Dk)``; ``k = input.ndim - 2``, or ``len(kernel_size)`` when it is a
        tuple (then ``(C, D1, ..., Dk)`` unbatched is accepted too).
    kernel_size : int or k-tuple of int
    stride : int or k-tuple of int, optional
        Defaults to ``kernel_size``.
    padding : int or k-tuple of int
        At most half the kernel size.
    dilation : int or k-tuple of int
    ceil_mode : bool
        Round the output size up; the last window must still start inside the input or its
        left padding (PyTorch's rule).
    return_indices : bool
        Also return, for every output, the flat index of the chosen element in its
        ``(b, c)`` plane of the input (an int64 Tensor, as PyTorch).

    Returns
    -------
    Tensor or (Tensor, Tensor)
        ``(N, C, O1, ..., Ok)`` with ``O = floor_or_ceil((D + 2p - dilation * (K - 1) - 1) /
        stride) + 1``; and the indices when asked.

    Notes
    -----
    Gradient: each ``gy`` goes to its window's chosen element; overlapping windows accumulate.
    Ties go to the first maximal element in row-major window order. NaN propagates: a window
    holding NaN outputs NaN and its gradient goes to that NaN (the last one, as PyTorch's CPU
    kernel).

    Raises
    ------
    ValueError
        Wrong input rank, padding over half the kernel, non-positive kernel_size, stride or
        dilation, negative padding, or an output size below 1.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> import tinygrad_nd.nn.functional as F
    >>> x = tnd.tensor([[[1.0, 3.0, 2.0, 2.0, 0.0]]])
    >>> y, i = F.max_pool_nd(x, 2, return_indices=True)
    >>> y.tolist(), i.tolist()
    ([[[3.0, 2.0]]], [[[1, 2]]])
    >>> F.max_pool_nd(x, 2, ceil_mode=True).tolist()
    [[[3.0, 2.0, 0.0]]]
    """
    return _max_pool("max_pool_nd", None, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices)


def avg_pool_nd(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                count_include_pad: bool = True) -> Tensor:
    """N-dimensional average pooling.

    ``y[b, c, *o] = sum of x (zero-padded) over the window of o / divisor(o)``. A window spans
    ``[o * stride - padding, min(o * stride - padding + K, D + padding))`` per dim: the divisor
    is its size with ``count_include_pad``, else the size of its part inside the input. The
    overhang added by ``ceil_mode`` never counts (PyTorch's rules).

    Parameters
    ----------
    input : Tensor
        ``(N, C, D1, ..., Dk)`` floating point (``k`` as in ``max_pool_nd``).
    kernel_size, stride, padding, ceil_mode
        As in ``max_pool_nd``; stride defaults to ``kernel_size``.
    count_include_pad : bool
        Whether the zero padding counts in the divisor.

    Returns
    -------
    Tensor
        ``(N, C, O1, ..., Ok)``, sizes as in ``max_pool_nd`` with dilation 1.

    Raises
    ------
    ValueError
        As ``max_pool_nd``.
    TypeError
        An integer input.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> import tinygrad_nd.nn.functional as F
    >>> x = tnd.tensor([[[1.0, 3.0, 2.0]]])
    >>> F.avg_pool_nd(x, 2, padding=1).tolist()
    [[[0.5, 2.5]]]
    >>> F.avg_pool_nd(x, 2, padding=1, count_include_pad=False).tolist()
    [[[1.0, 2.5]]]
    """
    return _avg_pool("avg_pool_nd", None, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad)


def _max_pool_checked(n):
    name = f"max_pool{n}d"

    def pool(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
             ceil_mode: bool = False, return_indices: bool = False):
        return _max_pool(name, n, input, kernel_size, stride, padding, dilation, ceil_mode,
                         return_indices)

    pool.__name__ = pool.__qualname__ = name
    pool.__doc__ = f"""{n}-d max pooling: ``max_pool_nd`` on ``(N, C{', D' * n})`` or unbatched
    ``(C{', D' * n})`` input.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> import tinygrad_nd.nn.functional as F
    >>> F.{name}(tnd.ones(1, 2{', 6' * n}), 2).shape
    (1, 2{', 3' * n})
    """
    return pool


def _avg_pool_checked(n):
    name = f"avg_pool{n}d"

    def pool(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
             count_include_pad: bool = True) -> Tensor:
        return _avg_pool(name, n, input, kernel_size, stride, padding, ceil_mode,
                         count_include_pad)

    pool.__name__ = pool.__qualname__ = name
    pool.__doc__ = f"""{n}-d average pooling: ``avg_pool_nd`` on ``(N, C{', D' * n})`` or
    unbatched ``(C{', D' * n})`` input.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> import tinygrad_nd.nn.functional as F
    >>> F.{name}(tnd.ones(1, 2{', 6' * n}), 2).shape
    (1, 2{', 3' * n})
    """
    return pool


max_pool1d = _max_pool_checked(1)
max_pool2d = _max_pool_checked(2)
max_pool3d = _max_pool_checked(3)
avg_pool1d = _avg_pool_checked(1)
avg_pool2d = _avg_pool_checked(2)
avg_pool3d = _avg_pool_checked(3)

__all__ = ["conv_nd", "conv1d", "conv2d", "conv3d", "max_pool_nd", "max_pool1d", "max_pool2d",
           "max_pool3d", "avg_pool_nd", "avg_pool1d", "avg_pool2d", "avg_pool3d"]
