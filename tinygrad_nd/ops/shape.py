"""Shape primitives: reshape, permute, indexing and its scatter adjoint, cat, device/dtype moves.

Composites built on them: view, flatten, transpose, squeeze, unsqueeze, stack.
"""
from __future__ import annotations

import functools
import math
import operator

from .. import backend
from ..autograd import Function, is_grad_enabled
from ..tensor import Tensor
from .registry import register


def normalize_dim(dim, ndim, op="op"):
    """A non-negative axis for ``dim`` in ``[-ndim, ndim)``, or IndexError naming the op."""
    if not -ndim <= dim < max(ndim, 1):
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor of {ndim} dimensions")
    return dim % max(ndim, 1)


def normalize_dims(dim, ndim, op="op"):
    """``None`` -> all axes; an int or tuple -> a sorted tuple of distinct non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    out = tuple(sorted({normalize_dim(d, ndim, op) for d in dims}))
    if len(out) != len(dims):
        raise ValueError(f"{op}: dim {dim} repeats an axis")
    return out


# ----------------------------------------------------------------------------- primitives
@register("reshape")
class Reshape(Function):
    """y = x with a new shape (same elements, row-major order). VJP: gx = reshape(gy, x.shape)."""

    def forward(self, xp, x):
        self.x_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return reshaped(gy, self.x_shape)


@register("permute")
class Permute(Function):
    """y = x with axes reordered, y.shape[i] = x.shape[dims[i]]. VJP: gx = permute(gy, argsort(dims))."""

    def forward(self, xp, x):
        return x.transpose(self.dims)

    def backward(self, gy):
        inverse = tuple(sorted(range(len(self.dims)), key=self.dims.__getitem__))
        return Permute.apply(gy, dims=inverse)


@register("getitem")
class GetItem(Function):
    """y = x[index] (basic and integer-array indexing, as numpy).
    VJP: gx = zeros like x with gy added at index; repeated indices accumulate."""

    def forward(self, xp, x):
        self.x_shape = x.shape
        return x[self.index]

    def backward(self, gy):
        return IndexPutAdd.apply(gy, index=self.index, shape=self.x_shape)


@register("index_put_add")
class IndexPutAdd(Function):
    """y = zeros(shape) with y[index] += x (repeats accumulate): the adjoint of getitem.
    VJP: gx = gy[index]."""

    def forward(self, xp, x):
        y = xp.zeros(self.shape, dtype=x.dtype)
        if any(getattr(i, "dtype", None) is not None and i.dtype.kind in "iu" for i in self.index):
            backend.scatter_add(xp, y, self.index, x)
        else:  # basic or boolean indexing never repeats an element: plain assignment
            y[self.index] = x
        return y

    def backward(self, gy):
        return GetItem.apply(gy, index=self.index)


@register("cat")
class Cat(Function):
    """y = the inputs joined along ``dim``. VJP: input i gets its slice of gy along dim."""

    def forward(self, xp, *xs):
        self.sizes = [x.shape[self.dim] for x in xs]
        return xp.concatenate(xs, axis=self.dim)

    def backward(self, gy):
        grads, start = [], 0
        for size, need in zip(self.sizes, self.needs_grad):
            index = (slice(None),) * self.dim + (slice(start, start + size),)
            grads.append(GetItem.apply(gy, index=index) if need else None)
            start += size
        return tuple(grads)


@register("to")
class To(Function):
    """y = x on another device and/or with another dtype. VJP: gx = gy moved back to x's device and dtype."""

    def forward(self, xp, x):
        self.source = (backend.device_of(x), x.dtype)
        y = x if self.dtype is None else x.astype(self.dtype)
        return y if self.device is None else backend.to_device(y, self.device)

    def backward(self, gy):
        device, dtype = self.source
        return To.apply(gy, device=device, dtype=dtype)


# ----------------------------------------------------------------------------- wrappers
def reshape(x: Tensor, *shape) -> Tensor:
    """Tensor with the same elements in a new shape; one dimension may be -1."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    try:  # ints, numpy ints and 0-d integer Tensors
        shape = tuple([s if type(s) is int else operator.index(s) for s in shape])
    except TypeError:
        raise TypeError(f"reshape: dimensions must be integers, got {tuple(shape)}") from None
    source = x.data.shape
    target = _reshape_target(source, shape)  # a model reshapes alike every step: cached
    if target == source:
        return x
    return reshaped(x, target)


def reshaped(x: Tensor, shape: tuple) -> Tensor:
    """``x`` in ``shape`` (a checked tuple of ints with ``x``'s size): a ``Reshape`` node, or,
    when nothing would be recorded (grad mode off, or ``x`` needs no grad), only the view: under
    a plain ``backward()`` the rules' reshapes cost no node."""
    if x.requires_grad and is_grad_enabled():
        return Reshape.apply_checked({"shape": shape}, x)
    return Tensor._make(x.data.reshape(shape), None)


@functools.lru_cache(maxsize=512)  # pure in int tuples; errors are not cached
def _reshape_target(source, shape):
    """``shape`` with its -1 resolved, for a tensor of shape ``source``; ValueError if the sizes
    differ, more than one dim is -1 or one is negative."""
    size = math.prod(source)
    known, unknown = 1, None
    for i, s in enumerate(shape):
        if s == -1 and unknown is None:
            unknown = i
        elif s < 0:
            raise ValueError(f"reshape: invalid dimension {s} in {shape} (only one may be -1)")
        else:
            known *= s
    if unknown is None:
        fits = known == size
    else:  # -1 takes what is left, when that is a whole number
        fits = known != 0 and size % known == 0
        if fits:
            shape = shape[:unknown] + (size // known,) + shape[unknown + 1:]
    if not fits:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {source} ({size} elements) "
                         f"into {shape}")
    return shape


def permute(x: Tensor, *dims) -> Tensor:
    """Reorder the axes: result.shape[i] == x.shape[dims[i]]."""
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    if len(dims) != x.ndim:
        raise ValueError(f"permute: got {len(dims)} dims {dims} for a tensor of shape {x.shape}")
    dims = tuple(normalize_dim(d, x.ndim, "permute") for d in dims)
    if sorted(dims) != list(range(x.ndim)):
        raise ValueError(f"permute: dims {dims} are not a permutation of range({x.ndim})")
    if dims == tuple(range(x.ndim)):
        return x
    return Permute.apply(x, dims=dims)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap two axes."""
    dims = list(range(x.ndim))
    d0, d1 = normalize_dim(dim0, x.ndim, "transpose"), normalize_dim(dim1, x.ndim, "transpose")
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return permute(x, *dims)


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge axes ``start_dim..end_dim`` into one."""
    if x.ndim == 0:
        return reshape(x, 1)
    start = normalize_dim(start_dim, x.ndim, "flatten")
    end = normalize_dim(end_dim, x.ndim, "flatten")
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    merged = 1
    for s in x.shape[start:end + 1]:
        merged *= s
    return reshape(x, *x.shape[:start], merged, *x.shape[end + 1:])


def squeeze(x: Tensor, dim=None) -> Tensor:
    """Drop size-1 axes (all of them, or those in ``dim`` that have size 1, as PyTorch)."""
    dims = normalize_dims(dim, x.ndim, "squeeze")
    shape = tuple(s for i, s in enumerate(x.shape) if not (i in dims and s == 1))
    return reshape(x, *shape)


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    """Insert a size-1 axis at ``dim`` (in ``[-ndim-1, ndim]``)."""
    dim = normalize_dim(dim, x.ndim + 1, "unsqueeze")
    return reshape(x, *x.shape[:dim], 1, *x.shape[dim:])


def expand(x: Tensor, *shape) -> Tensor:
    """Broadcast to ``shape`` without copying; -1 keeps a dimension."""
    from . import reduce  # reduce imports this module

    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    lead = len(shape) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: target {shape} has fewer dimensions than the tensor {x.shape}")
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
    for i, s in enumerate(x.shape):
        if s != 1 and s != shape[i + lead]:
            raise ValueError(f"expand: the tensor of shape {x.shape} cannot be expanded to "
                             f"{shape} (dimension {i + lead}: {s} vs {shape[i + lead]})")
    return reduce.broadcast_to(x, shape)


def _raw_index(index, x: Tensor):
    """Turn a user index into one numpy/cupy understands: Tensors and lists become arrays on x's device."""
    if not isinstance(index, tuple):
        index = (index,)
    xp = backend.array_module(x.data)
    out = []
    for item in index:
        if isinstance(item, Tensor):
            item = item.data
        elif isinstance(item, list):
            item = backend.as_array(item, device=x.device)
        if hasattr(item, "dtype") and backend.device_of(item) != x.device:
            if backend.device_of(item) != "cpu":
                raise RuntimeError(f"getitem: the index is on {backend.device_of(item)} but the "
                                   f"tensor is on {x.device}; move the index with .to(device)")
            item = backend.to_device(item, x.device)  # a host index follows the tensor (as PyTorch)
        if hasattr(item, "dtype") and item.dtype.kind not in "iub":
            raise IndexError(f"getitem: index arrays must be integer or bool, got {item.dtype}")
        if hasattr(item, "dtype") and item.dtype.kind == "u":
            item = item.astype(xp.int64)
        out.append(item)
    return tuple(out)


def getitem(x: Tensor, index) -> Tensor:
    """``x[index]`` with numpy semantics (slices, ints, None, Ellipsis, integer and bool arrays)."""
    index = _raw_index(index, x)
    try:
        return GetItem.apply(x, index=index)
    except IndexError as exc:
        raise IndexError(f"getitem: {exc} (tensor of shape {x.shape})") from None


def cat(tensors, dim: int = 0) -> Tensor:
    """Join tensors along an existing axis ``dim``; all other sizes must agree."""
    tensors = tuple(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    first = tensors[0]
    dim = normalize_dim(dim, first.ndim, "cat")
    for i, t in enumerate(tensors):
        if t.ndim != first.ndim or any(a != b for k, (a, b) in enumerate(zip(t.shape, first.shape)) if k != dim):
            raise ValueError(f"cat: tensor {i} has shape {t.shape}, incompatible with tensor 0 of "
                             f"shape {first.shape} along dim {dim}")
    dtype = backend.result_dtype(*(t.dtype for t in tensors))
    tensors = tuple(t if t.dtype == dtype else to(t, dtype=dtype) for t in tensors)
    return Cat.apply(*tensors, dim=dim)


def stack(tensors, dim: int = 0) -> Tensor:
    """Join tensors of one shape along a new axis ``dim``."""
    tensors = tuple(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: tensor {i} has shape {t.shape}, tensor 0 has {tensors[0].shape}")
    dim = normalize_dim(dim, tensors[0].ndim + 1, "stack")
    return cat([unsqueeze(t, dim) for t in tensors], dim)


def to(x: Tensor, device=None, dtype=None) -> Tensor:
    """Move to a device and/or cast; returns ``x`` itself when nothing changes."""
    device = None if device is None else backend.parse_device(device)
    dtype = None if dtype is None else backend.as_dtype(dtype)
    if device == x.device:
        device = None
    if dtype == x.dtype:
        dtype = None
    if device is None and dtype is None:
        return x
    if dtype is not None and x.requires_grad and not backend.is_float_dtype(dtype):
        return Tensor._make(To.apply(x.detach(), device=device, dtype=dtype).data, None)
    return To.apply(x, device=device, dtype=dtype)
