"""Datasets and batching (PyTorch names), plus readers for two classic digit datasets.

- ``Dataset``, ``TensorDataset(*tensors)`` and ``DataLoader(dataset, batch_size, shuffle,
  drop_last, seed)``, whose batches are stacked Tensors.
- ``load_digits()``: the 8x8 handwritten digits that scikit-learn ships inside its package,
  read from disk (no network).
- ``load_mnist(folder)``: MNIST (or Fashion-MNIST) from the standard IDX files in a local folder.

Files are read on the host; the few array helpers needed live in ``backend``.
"""
from __future__ import annotations

import gzip
import importlib.resources
import importlib.util
import math
import os
import struct

from . import backend
from .factories import generator
from .ops.shape import stack
from .tensor import Tensor

__all__ = ["Dataset", "TensorDataset", "DataLoader", "default_collate", "load_digits", "load_mnist"]


# ----------------------------------------------------------------------------- datasets
class Dataset:
    """Base class of map-style datasets: subclasses define ``__len__`` and ``__getitem__(i)``.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> class Squares(tnd.data.Dataset):
    ...     def __len__(self):
    ...         return 4
    ...     def __getitem__(self, i):
    ...         return tnd.tensor([float(i)]), i * i
    >>> x, y = next(iter(tnd.data.DataLoader(Squares(), batch_size=4)))
    >>> x.shape, y.tolist()
    ((4, 1), [0, 1, 4, 9])
    """

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")


class TensorDataset(Dataset):
    """Samples are the rows of ``tensors`` taken together: item ``i`` is ``(t[i] for t in tensors)``.

    Parameters
    ----------
    *tensors : Tensor or array
        All with the same size in dimension 0 (arrays are wrapped in Tensors).

    Raises
    ------
    ValueError
        With no tensors, a 0-d tensor, or tensors of different lengths.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> ds = tnd.data.TensorDataset(tnd.zeros(5, 3), tnd.arange(5))
    >>> len(ds), ds[2][1].item()
    (5, 2)
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: needs at least one tensor")
        tensors = tuple(t if isinstance(t, Tensor) else Tensor(t) for t in tensors)
        for i, t in enumerate(tensors):
            if t.ndim == 0:
                raise ValueError(f"TensorDataset: tensor {i} is 0-d; every tensor needs a first "
                                 "(sample) dimension")
        lengths = [t.shape[0] for t in tensors]
        if len(set(lengths)) != 1:
            shapes = ", ".join(str(t.shape) for t in tensors)
            raise ValueError(f"TensorDataset: tensors must have the same size in dimension 0, got "
                             f"shapes {shapes}")
        self.tensors = tensors

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)


def default_collate(samples):
    """Stack a list of samples into a batch, keeping their structure.

    Tensors are stacked along a new dimension 0; Python numbers become a 1-d Tensor; tuples,
    lists and dicts are collated field by field.
    """
    first = samples[0]
    if isinstance(first, Tensor):
        return stack(samples, 0)
    if isinstance(first, (bool, int, float)) or backend.is_host_scalar(first):
        return Tensor(list(samples))
    if hasattr(first, "dtype") and hasattr(first, "shape"):  # numpy or cupy arrays
        return stack([Tensor(s) for s in samples], 0)
    if isinstance(first, dict):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, (tuple, list)):
        if any(len(s) != len(first) for s in samples):
            raise ValueError("default_collate: samples of one batch have different lengths")
        return type(first)(default_collate(list(field)) for field in zip(*samples))
    raise TypeError(f"default_collate: cannot batch samples of type {type(first).__name__}")


class DataLoader:
    """Iterate over ``dataset`` in batches of ``batch_size`` stacked samples.

    Parameters
    ----------
    dataset : Dataset
        A map-style dataset. A ``TensorDataset`` is batched by indexing its whole tensors once per
        batch (fast); any other dataset item by item, then stacked by ``default_collate``.
    batch_size : int, default 1
    shuffle : bool, default False
        Visit the samples in a new random order each epoch.
    drop_last : bool, default False
        Drop the final batch when it is smaller than ``batch_size``.
    seed : int or None, default None
        Seed of this loader's own generator: a given seed gives the same sequence of epoch orders
        on every run (each epoch a new permutation). ``None`` draws from the generator that
        ``tnd.manual_seed`` seeds.
    collate_fn : callable, optional
        Turns a list of samples into a batch; defaults to :func:`default_collate`.

    Notes
    -----
    Batches of a ``TensorDataset`` stay on the device of its tensors. Without shuffling they
    are slices of the dataset's tensors (views, no copy); with shuffling, gathered copies.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> ds = tnd.data.TensorDataset(tnd.arange(10).float(), tnd.arange(10))
    >>> loader = tnd.data.DataLoader(ds, batch_size=4, shuffle=True, seed=0)
    >>> len(loader), [y.shape[0] for x, y in loader]
    (3, [4, 4, 2])
    >>> sorted(sum((y.tolist() for _, y in loader), []))
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 seed: int | None = None, collate_fn=None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"DataLoader: dataset must define __len__ and __getitem__, got "
                            f"{type(dataset).__name__}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = seed
        self.collate_fn = collate_fn or default_collate
        self._rng = None if seed is None else backend.host_rng(seed)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _order(self, n: int):
        """The epoch's sample order as a host int64 array, or None for 0, 1, ..., n - 1."""
        if not self.shuffle:
            return None
        return backend.host_permutation(self._rng if self._rng is not None else generator(), n)

    def __iter__(self):
        n = len(self.dataset)
        order = self._order(n)
        stop = (n // self.batch_size) * self.batch_size if self.drop_last else n
        fast = isinstance(self.dataset, TensorDataset) and self.collate_fn is default_collate
        for start in range(0, stop, self.batch_size):
            end = min(start + self.batch_size, n)
            if fast:
                yield self._tensor_batch(order, start, end)
            else:
                indices = range(start, end) if order is None else order[start:end].tolist()
                yield self.collate_fn([self.dataset[i] for i in indices])

    def _tensor_batch(self, order, start, end):
        if order is None:  # contiguous rows: a slice, no gather
            return tuple(t[start:end] for t in self.dataset.tensors)
        rows, index = order[start:end], {}
        for t in self.dataset.tensors:  # the row index, copied once to each device that needs it
            if t.device not in index:
                index[t.device] = Tensor(rows, device=t.device)
        return tuple(t[index[t.device]] for t in self.dataset.tensors)  # one gather per tensor

    def __repr__(self):
        return (f"DataLoader(dataset of {len(self.dataset)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed})")


# ----------------------------------------------------------------------------- digits (scikit-learn)
_SKLEARN_HINT = ("load_digits reads the digits file that scikit-learn ships: install it with "
                 "`pip install scikit-learn` (or `pip install 'tinygrad-nd[examples]'`)")


def _digits_bytes() -> bytes:
    """The gzipped csv ``sklearn/datasets/data/digits.csv.gz``, located without importing sklearn."""
    try:
        spec = importlib.util.find_spec("sklearn")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise ModuleNotFoundError(f"{_SKLEARN_HINT}: scikit-learn is not installed") from None
    for folder in spec.submodule_search_locations or ():
        path = os.path.join(folder, "datasets", "data", "digits.csv.gz")
        if os.path.isfile(path):
            with open(path, "rb") as f:
                return f.read()
    try:  # an unusual install (e.g. zipped): ask importlib.resources, which imports sklearn
        return importlib.resources.files("sklearn.datasets.data").joinpath("digits.csv.gz").read_bytes()
    except (ImportError, OSError) as exc:
        raise FileNotFoundError(f"{_SKLEARN_HINT}: scikit-learn is installed but its digits.csv.gz "
                                f"was not found ({exc})") from None


def load_digits():
    """The 1797 8x8 handwritten digits bundled with scikit-learn (the UCI optical digits test set).

    Read straight from scikit-learn's data folder, so nothing is downloaded and scikit-learn is
    not imported. Pixel counts 0..16 are scaled to [0, 1].

    Returns
    -------
    images : Tensor
        ``(1797, 1, 8, 8)`` float32 in [0, 1] (one channel, ready for ``Conv2d(1, ...)``).
    labels : Tensor
        ``(1797,)`` int64 in 0..9.

    Raises
    ------
    ModuleNotFoundError
        When scikit-learn is missing (it is an optional dependency: ``pip install scikit-learn``).

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> images, labels = tnd.data.load_digits()
    >>> images.shape, images.dtype, labels.dtype
    ((1797, 1, 8, 8), dtype('float32'), dtype('int64'))
    """
    text = gzip.decompress(_digits_bytes()).decode("ascii")
    rows = [[int(v) for v in line.split(",")] for line in text.splitlines() if line.strip()]
    if not rows or any(len(r) != 65 for r in rows):
        raise ValueError("load_digits: scikit-learn's digits.csv.gz does not hold rows of 64 pixels "
                         "and a label; is the installation damaged?")
    table = backend.as_array(rows, dtype=backend.int64)  # (1797, 65): 64 pixels, then the label
    images = (table[:, :64].astype(backend.float32) / 16.0).reshape(-1, 1, 8, 8)  # (N, 1, 8, 8)
    return Tensor(images), Tensor(table[:, 64].copy())


# ----------------------------------------------------------------------------- MNIST (IDX files)
_IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}  # unsigned bytes, 1-d labels / 3-d images


def _read_idx(path: str, ndim: int):
    """The uint8 array of an IDX file (big-endian header, then raw unsigned bytes)."""
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            with open(path, "rb") as f:
                raw = f.read()
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        raise ValueError(f"load_mnist: cannot read {path!r}: {type(exc).__name__}: {exc} "
                         "(truncated or damaged download?)") from None
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(f"load_mnist: {path!r} is truncated: {len(raw)} bytes, shorter than its "
                         f"{header_size}-byte header")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic != _IDX_MAGIC[ndim]:
        raise ValueError(f"load_mnist: {path!r} has magic number 0x{magic:08x}, expected "
                         f"0x{_IDX_MAGIC[ndim]:08x} (an IDX file of unsigned bytes with {ndim} "
                         "dimension(s)); is it the right file, and is it decompressed correctly?")
    dims = struct.unpack(f">{ndim}I", raw[4:header_size])
    expected = header_size + math.prod(dims)
    if len(raw) != expected:
        raise ValueError(f"load_mnist: {path!r} holds {len(raw)} bytes but its header (dimensions "
                         f"{dims}) needs {expected}: the file is "
                         f"{'truncated' if len(raw) < expected else 'longer than its header says'}")
    return backend.host_frombuffer(raw, "uint8", offset=header_size).reshape(dims)


def _find(folder: str, stem: str) -> str:
    """``stem`` in ``folder`` under the usual spellings (``-`` or ``.`` before idx, optional .gz)."""
    dotted = stem.replace("-idx", ".idx")
    candidates = [stem, stem + ".gz", dotted, dotted + ".gz"]
    for name in candidates:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"load_mnist: {stem!r} not found in {folder!r} (looked for "
                            f"{', '.join(candidates)})")


def load_mnist(folder):
    """MNIST (or Fashion-MNIST) from the four standard IDX files in a local ``folder``.

    The files are ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each optionally gzipped
    (``.gz``); the spelling ``train-images.idx3-ubyte`` is accepted too. Nothing is downloaded.

    Returns
    -------
    ((train_images, train_labels), (test_images, test_labels))
        Images ``(N, 1, rows, cols)`` float32 in [0, 1] (pixels / 255), labels ``(N,)`` int64.

    Raises
    ------
    FileNotFoundError
        For a missing folder or file, naming what was looked for.
    ValueError
        For a wrong magic number, a truncated or over-long file, or image and label counts that
        differ, naming the file and the expected and actual values.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> (x_train, y_train), (x_test, y_test) = tnd.data.load_mnist("data/mnist")  # doctest: +SKIP
    >>> x_train.shape, y_train.dtype  # doctest: +SKIP
    ((60000, 1, 28, 28), dtype('int64'))
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"load_mnist: folder {folder!r} does not exist")
    splits = []
    for prefix in ("train", "t10k"):
        image_path = _find(folder, f"{prefix}-images-idx3-ubyte")
        label_path = _find(folder, f"{prefix}-labels-idx1-ubyte")
        images = _read_idx(image_path, 3)
        labels = _read_idx(label_path, 1)
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"load_mnist: {image_path!r} holds {images.shape[0]} images but "
                             f"{label_path!r} holds {labels.shape[0]} labels")
        x = (images.astype(backend.float32) / 255.0)[:, None]  # (N, 1, rows, cols)
        splits.append((Tensor(x), Tensor(labels.astype(backend.int64))))
    return tuple(splits)
