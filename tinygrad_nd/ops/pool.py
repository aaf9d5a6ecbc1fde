"""N-dimensional max and average pooling, and the primitives that close their gradients.

Max pooling records, for every window, the row-major offset of the element it chose
(``argk``); its gradient scatters ``gy`` to those elements, and the gradient of that scatter is
the matching gather, whose gradient is the scatter again::

    y  = max_pool_nd(x)                    (MaxPoolNd; saves argk)
    gx = max_pool_nd_scatter(gy, argk)     (MaxPoolNdScatter)
    gz = max_pool_nd_gather(z, argk)       (MaxPoolNdGather)

``argk`` travels as an integer Tensor input that needs no gradient. ``max_pool_nd_indices``
turns the same choice into PyTorch's flat indices (not differentiable, not a primitive).

Average pooling is linear: ``avg_pool_nd`` and ``avg_pool_nd_grad`` are each other's adjoint.

Static parameters, normalised by the functional wrapper: N-tuples of ints ``kernel_size``,
``stride``, ``padding`` (the same on both sides, at most half the kernel, as PyTorch) and
``dilation``; ``ceil_mode`` and ``count_include_pad`` are bools. Windows only ever read the
input itself: padding (-inf for max, zeros for the average) is never materialised.
"""
from __future__ import annotations

import functools

from .. import backend
from ..autograd import Function
from ..tensor import Tensor
from . import _im2col as im
from . import _windows as win
from .registry import register


def pool_static(op, kernel_size, stride, padding, dilation, **flags):
    """Check and freeze the static parameters of the pooling primitives (ValueError naming ``op``)."""
    frozen = _pool_static(op, tuple(kernel_size), tuple(stride), tuple(padding), tuple(dilation))
    params = dict(zip(("kernel_size", "stride", "padding", "dilation"), frozen))
    params.update((name, bool(value)) for name, value in flags.items())
    return params


@functools.lru_cache(maxsize=512)  # pure; called for every node, so cached (errors are not)
def _pool_static(op, kernel_size, stride, padding, dilation):
    if not (len(kernel_size) == len(stride) == len(padding) == len(dilation)):
        raise ValueError(f"{op}: kernel_size {kernel_size}, stride {stride}, padding {padding} "
                         f"and dilation {dilation} must have one entry per spatial dim")
    for name, value in (("kernel_size", kernel_size), ("stride", stride),
                        ("dilation", dilation)):
        if any(v < 1 for v in value):
            raise ValueError(f"{op}: {name} must be positive, got {value}")
    if any(p < 0 for p in padding):
        raise ValueError(f"{op}: padding must be non-negative, got {padding}")
    if any(p > k // 2 for p, k in zip(padding, kernel_size)):
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel size "
                         f"{kernel_size}")
    return kernel_size, stride, padding, dilation


@functools.lru_cache(maxsize=512)
def check_pool_shape(op, x_shape, kernel_size, stride, padding, dilation, ceil_mode):
    """Raise ValueError naming ``op`` unless ``x (batch, C, *spatial)`` fits the window; return
    the output spatial size."""
    n = len(kernel_size)
    if len(x_shape) != n + 2:
        dims = ", ".join(f"D{i + 1}" for i in range(n))
        raise ValueError(f"{op}: a {n}-d window needs an input (batch, C, {dims}), got shape "
                         f"{tuple(x_shape)}")
    out = im.pool_out_spatial(x_shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    if min(out) < 1:
        raise ValueError(f"{op}: output size {out} is too small for input shape "
                         f"{tuple(x_shape)} (kernel_size {kernel_size}, stride {stride}, "
                         f"padding {padding}, dilation {dilation})")
    return out


@functools.lru_cache(maxsize=512)
def _max_pool_route(op, xp, device, x_shape, kernel_size, stride, padding, dilation, ceil_mode,
                    limit):
    """``(out_spatial, windows)``: ``check_pool_shape``, and, when ``win.max_pool_small`` applies
    (``win.pool_plan`` with ``limit``, ``win.SMALL_ELEMENTS``), its ``im.window_index`` arrays
    (else None): one cached lookup per forward."""
    out = check_pool_shape(op, x_shape, kernel_size, stride, padding, dilation, ceil_mode)
    if not win.pool_plan(x_shape, kernel_size, stride, padding, dilation, ceil_mode, limit)[1]:
        return out, None
    return out, im.window_index(xp, device, x_shape, kernel_size, stride, dilation, out)


def _node_params(op, kernel_size, stride, padding, dilation, shape, flags):
    """The checked static parameters of a pooling node, as ``(name, value)`` pairs."""
    ones = (1,) * len(tuple(kernel_size))
    params = pool_static(op, kernel_size, stride, padding, dilation or ones, **dict(flags))
    if dilation is None:  # average pooling has no dilation
        del params["dilation"]
    if shape is not None:
        params["shape"] = tuple(int(n) for n in shape)
    return tuple(params.items())


_node_params_cached = functools.lru_cache(maxsize=512)(_node_params)  # errors are not cached


class _PoolFunction(Function):
    """Shared ``__init__``: the window parameters, checked and frozen once (per distinct set of
    arguments: a training loop creates nodes with the same ones every step)."""

    def __init__(self, *, kernel_size, stride, padding, dilation=None, shape=None, **flags):
        flags = tuple(flags.items())
        try:
            params = _node_params_cached(self.name, kernel_size, stride, padding, dilation,
                                         shape, flags)
        except TypeError:  # a list argument (unhashable)
            params = _node_params(self.name, kernel_size, stride, padding, dilation, shape, flags)
        self._set_params(dict(params))

    def window(self):
        return dict(kernel=self.kernel_size, stride=self.stride, padding=self.padding,
                    dilation=self.dilation)


@register("max_pool_nd")
class MaxPoolNd(_PoolFunction):
    """y[b, c, *o] = max over the window of o of x (padding is -inf, never chosen).
    VJP: gx = max_pool_nd_scatter(gy, argk): each gy goes to its window's chosen element;
    ties go to the first maximal element in row-major window order; NaN wins (the last NaN)."""

    def forward(self, xp, x):
        out, windows = _max_pool_route(self.name, xp, backend.device_of(x), x.shape,
                                       self.kernel_size, self.stride, self.padding,
                                       self.dilation, self.ceil_mode, win.SMALL_ELEMENTS)
        if windows is not None:  # one gather (per-example sizes, where each call counts)
            y, argk = win.max_pool_small(xp, x, self.kernel_size, self.stride, self.dilation, out,
                                        windows)
        else:
            y, argk = win.max_pool(xp, x, self.kernel_size, self.stride, self.padding,
                                  self.dilation, self.ceil_mode)
        self.saved = (argk,)
        return y

    def backward(self, gy):
        (x,) = self.inputs
        argk = Tensor._make(self.saved[0], None)
        return MaxPoolNdScatter.apply_checked(self.window_params(shape=x.shape), gy, argk)

    def window_params(self, **shape):
        """The checked parameters of a scatter (with ``shape=``) or gather node."""
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                    dilation=self.dilation, **shape)


@register("max_pool_nd_scatter")
class MaxPoolNdScatter(_PoolFunction):
    """gx = zeros(shape) with gy[b, c, *o] added at the element of window o chosen by argk
    (overlapping windows accumulate): the adjoint of max_pool_nd_gather.
    VJP: g_gy = max_pool_nd_gather(ggx, argk); argk is an index, not differentiable."""

    def forward(self, xp, gy, argk):
        windows = win.scatter_index(xp, backend.device_of(gy), self.shape, self.kernel_size,
                                   self.stride, self.padding, self.dilation, argk.shape[2:],
                                   win.SMALL_ELEMENTS)
        if windows is not None:  # one assignment
            return win.window_scatter_small(xp, gy, argk, self.shape, self.kernel_size,
                                           self.stride, self.dilation, windows)
        return win.window_scatter(xp, gy, argk, self.shape, **self.window())

    def backward(self, ggx):
        _, argk = self.inputs
        g_gy = MaxPoolNdGather.apply_checked(self.window_params(), ggx, argk) \
            if self.needs_grad[0] else None
        return g_gy, None

    window_params = MaxPoolNd.window_params


@register("max_pool_nd_gather")
class MaxPoolNdGather(_PoolFunction):
    """y[b, c, *o] = z[b, c, element of window o chosen by argk]: max pooling with the choice
    fixed. VJP: g_z = max_pool_nd_scatter(gy, argk); argk is not differentiable."""

    def forward(self, xp, z, argk):
        return win.window_gather(xp, z, argk, **self.window())

    def backward(self, gy):
        z, argk = self.inputs
        g_z = MaxPoolNdScatter.apply_checked(self.window_params(shape=z.shape), gy, argk) \
            if self.needs_grad[0] else None
        return g_z, None

    window_params = MaxPoolNd.window_params


def max_pool_nd_indices(x: Tensor, *, kernel_size, stride, padding, dilation, ceil_mode) -> Tensor:
    """PyTorch's ``return_indices``: for every window, the flat index in its ``(b, c)`` plane of
    ``x`` of the element ``max_pool_nd`` chooses, as int64. Not differentiable (like argmax): a
    second pass over ``x``, paid only when the indices are asked for."""
    params = pool_static("max_pool_nd", kernel_size, stride, padding, dilation)
    check_pool_shape("max_pool_nd", x.shape, ceil_mode=ceil_mode, **params)
    xp = backend.array_module(x.data)
    window = dict(kernel=params["kernel_size"], stride=params["stride"],
                  padding=params["padding"], dilation=params["dilation"])
    _, argk = win.max_pool(xp, x.data, ceil_mode=ceil_mode, **window)
    return Tensor._make(win.flat_indices(xp, argk, x.shape[2:], **window), None)


@register("avg_pool_nd")
class AvgPoolNd(_PoolFunction):
    """y[b, c, *o] = sum over the window of o of x_pad / divisor(o), PyTorch's divisor rules
    (count_include_pad; ceil-mode overhang never counts). Linear.
    VJP: gx = avg_pool_nd_grad(gy), the adjoint: gy / divisor spread over each window."""

    def forward(self, xp, x):
        if xp.dtype(x.dtype).kind != "f":
            raise TypeError(f"{self.name}: needs a floating-point input, got {x.dtype}")
        out = check_pool_shape(self.name, x.shape, self.kernel_size, self.stride, self.padding,
                               (1,) * len(self.kernel_size), self.ceil_mode)
        total = win.window_sum(xp, x, self.kernel_size, self.stride, self.padding, out)
        total /= win.avg_pool_divisor(xp, x.shape[2:], self.kernel_size, self.stride,
                                     self.padding, out, self.count_include_pad, x.dtype)
        return total

    def backward(self, gy):
        (x,) = self.inputs
        return AvgPoolNdGrad.apply(gy, shape=x.shape, **self.avg_params())

    def avg_params(self):
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                    ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad)


@register("avg_pool_nd_grad")
class AvgPoolNdGrad(_PoolFunction):
    """gx[b, c, i] = sum over the windows o containing i of gy[b, c, *o] / divisor(o): the
    adjoint of avg_pool_nd, of shape ``shape``. Linear. VJP: g_gy = avg_pool_nd(ggx)."""

    def forward(self, xp, gy):
        divisor = win.avg_pool_divisor(xp, self.shape[2:], self.kernel_size, self.stride,
                                      self.padding, gy.shape[2:], self.count_include_pad,
                                      gy.dtype)
        return win.window_sum_adjoint(xp, gy / divisor, self.shape, self.kernel_size,
                                     self.stride, self.padding)

    def backward(self, ggx):
        return AvgPoolNd.apply(ggx, **self.avg_params())

    avg_params = AvgPoolNd.avg_params
