"""Datasets, DataLoader batching and seeded shuffling, load_digits and load_mnist (IDX files)."""
import gzip
import importlib.util
import os
import struct

import numpy as np
import pytest

import tinygrad_nd as tnd
from tinygrad_nd.data import DataLoader, Dataset, TensorDataset, load_digits, load_mnist


def _labels(loader):
    return [y.tolist() for _, y in loader]


# ----------------------------------------------------------------------------- TensorDataset
def test_tensor_dataset_items_and_length():
    x = tnd.tensor(np.arange(12, dtype=np.float32).reshape(6, 2))
    y = tnd.arange(6)
    ds = TensorDataset(x, y)
    assert len(ds) == 6
    xi, yi = ds[4]
    assert xi.tolist() == [8.0, 9.0] and yi.item() == 4


def test_tensor_dataset_wraps_arrays():
    ds = TensorDataset(np.zeros((3, 2), dtype=np.float64))
    assert isinstance(ds.tensors[0], tnd.Tensor) and ds.tensors[0].dtype == np.float64


@pytest.mark.parametrize("tensors, words", [
    ((), "at least one"),
    ((tnd.zeros(4, 2), tnd.zeros(5)), "(4, 2), (5,)"),
    ((tnd.tensor(1.0),), "0-d"),
], ids=["none", "length-mismatch", "scalar"])
def test_tensor_dataset_bad_input(tensors, words):
    with pytest.raises(ValueError, match="TensorDataset") as info:
        TensorDataset(*tensors)
    assert words in str(info.value)


# ----------------------------------------------------------------------------- DataLoader
def _dataset(n=10):
    x = tnd.tensor(np.arange(n * 3, dtype=np.float32).reshape(n, 3))
    return TensorDataset(x, tnd.arange(n))


@pytest.mark.parametrize("n, batch_size, drop_last, sizes", [
    (10, 4, False, [4, 4, 2]),
    (10, 4, True, [4, 4]),
    (8, 4, True, [4, 4]),
    (10, 1, False, [1] * 10),
    (3, 5, False, [3]),
    (3, 5, True, []),
    (0, 2, False, []),
], ids=["ragged", "drop-last", "exact", "one", "one-short-batch", "drop-all", "empty"])
def test_batch_sizes_and_len(n, batch_size, drop_last, sizes):
    loader = DataLoader(_dataset(n), batch_size=batch_size, drop_last=drop_last)
    batches = list(loader)
    assert [x.shape[0] for x, _ in batches] == sizes
    assert len(loader) == len(sizes)
    for x, y in batches:
        assert x.shape[1:] == (3,) and x.dtype == np.float32 and y.dtype == np.int64


def test_unshuffled_order_and_pairing():
    loader = DataLoader(_dataset(), batch_size=3)
    seen = sum(_labels(loader), [])
    assert seen == list(range(10))
    for x, y in DataLoader(_dataset(), batch_size=4, shuffle=True, seed=1):
        # rows of x stay paired with their labels: x[i] = (3y, 3y+1, 3y+2)
        np.testing.assert_array_equal(x.numpy()[:, 0], 3 * y.numpy())


def test_shuffle_is_a_permutation_new_each_epoch():
    loader = DataLoader(_dataset(50), batch_size=8, shuffle=True, seed=3)
    first = sum(_labels(loader), [])
    second = sum(_labels(loader), [])
    assert sorted(first) == list(range(50)) and sorted(second) == list(range(50))
    assert first != list(range(50))
    assert first != second


def test_seed_reproducible_across_loaders():
    epochs = [[sum(_labels(loader), []) for _ in range(3)]
              for loader in (DataLoader(_dataset(30), batch_size=7, shuffle=True, seed=42),
                             DataLoader(_dataset(30), batch_size=7, shuffle=True, seed=42))]
    assert epochs[0] == epochs[1]
    other = DataLoader(_dataset(30), batch_size=7, shuffle=True, seed=43)
    assert sum(_labels(other), []) != epochs[0][0]


def test_seed_none_follows_manual_seed():
    tnd.manual_seed(5)
    a = sum(_labels(DataLoader(_dataset(30), batch_size=30, shuffle=True)), [])
    tnd.manual_seed(5)
    b = sum(_labels(DataLoader(_dataset(30), batch_size=30, shuffle=True)), [])
    assert a == b and sorted(a) == list(range(30))


def test_generic_dataset_is_collated():
    class Pairs(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return {"x": tnd.full((2,), float(i)), "y": i}, i * 0.5

    batches = list(DataLoader(Pairs(), batch_size=2, shuffle=True, seed=0))
    assert [b[1].shape for b in batches] == [(2,), (2,), (1,)]
    for sample, half in batches:
        assert sample["x"].shape[1] == 2
        np.testing.assert_array_equal(sample["x"].numpy()[:, 0], sample["y"].numpy())
        np.testing.assert_allclose(half.numpy(), sample["y"].numpy() * 0.5)
    ids = sorted(sum((s["y"].tolist() for s, _ in batches), []))
    assert ids == [0, 1, 2, 3, 4]


def test_dataset_base_class_must_be_subclassed():
    with pytest.raises(NotImplementedError, match="__len__"):
        len(Dataset())


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, True], ids=["zero", "negative", "float", "bool"])
def test_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(_dataset(), batch_size=batch_size)


def test_dataloader_needs_a_dataset():
    with pytest.raises(TypeError, match="__len__ and __getitem__"):
        DataLoader(42)


def test_loader_keeps_batches_on_the_data_device(device):
    ds = TensorDataset(tnd.randn(9, 2, device=device), tnd.arange(9, device=device))
    where = "cpu" if device == "cpu" else "cuda:0"
    for shuffle in (False, True):
        batches = list(DataLoader(ds, batch_size=4, shuffle=shuffle, seed=0))
        assert all(x.device == where and y.device == where for x, y in batches)
        assert sorted(sum((y.tolist() for _, y in batches), [])) == list(range(9))
        for x, y in batches:  # rows stay paired with their labels on the device too
            np.testing.assert_array_equal(x.numpy(), ds.tensors[0].numpy()[y.numpy()])


# ----------------------------------------------------------------------------- load_digits
def test_load_digits_shapes_range_dtypes():
    pytest.importorskip("sklearn")
    images, labels = load_digits()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == np.float32
    assert labels.shape == (1797,) and labels.dtype == np.int64
    x = images.numpy()
    assert x.min() == 0.0 and x.max() == 1.0
    assert sorted(set(labels.tolist())) == list(range(10))


def test_load_digits_matches_scikit_learn():
    datasets = pytest.importorskip("sklearn.datasets")
    reference = datasets.load_digits()
    images, labels = load_digits()
    np.testing.assert_array_equal(images.numpy().reshape(1797, 64) * 16.0, reference.data)
    np.testing.assert_array_equal(labels.numpy(), reference.target)


def test_load_digits_without_scikit_learn_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sklearn" else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match="pip install scikit-learn"):
        load_digits()


# ----------------------------------------------------------------------------- load_mnist
def _idx_bytes(array, magic=None):
    array = np.asarray(array, dtype=np.uint8)
    magic = 0x800 + array.ndim if magic is None else magic
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()


def _write(path, payload, gz):
    if gz:
        path += ".gz"
        payload = gzip.compress(payload)
    with open(path, "wb") as f:
        f.write(payload)
    return path


def _mnist_folder(folder, gz=False, dotted=False, n_train=5, n_test=3, size=(4, 6)):
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, *size), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        sep = "." if dotted else "-"
        _write(os.path.join(folder, f"{prefix}-images{sep}idx3-ubyte"), _idx_bytes(images), gz)
        _write(os.path.join(folder, f"{prefix}-labels{sep}idx1-ubyte"), _idx_bytes(labels), gz)
        arrays[prefix] = (images, labels)
    return arrays


@pytest.mark.parametrize("gz, dotted", [(False, False), (True, False), (False, True)],
                         ids=["plain", "gzip", "dotted-names"])
def test_load_mnist_reads_idx(tmp_path, gz, dotted):
    arrays = _mnist_folder(str(tmp_path), gz=gz, dotted=dotted)
    (x_train, y_train), (x_test, y_test) = load_mnist(tmp_path)
    for (x, y), prefix in (((x_train, y_train), "train"), ((x_test, y_test), "t10k")):
        images, labels = arrays[prefix]
        assert x.shape == (images.shape[0], 1, 4, 6) and x.dtype == np.float32
        assert y.dtype == np.int64
        np.testing.assert_array_equal(x.numpy()[:, 0], images.astype(np.float32) / 255)
        np.testing.assert_array_equal(y.numpy(), labels)
        assert 0.0 <= x.numpy().min() and x.numpy().max() <= 1.0


def test_load_mnist_wrong_magic(tmp_path):
    _mnist_folder(str(tmp_path))
    labels = os.path.join(tmp_path, "train-labels-idx1-ubyte")
    # an images file (magic 0x803) where labels (0x801) belong
    with open(labels, "wb") as f:
        f.write(_idx_bytes(np.zeros((5, 2, 2)), magic=0x803)[:8] + bytes(20))
    with pytest.raises(ValueError, match="magic number 0x00000803, expected 0x00000801") as info:
        load_mnist(tmp_path)
    assert "train-labels-idx1-ubyte" in str(info.value)


@pytest.mark.parametrize("cut, words", [(-7, "truncated"), (10, "truncated"), (2, "shorter than")],
                         ids=["data", "header-only", "inside-header"])
def test_load_mnist_truncated(tmp_path, cut, words):
    _mnist_folder(str(tmp_path))
    path = os.path.join(tmp_path, "t10k-images-idx3-ubyte")
    with open(path, "rb") as f:
        raw = f.read()
    with open(path, "wb") as f:
        f.write(raw[:cut])
    with pytest.raises(ValueError, match=words) as info:
        load_mnist(tmp_path)
    assert "t10k-images-idx3-ubyte" in str(info.value)
    if cut == -7:  # names expected and actual sizes
        assert f"holds {len(raw) - 7} bytes" in str(info.value) and f"needs {len(raw)}" in str(info.value)


def test_load_mnist_truncated_gzip(tmp_path):
    _mnist_folder(str(tmp_path), gz=True)
    path = os.path.join(tmp_path, "train-images-idx3-ubyte.gz")
    with open(path, "rb") as f:
        raw = f.read()
    with open(path, "wb") as f:
        f.write(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz"):
        load_mnist(tmp_path)


def test_load_mnist_count_mismatch(tmp_path):
    _mnist_folder(str(tmp_path))
    _write(os.path.join(tmp_path, "train-labels-idx1-ubyte"), _idx_bytes(np.zeros(4)), False)
    with pytest.raises(ValueError, match="holds 5 images but .* holds 4 labels"):
        load_mnist(tmp_path)


def test_load_mnist_missing_file_and_folder(tmp_path):
    _mnist_folder(str(tmp_path))
    os.remove(os.path.join(tmp_path, "t10k-labels-idx1-ubyte"))
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte.gz"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")
