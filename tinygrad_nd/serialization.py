"""Safe checkpoints: ``save(obj, path)`` and ``load(path, device="cpu")`` in one ``.npz`` archive.

The archive holds one npy member per array (``a0``, ``a1``, ...) plus ``__structure__``: the
JSON description of the nested containers, stored as a uint8 array. Nothing is pickled when
saving, and loading reads every member with ``allow_pickle=False``, so opening a checkpoint
never runs code: a member holding pickled (object) data is refused.

What round-trips, exactly:

- ``dict`` (keys ``str`` or ``int``, kept with their type and order), ``list``, ``tuple``;
- ``Tensor`` (dtype, shape, values bit for bit, ``requires_grad`` of leaves), numpy and cupy
  arrays, numpy scalars;
- ``int``, ``float`` (including nan and inf), ``bool``, ``None``, ``str``.

Anything else (a Module, a function, a set, a custom class) raises ``TypeError`` naming where in
the object it sits: save ``model.state_dict()``, not the model.
"""
from __future__ import annotations

import json
import math
import os
import zipfile

from . import backend
from .tensor import Tensor

FORMAT = "tinygrad_nd.checkpoint"
VERSION = 1
STRUCTURE = "__structure__"


# ----------------------------------------------------------------------------- saving
class _Encoder:
    """Walks the object once, collecting arrays by name and returning the JSON structure."""

    def __init__(self):
        self.arrays = {}
        self._active = set()  # ids of containers being encoded, to catch cycles

    def _add(self, array) -> str:
        name = f"a{len(self.arrays)}"
        self.arrays[name] = backend.to_host(array)
        if self.arrays[name].dtype.kind == "O":
            raise TypeError("object arrays cannot be saved (they would need pickle)")
        return name

    def encode(self, obj, where: str):
        if backend.is_host_scalar(obj):  # first: np.float64 is also a Python float
            return {"type": "scalar", "array": self._add_checked(obj, where)}
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return obj
        if isinstance(obj, float):
            if math.isfinite(obj):
                return obj
            return {"type": "float", "value": repr(obj)}  # nan, inf, -inf: JSON has no literal
        if isinstance(obj, Tensor):
            return {"type": "tensor", "array": self._add_checked(obj.data, where),
                    "requires_grad": bool(obj.requires_grad and obj.is_leaf)}
        if _is_array(obj):
            return {"type": "array", "array": self._add_checked(obj, where)}
        if isinstance(obj, (dict, list, tuple)):
            if id(obj) in self._active:
                raise ValueError(f"save: {where} contains itself (a reference cycle)")
            self._active.add(id(obj))
            try:
                if isinstance(obj, dict):
                    return {"type": "dict", "items": [self._item(k, v, where) for k, v in obj.items()]}
                items = [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
                return {"type": "tuple" if isinstance(obj, tuple) else "list", "items": items}
            finally:
                self._active.discard(id(obj))
        raise TypeError(f"save: cannot save {where} of type {type(obj).__name__}; checkpoints hold "
                        "nested dicts/lists/tuples of Tensors, arrays, numbers, strings and None "
                        "(save model.state_dict(), not the model)")

    def _item(self, key, value, where):
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise TypeError(f"save: dict keys must be str or int, got {key!r} "
                            f"({type(key).__name__}) in {where}")
        return [key, self.encode(value, f"{where}[{key!r}]")]

    def _add_checked(self, array, where):
        try:
            return self._add(array)
        except TypeError as exc:
            raise TypeError(f"save: {where}: {exc}") from None


def _is_array(obj) -> bool:
    try:
        backend.array_module(obj)
    except TypeError:
        return False
    return True


def save(obj, path) -> None:
    """Write ``obj`` (nested dicts/lists/tuples of Tensors, arrays, numbers, strings) to ``path``.

    The file is an uncompressed ``.npz`` archive written under exactly the given name (no
    ``.npz`` is appended). It is written to a temporary file first and then renamed, so a
    failed save never leaves a half-written checkpoint behind. Tensors on a GPU are copied to
    the host. No pickle is used.

    Parameters
    ----------
    obj : dict, list, tuple, Tensor, array, int, float, bool, str or None
        Typically ``{"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}``.
    path : str or os.PathLike
        Where to write.

    Raises
    ------
    TypeError
        For an object of an unsupported type, naming where it sits in ``obj``.
    OSError
        When ``path`` cannot be written (for example, its folder does not exist).

    Examples
    --------
    >>> import os, tempfile
    >>> import tinygrad_nd as tnd
    >>> path = os.path.join(tempfile.mkdtemp(), "state.npz")
    >>> tnd.save({"w": tnd.ones(2, 3), "step": 7, 0: "zero"}, path)
    >>> state = tnd.load(path)
    >>> state["w"].shape, state["step"], state[0]
    ((2, 3), 7, 'zero')
    """
    encoder = _Encoder()
    tree = encoder.encode(obj, "obj")
    header = {"format": FORMAT, "version": VERSION, "tree": tree}
    text = json.dumps(header, allow_nan=False, ensure_ascii=True)
    arrays = dict(encoder.arrays)
    arrays[STRUCTURE] = backend.host_frombuffer(text.encode("ascii"), "uint8")
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            backend.write_npz(f, arrays)
        os.replace(tmp, path)
    except OSError as exc:
        raise OSError(f"save: cannot write {path!r}: {exc.strerror or exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# ----------------------------------------------------------------------------- loading
def _read_members(path: str) -> dict:
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such checkpoint file: {path!r}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        raise ValueError(f"load: {path!r} is not a tinygrad_nd checkpoint (.npz archive): it does "
                         f"not start with the zip signature (first bytes {magic!r})")
    try:
        members = backend.read_npz(path)
    except ValueError as exc:
        if "pickle" in str(exc) or "Object arrays" in str(exc):
            raise ValueError(f"load: {path!r} holds a pickled (object) array; tinygrad_nd never "
                             "unpickles, because unpickling can run arbitrary code. Refusing to "
                             "load it.") from None
        raise ValueError(f"load: {path!r} is damaged or not an npz archive ({exc})") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
        raise ValueError(f"load: {path!r} is truncated or damaged ({type(exc).__name__}: {exc})") from None
    for name, value in members.items():
        if not hasattr(value, "dtype"):
            raise ValueError(f"load: {path!r} member {name!r} is not an npy array: not a "
                             "tinygrad_nd checkpoint")
    return members


def _parse_structure(members: dict, path: str):
    if STRUCTURE not in members:
        raise ValueError(f"load: {path!r} is an npz archive without the {STRUCTURE!r} entry, so "
                         "not a checkpoint written by tnd.save (its members: "
                         f"{sorted(members)[:10]})")
    raw = members[STRUCTURE]
    if raw.dtype.kind != "u" or raw.dtype.itemsize != 1 or raw.ndim != 1:
        raise ValueError(f"load: {path!r}: the {STRUCTURE!r} entry must be a 1-d uint8 array, got "
                         f"dtype {raw.dtype} shape {raw.shape}")
    try:
        header = json.loads(raw.tobytes().decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"load: {path!r}: the {STRUCTURE!r} entry is not valid JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT or "tree" not in header:
        raise ValueError(f"load: {path!r}: the {STRUCTURE!r} entry is not a {FORMAT} header")
    if header.get("version") != VERSION:
        raise ValueError(f"load: {path!r} has checkpoint version {header.get('version')!r}; this "
                         f"tinygrad_nd reads version {VERSION}")
    return header["tree"]


class _Decoder:
    def __init__(self, members, device, path):
        self.members, self.device, self.path = members, device, path

    def _array(self, node, where):
        name = node.get("array")
        if name not in self.members or name == STRUCTURE:
            raise ValueError(f"load: {self.path!r}: {where} refers to array {name!r}, which the "
                             "archive does not hold (the file is damaged)")
        return self.members[name]

    def decode(self, node, where: str):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if not isinstance(node, dict) or "type" not in node:
            raise ValueError(f"load: {self.path!r}: malformed structure at {where}")
        kind = node["type"]
        if kind == "float":
            return float(node["value"])
        if kind == "tensor":
            t = Tensor(self._array(node, where), device=self.device)
            if node.get("requires_grad") and backend.is_float_dtype(t.dtype):
                t.requires_grad_(True)
            return t
        if kind == "array":
            return backend.to_device(self._array(node, where), self.device)
        if kind == "scalar":
            return self._array(node, where)[()]
        if kind == "dict":
            out = {}
            for key, value in node["items"]:
                out[key] = self.decode(value, f"{where}[{key!r}]")
            return out
        if kind in ("list", "tuple"):
            items = [self.decode(v, f"{where}[{i}]") for i, v in enumerate(node["items"])]
            return items if kind == "list" else tuple(items)
        raise ValueError(f"load: {self.path!r}: unknown entry type {kind!r} at {where}")


def load(path, device="cpu"):
    """Read a checkpoint written by :func:`save`; Tensors and arrays are placed on ``device``.

    Loading never unpickles and so never runs code from the file. A file that is missing,
    not an npz archive, truncated, holds a pickled object, or lacks the structure entry raises
    an error naming the path, before anything is returned.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by ``tnd.save``.
    device : str
        ``"cpu"`` (the default), ``"cuda"`` or ``"cuda:N"``: where Tensors and arrays land,
        whatever device they were saved from. numpy scalars stay numpy scalars.

    Returns
    -------
    The saved object, with dict keys of their original type (str or int) and order.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        For a file that is not a tinygrad_nd checkpoint, is damaged, or holds pickled data.

    Examples
    --------
    >>> import os, tempfile
    >>> import tinygrad_nd as tnd
    >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.npz")
    >>> tnd.save({"state": {0: {"step": 3}}, "lr": [0.1, 0.01]}, path)
    >>> tnd.load(path)
    {'state': {0: {'step': 3}}, 'lr': [0.1, 0.01]}
    """
    path = os.fspath(path)
    device = backend.parse_device(device)
    members = _read_members(path)
    tree = _parse_structure(members, path)
    try:
        return _Decoder(members, device, path).decode(tree, "obj")
    except (KeyError, TypeError, ValueError) as exc:
        if str(exc).startswith("load:"):
            raise
        raise ValueError(f"load: {path!r}: malformed checkpoint structure ({type(exc).__name__}: "
                         f"{exc})") from None
