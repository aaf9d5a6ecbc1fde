"""``Tensor``: an array (numpy or cupy) plus the node of the tape that made it.

Every method below is written out and calls an op wrapper from ``tinygrad_nd.ops``. The ops
import this module, so this module cannot import them at its top: ``_ops`` imports each op
family on first use (the one import cycle of the package, broken here on purpose; a plain import
inside every method body cost a microsecond per call).
"""
from __future__ import annotations

import weakref

import importlib

from . import backend


class _OpFamilies:
    """``_ops.elementwise`` etc.: the op modules, each imported on first access, then cached."""

    def __getattr__(self, family):
        if family.startswith("_"):  # introspection (doctest, copy) asks for dunders: not ops
            raise AttributeError(family)
        module = importlib.import_module(f"{__package__}.ops.{family}")
        setattr(self, family, module)
        return module


_ops = _OpFamilies()


def _autograd():
    """The ``autograd`` module, which imports this one (so it is imported on first use)."""
    global _autograd_module
    if _autograd_module is None:
        from . import autograd
        _autograd_module = autograd
    return _autograd_module


_autograd_module = None


class Tensor:
    """An n-dimensional array that records the ops applied to it.

    ``data`` is the raw numpy or cupy array (as in DeZero and Chainer); use ``detach()`` for a
    Tensor that shares it without the graph.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> x = tnd.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad.tolist()
    [[2.0, 4.0], [6.0, 8.0]]
    """

    __slots__ = ("data", "requires_grad", "grad", "grad_fn", "_hooks", "__weakref__")
    __array_priority__ = 1000  # numpy scalars on the left defer to Tensor's reflected operators

    def __init__(self, data, dtype=None, device=None, requires_grad=False):
        if isinstance(data, Tensor):
            data = data.data
        self.data = backend.as_array(data, dtype, None if device is None else backend.parse_device(device))
        self.grad = None
        self.grad_fn = None
        self._hooks = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _make(cls, data, grad_fn):
        """Wrap a raw array produced by an op (no copy, no dtype change)."""
        t = object.__new__(cls)
        t.data = data if type(data) is backend.host_array_type else backend.ensure_array(data)
        t.grad = None
        t.grad_fn = grad_fn
        t.requires_grad = grad_fn is not None
        t._hooks = None
        return t

    # ------------------------------------------------------------------ attributes
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def dim(self) -> int:
        return self.data.ndim

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    # ------------------------------------------------------------------ conversion
    def numpy(self):
        """A host numpy array (a copy from the GPU; shared memory on the CPU)."""
        return backend.to_host(self.data)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item(): only a one-element tensor converts to a Python scalar, "
                             f"this one has shape {self.shape}")
        return self.numpy().reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.item())

    def __index__(self):
        if self.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError("only integer tensors of one element can be used as an index")
        return int(self.item())

    def to(self, device=None, dtype=None) -> "Tensor":
        """Move to ``device`` and/or cast to ``dtype``; differentiable, returns self when unchanged."""
        if isinstance(device, str) or device is None:
            pass
        else:  # to(dtype) as a positional argument
            device, dtype = None, device
        if isinstance(device, str) and device.lower() in ("float32", "float64", "int64", "bool"):
            device, dtype = None, device
        return _ops.shape.to(self, device=device, dtype=dtype)

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to("cuda" if device is None else (f"cuda:{device}" if isinstance(device, int) else device))

    def float(self):
        return self.to(dtype=backend.float32)

    def double(self):
        return self.to(dtype=backend.float64)

    def long(self):
        return self.to(dtype=backend.int64)

    def detach(self) -> "Tensor":
        """A new leaf sharing the data, cut from the graph."""
        return Tensor._make(self.data, None)

    def requires_grad_(self, requires_grad=True) -> "Tensor":
        if requires_grad and not backend.is_float_dtype(self.dtype):
            raise RuntimeError(f"requires_grad=True needs a floating point tensor, got dtype "
                               f"{self.dtype} (shape {self.shape}); convert with .float() first")
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self):
        """Keep ``.grad`` of this non-leaf tensor after backward (leaves always keep it)."""
        if self.grad_fn is not None:
            self.grad_fn._retain = weakref.ref(self)
            self.grad_fn._observed = True

    def register_hook(self, fn):
        """Call ``fn(grad)`` when this tensor's gradient is computed; a Tensor it returns replaces it."""
        if not self.requires_grad:
            raise RuntimeError("register_hook on a tensor that does not require grad")
        if self.grad_fn is not None:
            self.grad_fn.add_hook(fn)
        else:
            if self._hooks is None:
                self._hooks = []
            self._hooks.append(fn)
        return fn

    def backward(self, gradient=None, retain_graph=None, create_graph=False):
        """Accumulate the gradient of this tensor into every leaf's ``.grad``.

        A single-element tensor needs no ``gradient``; any other needs one of its shape.
        ``retain_graph`` defaults to ``create_graph``.
        """
        _autograd().backward(self, gradient, retain_graph, create_graph)

    def __repr__(self):
        """PyTorch's layout: 4 decimals, the dtype only when it is not a default one."""
        body = backend.format_array(self.numpy(), prefix="tensor(")
        extras = []
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.dtype not in (backend.float32, backend.int64, backend.bool_) or self.data.size == 0:
            extras.append(f"dtype={self.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn={self.grad_fn!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body] + extras) + ")"

    __hash__ = object.__hash__

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other):
        return _ops.elementwise.add(self, other)

    def __radd__(self, other):
        return _ops.elementwise.add(other, self)

    def __sub__(self, other):
        return _ops.elementwise.sub(self, other)

    def __rsub__(self, other):
        return _ops.elementwise.sub(other, self)

    def __mul__(self, other):
        return _ops.elementwise.mul(self, other)

    def __rmul__(self, other):
        return _ops.elementwise.mul(other, self)

    def __truediv__(self, other):
        return _ops.elementwise.div(self, other)

    def __rtruediv__(self, other):
        return _ops.elementwise.div(other, self)

    def __pow__(self, other):
        return _ops.elementwise.pow(self, other)

    def __rpow__(self, other):
        return _ops.elementwise.pow(other, self)

    def __matmul__(self, other):
        return _ops.linalg.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.linalg.matmul(other, self)

    def __neg__(self):
        return _ops.elementwise.neg(self)

    def __abs__(self):
        return self.abs()

    # comparisons: not differentiable, return bool tensors
    def __eq__(self, other):
        return _ops.elementwise.compare("eq", self, other)

    def __ne__(self, other):
        return _ops.elementwise.compare("ne", self, other)

    def __lt__(self, other):
        return _ops.elementwise.compare("lt", self, other)

    def __le__(self, other):
        return _ops.elementwise.compare("le", self, other)

    def __gt__(self, other):
        return _ops.elementwise.compare("gt", self, other)

    def __ge__(self, other):
        return _ops.elementwise.compare("ge", self, other)

    def __and__(self, other):
        return _ops.elementwise.compare("and", self, other)

    def __or__(self, other):
        return _ops.elementwise.compare("or", self, other)

    def __xor__(self, other):
        return _ops.elementwise.compare("xor", self, other)

    def __invert__(self):
        return _ops.elementwise.invert(self)

    # ------------------------------------------------------------------ elementwise
    def abs(self):
        return _ops.elementwise.abs(self)

    def exp(self):
        return _ops.elementwise.exp(self)

    def log(self):
        return _ops.elementwise.log(self)

    def sqrt(self):
        return _ops.elementwise.sqrt(self)

    def sigmoid(self):
        return _ops.elementwise.sigmoid(self)

    def relu(self):
        return _ops.elementwise.relu(self)

    def tanh(self):
        return _ops.elementwise.tanh(self)

    def clamp(self, min=None, max=None):
        return _ops.elementwise.clamp(self, min, max)

    clip = clamp

    def softmax(self, dim):
        return _ops.reduce.softmax(self, dim)

    def log_softmax(self, dim):
        return _ops.reduce.log_softmax(self, dim)

    # ------------------------------------------------------------------ reductions
    def sum(self, dim=None, keepdim=False):
        return _ops.reduce.sum(self, dim, keepdim)

    def mean(self, dim=None, keepdim=False):
        return _ops.reduce.mean(self, dim, keepdim)

    def var(self, dim=None, keepdim=False, unbiased=True, correction=None):
        if correction is None:
            correction = 1 if unbiased else 0
        return _ops.reduce.var(self, dim, keepdim, correction=correction)

    def std(self, dim=None, keepdim=False, unbiased=True):
        return self.var(dim, keepdim, unbiased).sqrt()

    def max(self, dim=None, keepdim=False):
        """Full reduction to a scalar, or ``(values, indices)`` along ``dim`` as PyTorch."""
        return _ops.reduce.max(self, dim, keepdim)

    def min(self, dim=None, keepdim=False):
        return _ops.reduce.min(self, dim, keepdim)

    def all(self, dim=None, keepdim=False):
        """True where every element (over ``dim``) is nonzero; a bool tensor, not differentiable."""
        return _ops.reduce.all(self, dim, keepdim)

    def any(self, dim=None, keepdim=False):
        """True where some element (over ``dim``) is nonzero; a bool tensor, not differentiable."""
        return _ops.reduce.any(self, dim, keepdim)

    def argmax(self, dim=None, keepdim=False):
        return _ops.reduce.argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return _ops.reduce.argmin(self, dim, keepdim)

    # ------------------------------------------------------------------ shape
    def reshape(self, *shape):
        return _ops.shape.reshape(self, *shape)

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        return _ops.shape.flatten(self, start_dim, end_dim)

    def transpose(self, dim0, dim1):
        return _ops.shape.transpose(self, dim0, dim1)

    def permute(self, *dims):
        return _ops.shape.permute(self, *dims)

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    def squeeze(self, dim=None):
        return _ops.shape.squeeze(self, dim)

    def unsqueeze(self, dim):
        return _ops.shape.unsqueeze(self, dim)

    def expand(self, *shape):
        return _ops.shape.expand(self, *shape)

    def expand_as(self, other):
        return self.expand(*other.shape)

    def contiguous(self):
        return self

    def __getitem__(self, index):
        return _ops.shape.getitem(self, index)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))
