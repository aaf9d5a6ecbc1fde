"""Array backends: the only module that imports numpy or cupy.

Every op receives ``xp``, the array module of its data (numpy on the CPU, cupy on a GPU), and
calls ``xp.*`` plus the few helpers below where numpy and cupy differ. CuPy is imported lazily
the first time a CUDA device is asked for, so the CPU path never needs it.
"""
from __future__ import annotations

import threading

import numpy as np

float32 = np.dtype("float32")
float64 = np.dtype("float64")
int64 = np.dtype("int64")
bool_ = np.dtype("bool")

host_array_type = np.ndarray  # the engine checks `type(a) is host_array_type` on its hot path
host_module = np

_cupy = None  # the cupy module once loaded (tests may put a strict stand-in here)

CUPY_HINT = (
    "CUDA tensors need CuPy and an NVIDIA GPU: install the wheel that matches your CUDA "
    "toolkit, `pip install 'tinygrad-nd[cuda12]'` (cupy-cuda12x) or "
    "`pip install 'tinygrad-nd[cuda13]'` (cupy-cuda13x)"
)


def cupy_module():
    """Return cupy, importing it on first use, or raise a RuntimeError that says how to get it."""
    global _cupy
    if _cupy is None:
        try:
            import cupy
        except ImportError as exc:
            raise RuntimeError(f"{CUPY_HINT} (import failed: {exc})") from None
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # cupy raises its own CUDARuntimeError without a driver
            raise RuntimeError(f"CuPy is installed but no CUDA GPU is usable: {exc}") from None
        if count == 0:
            raise RuntimeError("CuPy is installed but no CUDA GPU was found")
        _cupy = cupy
    return _cupy


# ----------------------------------------------------------------------------- devices
def parse_device(device) -> str:
    """Normalise ``None``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` to ``"cpu"`` or ``"cuda:N"``."""
    if device is None:
        return "cpu"
    name = str(device).strip().lower()
    if name == "cpu":
        return "cpu"
    if name == "cuda":
        return "cuda:0"
    if name.startswith("cuda:") and name[5:].isdigit():
        return name
    raise ValueError(f"unknown device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'")


def is_host_array(x) -> bool:
    return isinstance(x, (np.ndarray, np.generic))


def ensure_array(x):
    """numpy reductions return numpy scalars: make them 0-d arrays, pass arrays through."""
    return np.asarray(x) if isinstance(x, np.generic) else x


def array_module(x):
    """The array module (numpy or cupy) that owns array ``x``."""
    if isinstance(x, (np.ndarray, np.generic)):
        return np
    if _cupy is not None and isinstance(x, _cupy.ndarray):
        return _cupy
    raise TypeError(f"expected a numpy or cupy array, got {type(x).__name__}")


def common_module(arrays):
    """The array module shared by ``arrays``; ValueError when they live on different devices."""
    if all(type(a) is np.ndarray for a in arrays):  # the common CPU case, checked cheaply
        return np
    xp = array_module(arrays[0])
    device = device_of(arrays[0])
    for a in arrays[1:]:
        if array_module(a) is not xp or device_of(a) != device:
            raise ValueError("arrays on different devices")
    return xp


def device_of(x) -> str:
    """``"cpu"`` or ``"cuda:N"`` for an array."""
    if isinstance(x, (np.ndarray, np.generic)):
        return "cpu"
    return f"cuda:{x.device.id}"


def to_device(x, device: str):
    """Copy array ``x`` to ``device`` (a parsed device string); a no-op when already there."""
    if device == "cpu":
        return to_host(x)
    cp = cupy_module()
    index = int(device.split(":")[1])
    if not is_host_array(x) and x.device.id == index:
        return x
    with cp.cuda.Device(index):
        return cp.asarray(x)


def to_host(x):
    """A host numpy array holding ``x`` (no copy for host data)."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, np.generic):
        return np.asarray(x)
    return x.get()


def on_device(xp, device: str):
    """Context in which new ``xp`` arrays are created on ``device``."""
    if xp is np:
        return _NullContext()
    return xp.cuda.Device(int(device.split(":")[1]))


def device_scope(x):
    """Context in which kernels run and new arrays land on the device of array ``x`` (CuPy uses
    the *current* device, not the inputs'); a no-op for host arrays."""
    if isinstance(x, (np.ndarray, np.generic)):
        return _NULL_CONTEXT
    return x.device


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NULL_CONTEXT = _NullContext()


# ----------------------------------------------------------------------------- conversion
def as_array(data, dtype=None, device=None):
    """Build an array on ``device`` from Python data, numpy or cupy arrays.

    Python floats become float32 and Python ints int64 (PyTorch's defaults); arrays keep
    their dtype unless ``dtype`` is given. ``device=None`` leaves arrays where they are and
    puts Python data on the CPU.
    """
    if not (is_host_array(data) or (_cupy is not None and isinstance(data, _cupy.ndarray))):
        data = np.asarray(data)
        if dtype is None:
            if data.dtype == np.float64:
                data = data.astype(np.float32)
            elif data.dtype.kind in "iu":
                data = data.astype(np.int64)
    elif isinstance(data, np.generic):
        data = np.asarray(data)
    if dtype is not None:
        dtype = np.dtype(dtype)
        if data.dtype != dtype:
            data = data.astype(dtype)
    return data if device is None else to_device(data, device)


def scalar_like(array, value, dtype):
    """A 0-d array holding ``value`` on the device of ``array``."""
    if type(array) is np.ndarray:
        return np.array(value, dtype=dtype)
    with array.device:
        return array_module(array).array(value, dtype=dtype)


def quiet_overflow(xp):
    """Context that silences floating-point overflow warnings (numpy warns, cupy never does)."""
    return np.errstate(over="ignore") if xp is np else _NullContext()


def format_array(a, prefix="") -> str:
    """Array text as PyTorch prints tensors: 4 decimals, ``, `` between elements."""
    return np.array2string(a, precision=4, separator=", ", prefix=prefix, floatmode="maxprec_equal")


def as_dtype(dtype):
    """A numpy dtype object from a dtype, a type or a name such as ``"float32"``."""
    return np.dtype(dtype)


def broadcast_shape(op: str, *shapes) -> tuple:
    """The numpy broadcast of ``shapes``, or ValueError naming the op and every shape."""
    if len(shapes) == 2:  # the common case, without the general loop
        a, b = shapes
        if not a or not b:  # a 0-d operand broadcasts to anything
            return a or b
        if len(a) == len(b):
            out = []
            for m, n in zip(a, b):
                if m == n or n == 1:
                    out.append(m)
                elif m == 1:
                    out.append(n)
                else:
                    break  # incompatible: the general loop below builds the message
            else:
                return tuple(out)
    ndim = max(len(s) for s in shapes)
    out = []
    for axis in range(ndim):
        size = 1
        for s in shapes:
            k = axis - (ndim - len(s))
            if k >= 0 and s[k] != 1:
                if size != 1 and s[k] != size:
                    listed = " and ".join(str(tuple(s)) for s in shapes)
                    raise ValueError(f"{op}: shapes {listed} cannot be broadcast together "
                                     f"(sizes {size} and {s[k]} at dimension {axis - ndim}, "
                                     "counting from the right)")
                size = s[k]
        out.append(size)
    return tuple(out)


def filled(shape, value, dtype):
    """A host array of ``shape`` filled with ``value``."""
    return np.full(shape, value, dtype=dtype)


def arange(start, end, step):
    return np.arange(start, end, step)


def eye(n, m=None):
    return np.eye(n, m)


# ----------------------------------------------------------------------------- host numerics (gradcheck)
def host_zeros(shape):
    return np.zeros(shape, dtype=np.float64)


def host_concat(arrays):
    return np.concatenate([np.asarray(a, dtype=np.float64) for a in arrays])


def unravel(flat_index, shape) -> tuple:
    return tuple(int(i) for i in np.unravel_index(flat_index, shape)) if shape else ()


def worst_mismatch(analytic, numeric, atol, rtol):
    """None when ``|analytic - numeric| <= atol + rtol * |numeric|`` everywhere (NaN only
    matching NaN); else ``((row, col), analytic value, numeric value)`` of the worst element."""
    nan_a, nan_n = np.isnan(analytic), np.isnan(numeric)
    excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    excess = np.where(nan_a | nan_n, np.where(nan_a & nan_n, -1.0, np.inf), excess)
    if excess.size == 0 or excess.max() <= 0:
        return None
    row, col = np.unravel_index(int(np.argmax(excess)), excess.shape)
    return (int(row), int(col)), float(analytic[row, col]), float(numeric[row, col])


def host_rng(seed=None) -> np.random.Generator:
    """A numpy Generator: initial weights are drawn on the host so CPU and GPU runs agree."""
    return np.random.default_rng(seed)


def result_dtype(*dtypes):
    return np.result_type(*dtypes)


def is_float_dtype(dtype) -> bool:
    return np.dtype(dtype).kind == "f"


# ----------------------------------------------------------------------------- numpy/cupy differences
def scatter_add(xp, target, index, values):
    """``target[index] += values`` with repeated indices accumulated (unbuffered), in place."""
    if xp is np:
        np.add.at(target, index, values)
    else:
        xp.add.at(target, index, values)
    return target


def writable(x):
    """``x``, or a copy of it when ``x`` is a read-only or broadcast view (a gradient stored in
    ``.grad`` must be safe to modify in place, e.g. by gradient clipping)."""
    if isinstance(x, np.ndarray):
        return x if x.flags.writeable else x.copy()
    return x.copy() if 0 in x.strides and x.size > 1 else x


def all_finite(x) -> bool:
    """True when every element is finite (a host sync; used only by anomaly mode)."""
    with device_scope(x):
        return bool(to_host(array_module(x).isfinite(x).all()))  # an explicit 1-element copy


def synchronize(device: str = "cuda:0"):
    """Wait for queued GPU work (a no-op on the CPU)."""
    if device != "cpu" and _cupy is not None:
        _cupy.cuda.Device(int(device.split(":")[1])).synchronize()


# ----------------------------------------------------------------------------- host I/O (data, serialization)
# Dataset files and checkpoints are read and written on the host; these helpers keep numpy
# imports in this module. Nothing here ever unpickles: npz archives are read with
# allow_pickle=False, so an object array raises instead of running code.
def host_frombuffer(buffer, dtype, offset: int = 0):
    """A read-only host array viewing ``buffer`` (bytes) as ``dtype``, starting at byte ``offset``."""
    return np.frombuffer(buffer, dtype=np.dtype(dtype), offset=offset)


def host_permutation(rng, n: int):
    """A random permutation of ``range(n)`` (int64) drawn from numpy Generator ``rng``."""
    return rng.permutation(n).astype(np.int64)


def write_npz(file, arrays: dict):
    """Write host ``arrays`` (name -> array) into an uncompressed npz archive; refuses pickling."""
    np.savez(file, allow_pickle=False, **arrays)


def read_npz(file) -> dict:
    """Every member of an npz archive as host arrays, read with ``allow_pickle=False``.

    Raises ValueError (from numpy) for a member that holds pickled (object) data, and the
    usual zipfile/OSError/EOFError exceptions for damaged archives.
    """
    archive = np.load(file, allow_pickle=False)
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError("a single .npy array, not an npz archive")
    with archive:
        return {name: archive[name] for name in archive.files}


def is_host_scalar(x) -> bool:
    """True for a numpy scalar such as ``np.float32(1.5)`` (not a 0-d array)."""
    return isinstance(x, np.generic)


# ----------------------------------------------------------------------------- convolution (ops/conv.py)
def im2col_chunk_bytes(xp) -> int:
    """How large a column matrix convolutions build at a time (whole examples per chunk).

    On the CPU a few MB stay in cache: col2im and the GEMMs run faster than on one huge matrix
    and peak memory stays near the size of the activations. On a GPU every chunk costs kernel
    launches and memory is plentiful, so the whole batch goes at once.
    """
    return 4 << 20 if xp is np else 1 << 30


_scratch = threading.local()  # per thread, so that ops running in two threads never share one
SCRATCH_MAX_BYTES = 16 << 20  # larger work arrays (one huge example) are allocated afresh, not kept


def scratch(xp, name: str, shape, dtype):
    """An uninitialised work array for an op's temporaries, reused by the next call with the
    same ``name`` (so it must not outlive the op that asked for it).

    On the CPU a freshly allocated large array is page-faulted in on first touch, at every call:
    that was half the time of a small 3-d convolution on a VM. One kept buffer per name and dtype
    (up to SCRATCH_MAX_BYTES) avoids it. CuPy's memory pool already recycles device memory, so on
    a GPU this is just ``empty``.
    """
    dtype = np.dtype(dtype)
    size = 1
    for n in shape:
        size *= int(n)
    if xp is not np or size * dtype.itemsize > SCRATCH_MAX_BYTES:
        return xp.empty(shape, dtype=dtype)
    buffers = _scratch.__dict__.setdefault("buffers", {})
    buf = buffers.get((name, dtype))
    if buf is None or buf.size < size:
        buf = buffers[(name, dtype)] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


def scratch_bytes() -> int:
    """Bytes held by this thread's work arrays (``scratch``), e.g. for memory reports."""
    return sum(buf.nbytes for buf in _scratch.__dict__.get("buffers", {}).values())
