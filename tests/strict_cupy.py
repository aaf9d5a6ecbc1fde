"""A strict, numpy-backed stand-in for CuPy: the GPU code path, exercised without a GPU.

The issue allows ``array_api_strict`` or "an equally strict stand-in". We use this stand-in
because our ops are written against the numpy/CuPy API surface, not the array API standard:
they call ``xp.lib.stride_tricks.as_strided``, ``xp.add.at``, ``xp.take_along_axis``, array
methods such as ``.swapaxes`` and ``.astype``, in-place slice assignment, and ``xp.cuda.Device``
as a context manager. ``array_api_strict`` lacks most of these, so running our ops on it would
test a different program than the one CuPy runs. This module is the subset of ``cupy`` the
project uses, with numpy doing the arithmetic, and with CuPy's boundary made *stricter*:

* Implicit host conversion is refused with ``HostTransferError`` (a ``TypeError``):
  ``np.asarray(a)``, ``np.array(a)``, numpy functions and ufuncs on ``a``, ``float(a)``,
  ``int(a)``, ``bool(a)``, ``operator.index(a)``, ``a.item()``, ``a.tolist()``, and numpy
  arrays mixed into device operations (``a + numpy_array``, ``a[numpy_index]``,
  ``a[...] = numpy_array``). CuPy allows a few of these with a silent device sync
  (``float``, ``bool``, ``item``, ``tolist``); our ops must not rely on them, so they fail here.
  ``a.get()``, ``cupy.asnumpy(a)`` and ``cupy.asarray(numpy_array)`` are the explicit transfers
  and are allowed; both copy, as a real device transfer does (no memory shared with the host).
* Reductions and scalar indexing return 0-d device arrays, never numpy scalars (as CuPy).
* ``empty`` and ``empty_like`` are filled with NaN (or a sentinel for integers): code that
  reads memory it never wrote fails loudly instead of seeing numpy's usual zeros.
* Devices: every array records the device it was made on (``a.device.id``), which is the
  current device (``cuda.Device(i)`` as a context manager, default 0). An operation on an array
  that is not on the current device raises ``ValueError``, as CuPy does where peer access is
  unavailable. ``reset(device_count=2)`` gives a second device to test ``"cuda:1"``.
* Numpy-only names (``errstate``, ``nditer``, ``float128``, ...) and CUDA kernels
  (``RawKernel``, ``ElementwiseKernel``) raise ``AttributeError``/``NotImplementedError``:
  the first do not exist in CuPy, the second cannot be emulated.

Anything else on the numpy namespace is forwarded: arguments are unwrapped (refusing host
arrays), numpy runs, results are wrapped back into device arrays. Known laxness: a function
given a Python list where CuPy wants an array (``cupy.sum([1, 2])``) works here.

Examples
--------
>>> import strict_cupy as cp
>>> a = cp.asarray([1.0, 2.0])
>>> (a * 2).sum().get()
array(6.)
>>> float(a.sum())
Traceback (most recent call last):
...
strict_cupy.HostTransferError: float() of a device array is a hidden device-to-host transfer; ...
"""
from __future__ import annotations

import operator
import time
import types

import numpy as _np

__version__ = "14.0.0-strict-standin"


class HostTransferError(TypeError):
    """An implicit transfer between host and device that real code must not make."""


def _refuse(what):
    raise HostTransferError(
        f"{what} is a hidden device-to-host transfer; ops must stay on the device (use "
        "backend.to_host / .get() explicitly where a host value is really needed)")


# ----------------------------------------------------------------------------- devices
class _State:
    device_count = 1
    stack = [0]  # the current device is the last entry


def reset(device_count: int = 1):
    """Forget the device context and set how many devices exist (tests call this)."""
    _State.device_count = int(device_count)
    _State.stack = [0]


def _current() -> int:
    return _State.stack[-1]


class _CudaRuntimeError(RuntimeError):
    """Stands for ``cupy.cuda.runtime.CUDARuntimeError``."""


class Device:
    """``cupy.cuda.Device``: a device id and a context that makes it current."""

    def __init__(self, device=None):
        if isinstance(device, Device):
            device = device.id
        self.id = _current() if device is None else int(device)
        if not 0 <= self.id < _State.device_count:
            raise _CudaRuntimeError(f"cudaErrorInvalidDevice: invalid device ordinal {self.id} "
                                    f"(the stand-in has {_State.device_count} device(s))")

    def __enter__(self):
        _State.stack.append(self.id)
        return self

    def __exit__(self, *exc):
        _State.stack.pop()
        return False

    def use(self):
        _State.stack[-1] = self.id

    def synchronize(self):
        pass

    @property
    def compute_capability(self):
        return "90"

    @property
    def mem_info(self):
        return (1 << 34, 1 << 34)

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(("Device", self.id))

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


def _check_device(a, what="operation"):
    if a._dev != _current():
        raise ValueError(f"strict_cupy {what}: the device where the array resides ({a._dev}) is "
                         f"different from the current device ({_current()}); enter "
                         f"cupy.cuda.Device({a._dev}) first")


# ----------------------------------------------------------------------------- wrapping
def _wrap(a, dev=None):
    out = object.__new__(ndarray)
    out._a = a
    out._dev = _current() if dev is None else dev
    return out


def _wrap_result(r):
    """numpy results back onto the device: arrays and numpy scalars become device arrays."""
    if isinstance(r, _np.ndarray):
        return _wrap(r)
    if isinstance(r, _np.generic):
        return _wrap(_np.asarray(r))
    if isinstance(r, tuple):
        return tuple(_wrap_result(v) for v in r)
    if isinstance(r, list):
        return [_wrap_result(v) for v in r]
    return r


def _unwrap(x, what):
    """Device arrays -> their numpy data (on the current device only); host arrays refused."""
    if isinstance(x, ndarray):
        _check_device(x, what)
        return x._a
    if isinstance(x, _np.ndarray):
        raise HostTransferError(
            f"{what}: got a host numpy array of shape {x.shape} where a device array is "
            "expected; CuPy refuses numpy arrays in device operations: move it explicitly "
            "(cupy.asarray / backend.to_device)")
    if isinstance(x, tuple):
        return tuple(_unwrap(v, what) for v in x)
    if isinstance(x, list):
        return [_unwrap(v, what) for v in x]
    return x


def _unwrap_all(args, kwargs, what):
    return ([_unwrap(a, what) for a in args],
            {k: _unwrap(v, what) for k, v in kwargs.items()})


_SCALARS = (bool, int, float, complex, _np.generic)


def _operand_ok(x):
    return isinstance(x, (ndarray, _np.ndarray) + _SCALARS)


def _binary(op, reflected=False):
    def method(self, other):
        if not _operand_ok(other):
            return NotImplemented  # e.g. a Tensor: let its reflected operator run
        a, b = _unwrap(self, op.__name__), _unwrap(other, op.__name__)
        return _wrap_result(op(b, a) if reflected else op(a, b))

    method.__name__ = op.__name__
    return method


def _inplace(op):
    def method(self, other):
        if not _operand_ok(other):
            return NotImplemented
        op(_unwrap(self, op.__name__), _unwrap(other, op.__name__))
        return self

    method.__name__ = op.__name__
    return method


def _unary(op):
    def method(self):
        return _wrap_result(op(_unwrap(self, op.__name__)))

    return method


def _method(name):
    def method(self, *args, **kwargs):
        args, kwargs = _unwrap_all(args, kwargs, f"ndarray.{name}")
        return _wrap_result(getattr(_unwrap(self, f"ndarray.{name}"), name)(*args, **kwargs))

    method.__name__ = name
    return method


def _fill_garbage(a):
    """What uninitialised device memory would hold, made loud: NaN, or a sentinel integer."""
    if a.dtype.kind in "fc":
        a.fill(_np.nan)
    elif a.dtype.kind in "iu":
        a.fill(_np.iinfo(a.dtype).max // 3)
    elif a.dtype.kind == "b":
        a.fill(True)
    return a


class ndarray:
    """A device array: numpy data behind a wall that refuses implicit host conversion."""

    __slots__ = ("_a", "_dev")
    __array_ufunc__ = None  # numpy ufuncs refuse it (and defer to its reflected operators)
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        self._a = _fill_garbage(_np.empty(shape, dtype=dtype, order=order))
        self._dev = _current()

    # -- the wall ---------------------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise HostTransferError(
            "Implicit conversion to a NumPy array is not allowed (strict CuPy stand-in); use "
            ".get() or backend.to_host to copy to the host explicitly")

    def __array_function__(self, func, types, args, kwargs):
        raise HostTransferError(
            f"numpy.{func.__name__} was called on a device array: ops must call the array "
            "module of their data (xp), never numpy")

    def __float__(self):
        _refuse("float() of a device array")

    def __int__(self):
        _refuse("int() of a device array")

    def __complex__(self):
        _refuse("complex() of a device array")

    def __index__(self):
        _refuse("using a device array as a Python int (operator.index)")

    def __bool__(self):
        _refuse("bool() of a device array (an `if`, `and`, `or`, `assert` on it)")

    def item(self, *args):
        _refuse(".item() of a device array")

    def tolist(self):
        _refuse(".tolist() of a device array")

    def __format__(self, spec):
        if spec:
            _refuse(f"formatting a device array with {spec!r}")
        return str(self)

    # -- explicit transfers -----------------------------------------------------------------
    def get(self, stream=None, order="C", out=None, blocking=True):
        """A host copy (the explicit device-to-host transfer)."""
        if out is not None:
            out[...] = self._a
            return out
        return _np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        """Overwrite with a host array of the same shape (the explicit host-to-device copy)."""
        arr = _np.asarray(arr)
        if arr.shape != self._a.shape:
            raise ValueError(f"set: shape mismatch {arr.shape} vs {self._a.shape}")
        self._a[...] = arr

    # -- attributes -------------------------------------------------------------------------
    @property
    def device(self):
        return Device(self._dev)

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: _wrap(self._a.T, self._dev))
    mT = property(lambda self: _wrap(self._a.mT, self._dev))
    real = property(lambda self: _wrap(self._a.real, self._dev))
    imag = property(lambda self: _wrap(self._a.imag, self._dev))

    def __len__(self):
        if self._a.ndim == 0:
            raise TypeError("len() of unsized object")
        return self._a.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self):  # a debugging aid: a real CuPy repr also copies to the host
        return f"strict_cupy.{_np.array_repr(self._a)[:-1]}, device={self._dev})"

    def __str__(self):
        return str(self._a)

    # -- indexing ---------------------------------------------------------------------------
    def __getitem__(self, key):
        return _wrap_result(_unwrap(self, "__getitem__")[_unwrap(key, "__getitem__ (index)")])

    def __setitem__(self, key, value):
        if not isinstance(value, (ndarray, _np.ndarray) + _SCALARS):
            raise HostTransferError(f"__setitem__: refusing a value of type {type(value).__name__}"
                                    "; assign a device array or a scalar")
        _unwrap(self, "__setitem__")[_unwrap(key, "__setitem__ (index)")] = \
            _unwrap(value, "__setitem__ (value)")

    # -- copies and pickling ----------------------------------------------------------------
    def __copy__(self):
        return _wrap(self._a.copy(), self._dev)

    def __deepcopy__(self, memo):
        return _wrap(self._a.copy(), self._dev)

    def __reduce__(self):
        return (_rebuild, (self._a.copy(), self._dev))

    # -- operators --------------------------------------------------------------------------
    __add__, __radd__ = _binary(operator.add), _binary(operator.add, True)
    __sub__, __rsub__ = _binary(operator.sub), _binary(operator.sub, True)
    __mul__, __rmul__ = _binary(operator.mul), _binary(operator.mul, True)
    __truediv__, __rtruediv__ = _binary(operator.truediv), _binary(operator.truediv, True)
    __floordiv__, __rfloordiv__ = _binary(operator.floordiv), _binary(operator.floordiv, True)
    __mod__, __rmod__ = _binary(operator.mod), _binary(operator.mod, True)
    __pow__, __rpow__ = _binary(operator.pow), _binary(operator.pow, True)
    __matmul__, __rmatmul__ = _binary(operator.matmul), _binary(operator.matmul, True)
    __and__, __rand__ = _binary(operator.and_), _binary(operator.and_, True)
    __or__, __ror__ = _binary(operator.or_), _binary(operator.or_, True)
    __xor__, __rxor__ = _binary(operator.xor), _binary(operator.xor, True)
    __lshift__, __rlshift__ = _binary(operator.lshift), _binary(operator.lshift, True)
    __rshift__, __rrshift__ = _binary(operator.rshift), _binary(operator.rshift, True)
    __eq__, __ne__ = _binary(operator.eq), _binary(operator.ne)
    __lt__, __le__ = _binary(operator.lt), _binary(operator.le)
    __gt__, __ge__ = _binary(operator.gt), _binary(operator.ge)
    __iadd__, __isub__ = _inplace(operator.iadd), _inplace(operator.isub)
    __imul__, __itruediv__ = _inplace(operator.imul), _inplace(operator.itruediv)
    __ifloordiv__, __imod__ = _inplace(operator.ifloordiv), _inplace(operator.imod)
    __ipow__, __imatmul__ = _inplace(operator.ipow), _inplace(operator.imatmul)
    __iand__, __ior__, __ixor__ = _inplace(operator.iand), _inplace(operator.ior), _inplace(operator.ixor)
    __neg__, __pos__ = _unary(operator.neg), _unary(operator.pos)
    __abs__, __invert__ = _unary(operator.abs), _unary(operator.invert)

    # -- methods (the subset of cupy.ndarray's that numpy shares) ---------------------------
    for _name in ("reshape", "transpose", "swapaxes", "astype", "copy", "view", "sum", "prod",
                  "max", "min", "argmax", "argmin", "mean", "var", "std", "any", "all", "clip",
                  "squeeze", "ravel", "flatten", "take", "repeat", "cumsum", "cumprod", "dot",
                  "nonzero", "sort", "argsort", "round", "conj", "diagonal", "trace", "fill",
                  "put", "choose", "compress", "partition", "argpartition"):
        locals()[_name] = _method(_name)
    del _name


def _rebuild(a, dev):
    return _wrap(a, dev)


# ----------------------------------------------------------------------------- creation
def _host_data(obj, what):
    """Host data for a creation function: Python data and numpy arrays (copied)."""
    if isinstance(obj, (list, tuple)):
        # a nested list holding device arrays would need an implicit transfer
        for item in obj:
            if isinstance(item, ndarray):
                raise HostTransferError(f"{what}: a list of device arrays; use stack()")
    return obj


def asarray(a, dtype=None, order=None, *, blocking=False):
    """Device array from device data (no copy when nothing changes) or host data (a copy)."""
    if isinstance(a, ndarray):
        if a._dev != _current():  # a device-to-device copy onto the current device
            return _wrap(_np.array(a._a, dtype=dtype, copy=True))
        return a if dtype is None or _np.dtype(dtype) == a.dtype else a.astype(dtype)
    return _wrap(_np.array(_host_data(a, "asarray"), dtype=dtype, order=order, copy=True))


asanyarray = asarray


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if isinstance(obj, ndarray):
        return _wrap(_np.array(obj._a, dtype=dtype, copy=copy or obj._dev != _current(),
                               order=order, ndmin=ndmin))
    return _wrap(_np.array(_host_data(obj, "array"), dtype=dtype, copy=True, order=order,
                           ndmin=ndmin))


def ascontiguousarray(a, dtype=None):
    if isinstance(a, ndarray):
        return _wrap(_np.ascontiguousarray(_unwrap(a, "ascontiguousarray"), dtype=dtype))
    return _wrap(_np.array(_host_data(a, "ascontiguousarray"), dtype=dtype, order="C", copy=True))


def empty(shape, dtype=float, order="C"):
    return _wrap(_fill_garbage(_np.empty(shape, dtype=dtype, order=order)))


def empty_like(a, dtype=None, order="K", subok=None, shape=None):
    return _wrap(_fill_garbage(_np.empty_like(_unwrap(a, "empty_like"), dtype=dtype, order=order,
                                              shape=shape)))


def _like(name):
    func = getattr(_np, name)

    def like(a, *args, **kwargs):
        args, kwargs = _unwrap_all(args, kwargs, name)
        return _wrap(func(_unwrap(a, name), *args, **kwargs))

    like.__name__ = name
    return like


zeros_like, ones_like, full_like = _like("zeros_like"), _like("ones_like"), _like("full_like")


def _creator(name):
    func = getattr(_np, name)

    def create(*args, **kwargs):
        args, kwargs = _unwrap_all(args, kwargs, name)  # e.g. full(shape, device_scalar)
        return _wrap_result(func(*args, **kwargs))

    create.__name__ = name
    return create


zeros, ones, full, eye, identity = (_creator(n) for n in ("zeros", "ones", "full", "eye", "identity"))
arange, linspace, logspace, tri = (_creator(n) for n in ("arange", "linspace", "logspace", "tri"))


# ----------------------------------------------------------------------------- forwarding
def _forward(func, name):
    def forwarded(*args, **kwargs):
        args, kwargs = _unwrap_all(args, kwargs, name)
        return _wrap_result(func(*args, **kwargs))

    forwarded.__name__ = name
    forwarded.__doc__ = f"strict stand-in for cupy.{name} (numpy.{name} on unwrapped arrays)"
    return forwarded


class ufunc:
    """``cupy.ufunc``: a numpy ufunc behind the wall, with ``at``, ``reduce``, ``outer``."""

    def __init__(self, np_ufunc):
        self._u = np_ufunc
        self.__name__ = self.name = np_ufunc.__name__
        self.nin, self.nout, self.nargs = np_ufunc.nin, np_ufunc.nout, np_ufunc.nargs

    def __call__(self, *args, out=None, **kwargs):
        args, kwargs = _unwrap_all(args, kwargs, self.name)
        if out is None:
            return _wrap_result(self._u(*args, **kwargs))
        self._u(*args, out=_unwrap(out, self.name), **kwargs)
        return out

    def at(self, a, indices, b=None):
        """In place, unbuffered: repeated indices accumulate (CuPy uses atomics here)."""
        if not isinstance(a, ndarray):
            raise HostTransferError(f"{self.name}.at: the target must be a device array")
        args = (indices,) if b is None else (indices, b)
        self._u.at(_unwrap(a, f"{self.name}.at"), *_unwrap(args, f"{self.name}.at"))

    def reduce(self, *args, **kwargs):
        return _forward(self._u.reduce, f"{self.name}.reduce")(*args, **kwargs)

    def accumulate(self, *args, **kwargs):
        return _forward(self._u.accumulate, f"{self.name}.accumulate")(*args, **kwargs)

    def outer(self, *args, **kwargs):
        return _forward(self._u.outer, f"{self.name}.outer")(*args, **kwargs)

    def reduceat(self, *args, **kwargs):
        return _forward(self._u.reduceat, f"{self.name}.reduceat")(*args, **kwargs)

    def __repr__(self):
        return f"<ufunc 'cupy_{self.name}'>"


class _Namespace(types.SimpleNamespace):
    """A sub-module (``linalg``, ``fft``) forwarding to its numpy twin, names checked."""

    def __init__(self, np_module, prefix, deny=()):
        super().__init__()
        object.__setattr__(self, "_np_module", np_module)
        object.__setattr__(self, "_prefix", prefix)
        object.__setattr__(self, "_deny", frozenset(deny))

    def __getattr__(self, name):
        if name.startswith("__") or name in self._deny:
            raise AttributeError(f"module 'cupy.{self._prefix}' has no attribute {name!r} "
                                 "(numpy-only, refused by the strict stand-in)")
        attr = getattr(self._np_module, name)
        return _forward(attr, f"{self._prefix}.{name}") if callable(attr) else attr


linalg = _Namespace(_np.linalg, "linalg", deny=("LinAlgError",))
linalg.LinAlgError = _np.linalg.LinAlgError
fft = _Namespace(_np.fft, "fft")


def _as_strided(x, shape=None, strides=None):
    if not isinstance(x, ndarray):
        raise HostTransferError("as_strided: expected a device array")
    return _wrap(_np.lib.stride_tricks.as_strided(_unwrap(x, "as_strided"), shape, strides))


def _sliding_window_view(x, window_shape, axis=None, *, subok=False, writeable=False):
    if not isinstance(x, ndarray):
        raise HostTransferError("sliding_window_view: expected a device array")
    return _wrap(_np.lib.stride_tricks.sliding_window_view(
        _unwrap(x, "sliding_window_view"), window_shape, axis, writeable=writeable))


lib = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(
    as_strided=_as_strided, sliding_window_view=_sliding_window_view))


# ----------------------------------------------------------------------------- random
class _Generator:
    """``cupy.random.Generator``: draws wrapped as device arrays."""

    def __init__(self, seed=None):
        self._g = _np.random.default_rng(seed)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return _forward(getattr(self._g, name), f"random.Generator.{name}")


_random_state = _np.random.RandomState(0)


class _Random(types.SimpleNamespace):
    def __getattr__(self, name):
        if name in ("rand", "randn", "random", "random_sample", "uniform", "normal", "randint",
                    "standard_normal", "choice", "permutation", "shuffle", "binomial", "bernoulli"):
            return _forward(getattr(_random_state, name), f"random.{name}")
        raise AttributeError(f"cupy.random.{name} is not modelled by the strict stand-in")


def _seed(seed=None):
    _random_state.seed(seed)


random = _Random(seed=_seed, default_rng=_Generator, Generator=_Generator)


# ----------------------------------------------------------------------------- cuda namespace
class _Stream:
    def synchronize(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_Stream.null = _Stream()


class _Event:
    def __init__(self, *args, **kwargs):
        self.time = None

    def record(self, stream=None):
        self.time = time.perf_counter()

    def synchronize(self):
        pass


def _get_elapsed_time(start, end):
    """Milliseconds between two recorded events."""
    return (end.time - start.time) * 1e3


def _not_emulated(name):
    def refuse(*args, **kwargs):
        raise NotImplementedError(
            f"cupy.{name}: a CUDA kernel cannot run on the strict stand-in; keep an xp-generic "
            "fallback for the CPU path and test the kernel on a real GPU (pytest -m gpu)")

    return refuse


cuda = types.SimpleNamespace(
    Device=Device,
    Stream=_Stream,
    Event=_Event,
    get_current_stream=lambda device=None: _Stream.null,
    get_elapsed_time=_get_elapsed_time,
    is_available=lambda: True,
    runtime=types.SimpleNamespace(
        getDeviceCount=lambda: _State.device_count,
        getDevice=_current,
        setDevice=lambda i: Device(i).use(),
        deviceSynchronize=lambda: None,
        getDeviceProperties=lambda i: {"name": b"strict_cupy stand-in (numpy)",
                                       "totalGlobalMem": 1 << 34, "major": 9, "minor": 0},
        CUDARuntimeError=_CudaRuntimeError,
    ),
)


class _MemoryPool:
    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_all_blocks(self):
        pass


_pool = _MemoryPool()


def get_default_memory_pool():
    return _pool


def get_default_pinned_memory_pool():
    return _pool


def is_available():
    return True


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    """Host copy of a device array (explicit); host data passes through numpy.asarray."""
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return _np.asarray(a, order=order)


def get_array_module(*args):
    import sys

    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else _np


def fuse(*args, **kwargs):
    """``cupy.fuse`` runs the plain Python function here (same semantics, no kernel)."""
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda func: func


RawKernel = _not_emulated("RawKernel")
RawModule = _not_emulated("RawModule")
ElementwiseKernel = _not_emulated("ElementwiseKernel")
ReductionKernel = _not_emulated("ReductionKernel")

# numpy names that CuPy does not have (or has with different semantics): refused, so that
# code that works here also imports on a real GPU.
NUMPY_ONLY = frozenset({
    "errstate", "seterr", "geterr", "seterrcall", "geterrcall", "setbufsize", "getbufsize",
    "nditer", "ndindex", "ndenumerate", "nested_iters", "frompyfunc", "memmap", "matrix",
    "asmatrix", "bmat", "recarray", "record", "chararray", "float96", "float128", "longdouble",
    "clongdouble", "complex192", "complex256", "object_", "str_", "bytes_", "void",
    "datetime64", "timedelta64", "datetime_as_string", "busday_count", "busday_offset",
    "is_busday", "busdaycalendar", "set_printoptions", "get_printoptions", "printoptions",
    "loadtxt", "savetxt", "genfromtxt", "fromregex", "ma", "rec", "char", "strings",
    "ctypeslib", "emath", "matlib", "typing", "f2py",
})


def __getattr__(name):
    """Forward the rest of the numpy namespace, behind the same wall."""
    if name.startswith("__") or name in NUMPY_ONLY:
        raise AttributeError(f"module 'cupy' has no attribute {name!r} (numpy-only, refused by "
                             "the strict stand-in)")
    attr = getattr(_np, name)  # AttributeError for names numpy lacks too
    if isinstance(attr, _np.ufunc):
        value = ufunc(attr)
    elif isinstance(attr, (type, types.ModuleType)) or not callable(attr):
        if isinstance(attr, types.ModuleType):
            raise AttributeError(f"cupy.{name} is not modelled by the strict stand-in")
        value = attr  # dtypes (float32, int64, dtype), constants (pi, inf, newaxis)
    else:
        value = _forward(attr, name)
    globals()[name] = value  # cache
    return value

