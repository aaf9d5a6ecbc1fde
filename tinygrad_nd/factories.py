"""Tensor factories (PyTorch names). Random draws come from one host numpy Generator seeded by
``manual_seed``, then move to the device, so CPU and GPU runs of one seed start identical."""
from __future__ import annotations

from . import backend
from .tensor import Tensor

_rng = backend.host_rng(0)


def manual_seed(seed: int):
    """Seed the generator behind ``rand``, ``randn``, ``nn.init`` and dropout."""
    global _rng
    _rng = backend.host_rng(seed)


def generator():
    """The host random Generator (used by ``nn.init`` and dropout)."""
    return _rng


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _new(array, dtype, device, requires_grad):
    return Tensor(array, dtype=dtype, device=device or "cpu", requires_grad=requires_grad)


def tensor(data, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A new Tensor from Python data or an array; Python floats become float32, ints int64.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> tnd.tensor([1.0, 2.0]).dtype
    dtype('float32')
    >>> tnd.tensor([1, 2]).dtype
    dtype('int64')
    """
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of ``size`` filled with ``fill_value`` (float32 for a float, int64 for an int)."""
    dtype = dtype or backend.as_array(fill_value).dtype
    size = (size,) if isinstance(size, int) else tuple(size)
    return _new(backend.filled(size, fill_value, dtype), dtype, device, requires_grad)


def zeros(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _new(backend.filled(_shape(shape), 0, dtype or backend.float32), None, device, requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _new(backend.filled(_shape(shape), 1, dtype or backend.float32), None, device, requires_grad)


def empty(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    return zeros(*shape, dtype=dtype, device=device, requires_grad=requires_grad)


def zeros_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def full_like(t: Tensor, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    return full(t.shape, fill_value, dtype=dtype or t.dtype, device=device or t.device,
                requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Values from ``start`` (default 0) up to but excluding ``end``, as ``torch.arange``."""
    if end is None:
        start, end = 0, start
    array = backend.arange(start, end, step)
    if dtype is None:
        dtype = backend.int64 if all(isinstance(v, int) for v in (start, end, step)) else backend.float32
    return _new(array, dtype, device, requires_grad)


def eye(n: int, m=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _new(backend.eye(n, m), dtype or backend.float32, device, requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform samples in [0, 1)."""
    return _new(_rng.random(_shape(shape)), dtype or backend.float32, device, requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal samples."""
    return _new(_rng.standard_normal(_shape(shape)), dtype or backend.float32, device, requires_grad)


def randn_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    return randn(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def rand_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    return rand(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def randint(low, high=None, size=(), dtype=None, device=None) -> Tensor:
    if high is None:
        low, high = 0, low
    return _new(_rng.integers(low, high, size=_shape((size,))), dtype or backend.int64, device, False)
