"""Reductions and broadcasting: sum and expand (an adjoint pair), max.

Composites built on them: sum_to (un-broadcasting), mean, var, min, softmax, log_softmax.
"""
from __future__ import annotations

import builtins
import math
from collections import namedtuple

from .. import backend
from ..autograd import Function
from ..tensor import Tensor
from . import shape as S
from .registry import register

MaxResult = namedtuple("MaxResult", ["values", "indices"])


@register("sum")
class Sum(Function):
    """y = sum of x over the axes ``dim`` (a tuple), kept as size 1 when ``keepdim``.
    VJP: gx = expand(gy with the summed axes restored as size 1, x.shape)."""

    def forward(self, xp, x):
        self.x_shape = x.shape
        return x.sum(axis=self.dim, keepdims=self.keepdim)  # the method: xp.sum costs 2 us more

    def backward(self, gy):
        if not self.keepdim and self.dim != tuple(range(len(self.dim))):
            # restore the summed axes as size 1 (not needed when they lead: broadcasting adds them)
            kept = tuple(1 if i in self.dim else s for i, s in enumerate(self.x_shape))
            gy = S.reshaped(gy, kept)
        return Expand.apply_checked({"shape": self.x_shape}, gy)


@register("expand")
class Expand(Function):
    """y = x broadcast to ``shape`` (numpy rules, a view). VJP: gx = sum_to(gy, x.shape)."""

    def forward(self, xp, x):
        self.x_shape = x.shape
        return xp.broadcast_to(x, self.shape)

    def backward(self, gy):
        return sum_to(gy, self.x_shape)


@register("max")
class Max(Function):
    """y = max of x along ``dim``, or over all elements when ``dim`` is None; NaN propagates.
    VJP along a dim: gy goes to the index argmax picks (the first maximum, as torch.max(x, dim)).
    VJP over all elements: gy is shared evenly among the tied maxima (as torch.max(x), amax)."""

    def forward(self, xp, x):
        if self.dim is None:
            return xp.max(x)
        index = xp.expand_dims(xp.argmax(x, axis=self.dim), self.dim)
        self.save_for_backward(index)
        y = xp.take_along_axis(x, index, axis=self.dim)
        return y if self.keepdim else xp.squeeze(y, axis=self.dim)

    def backward(self, gy):
        (x,) = self.inputs
        xp = backend.array_module(x.data)
        if self.dim is None:
            y = xp.max(x.data)
            hit = (x.data == y) | (xp.isnan(x.data) & xp.isnan(y))
            share = hit / xp.sum(hit)  # evenly among ties
            return gy * Tensor._make(share.astype(x.dtype), None)
        (index,) = self.saved
        if not self.keepdim:
            gy = S.unsqueeze(gy, self.dim)
        positions = xp.arange(x.shape[self.dim]).reshape([-1 if i == self.dim else 1 for i in range(x.ndim)])
        picked = Tensor._make(positions == index, None)  # one-hot of the argmax along dim
        return where(picked, gy, 0.0)


# ----------------------------------------------------------------------------- wrappers
def sum(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Sum over ``dim`` (int, tuple, or None for all axes)."""
    dims = S.normalize_dims(dim, x.ndim, "sum")
    return Sum.apply_checked({"dim": dims, "keepdim": bool(keepdim)}, x)


def broadcast_to(x: Tensor, shape) -> Tensor:
    shape = tuple(shape)
    if shape == x.shape:
        return x
    return Expand.apply_checked({"shape": shape}, x)


def sum_to(x: Tensor, shape) -> Tensor:
    """Sum ``x`` down to ``shape``: the adjoint of broadcasting ``shape`` up to ``x.shape``."""
    shape, source = tuple(shape), x.data.shape
    if source == shape:
        return x
    if math.prod(source) == math.prod(shape):  # the summed axes all have size 1 (a batch of one)
        return S.reshaped(x, shape)
    lead = x.ndim - len(shape)
    kept = tuple(i + lead for i, s in enumerate(shape) if s == 1 and x.shape[i + lead] != 1)
    if not kept:  # only leading axes to drop: one sum gives the shape
        return Sum.apply_checked({"dim": tuple(range(lead)), "keepdim": False}, x)
    y = Sum.apply_checked({"dim": tuple(range(lead)) + kept, "keepdim": True}, x)
    return S.reshape(y, *shape)


def mean(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Arithmetic mean over ``dim``."""
    if not backend.is_float_dtype(x.dtype):
        raise TypeError(f"mean: needs a floating point tensor, got dtype {x.dtype}")
    dims = S.normalize_dims(dim, x.ndim, "mean")
    count = 1
    for d in dims:
        count *= x.shape[d]
    return Sum.apply_checked({"dim": dims, "keepdim": bool(keepdim)}, x) / float(count)


def var(x: Tensor, dim=None, keepdim: bool = False, correction: int = 1) -> Tensor:
    """Variance over ``dim``, dividing by ``count - correction`` (1: unbiased, as PyTorch's default)."""
    dims = S.normalize_dims(dim, x.ndim, "var")
    count = 1
    for d in dims:
        count *= x.shape[d]
    centered = x - mean(x, dims, keepdim=True)
    return sum(centered * centered, dims, keepdim) / float(builtins.max(count - correction, 0))


def max(x: Tensor, dim=None, keepdim: bool = False):
    """Maximum over all elements (a 0-d tensor), or ``(values, indices)`` along ``dim``."""
    if dim is None:
        if x.data.size == 0:
            raise RuntimeError("max: the tensor is empty; specify a dim")
        return Max.apply(x, dim=None, keepdim=False)
    d = S.normalize_dim(dim, x.ndim, "max")
    values, node = Max.apply_with_node(x, dim=d, keepdim=keepdim)
    (index,) = node.saved
    return MaxResult(values, Tensor._make(index if keepdim else index.squeeze(d), None))


def min(x: Tensor, dim=None, keepdim: bool = False):
    """Minimum, with the same conventions as ``max`` (computed as -max(-x))."""
    if dim is None:
        return -max(-x)
    values, indices = max(-x, dim, keepdim)
    return MaxResult(-values, indices)


def all(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Logical AND over ``dim`` (all axes when None); a bool tensor, not differentiable."""
    dims = S.normalize_dims(dim, x.ndim, "all")
    xp = backend.array_module(x.data)
    return Tensor._make(xp.all(x.data, axis=dims, keepdims=keepdim), None)


def any(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Logical OR over ``dim`` (all axes when None); a bool tensor, not differentiable."""
    dims = S.normalize_dims(dim, x.ndim, "any")
    xp = backend.array_module(x.data)
    return Tensor._make(xp.any(x.data, axis=dims, keepdims=keepdim), None)


def argmax(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Index of the first maximum (flattened when ``dim`` is None); not differentiable."""
    xp = backend.array_module(x.data)
    with backend.device_scope(x.data):  # raw kernels outside an op: run on x's device
        if dim is None:
            return Tensor._make(xp.argmax(x.data).astype(xp.int64), None)
        d = S.normalize_dim(dim, x.ndim, "argmax")
        index = xp.argmax(x.data, axis=d)
        return Tensor._make(xp.expand_dims(index, d) if keepdim else index, None)


def argmin(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return argmax(-x, dim, keepdim)


def softmax(x: Tensor, dim: int) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``, shifted by the (constant) max for stability."""
    shifted = x - max(x, dim, keepdim=True).values.detach()
    e = shifted.exp()
    return e / sum(e, dim, keepdim=True)


def log_softmax(x: Tensor, dim: int) -> Tensor:
    """x - logsumexp(x) along ``dim``, computed as (x - m) - log(sum(exp(x - m))) with m = max(x)."""
    shifted = x - max(x, dim, keepdim=True).values.detach()
    return shifted - sum(shifted.exp(), dim, keepdim=True).log()


def where(cond, a, b) -> Tensor:
    from .elementwise import where as _where  # elementwise imports this module

    return _where(cond, a, b)
