"""Checkpoints: exact round trips, no pickle ever, clear errors, and models left untouched by bad files."""
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import tinygrad_nd as tnd
from tinygrad_nd import backend


def _assert_same(a, b, where="obj"):
    """Exact equality: same types, dict key types and order, dtypes, shapes and bits."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, dict):
        assert [(type(k), k) for k in a] == [(type(k), k) for k in b], where
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, tnd.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.requires_grad == b.requires_grad, where
        assert a.numpy().tobytes() == b.numpy().tobytes(), where
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b), where
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), where
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, where


def _tricky_object():
    return {
        "weights": tnd.tensor(np.array([[1.5, -0.0, np.nan], [np.inf, -np.inf, 1e-45]], dtype=np.float32)),
        "double": tnd.randn(3, 2, dtype=tnd.float64),
        "ints": tnd.tensor([2**62, -1, 0]),
        "mask": tnd.tensor([True, False]),
        "param": tnd.randn(2, requires_grad=True),
        "scalar_tensor": tnd.tensor(3.25),
        "empty": tnd.zeros(0, 4),
        "half": np.arange(4, dtype=np.float16),
        "uint8": np.array([[0, 255]], dtype=np.uint8),
        "np_scalars": [np.float32(0.1), np.int64(-3), np.bool_(True), np.float64(2.5)],
        0: "int key", "0": "str key", -7: None,
        "nested": {1: {"step": 10, "exp_avg": tnd.ones(2)}, 2: [(1, 2.0), [True, None]]},
        "floats": [0.1, 1e308, -0.0, float("inf"), float("nan"), 5e-324],
        "big": 2**70,
        "text": "naïve ∂x",
        "tuple": (1, "a", (2.5,)),
        "empty_containers": [{}, [], ()],
    }


# ----------------------------------------------------------------------------- round trips
def test_round_trip_is_exact(tmp_path):
    obj = _tricky_object()
    path = tmp_path / "ckpt.npz"
    tnd.save(obj, path)
    _assert_same(obj, tnd.load(path))


@pytest.mark.parametrize("obj", [tnd.arange(5), [1, 2], "just text", 3, None, np.eye(2)],
                         ids=["tensor", "list", "str", "int", "none", "array"])
def test_top_level_values(tmp_path, obj):
    tnd.save(obj, tmp_path / "x.npz")
    _assert_same(obj, tnd.load(tmp_path / "x.npz"))


def test_saved_under_the_exact_name_and_no_temp_left(tmp_path):
    tnd.save({"a": 1}, tmp_path / "model.ckpt")
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt"]
    assert zipfile.is_zipfile(tmp_path / "model.ckpt")


def test_archive_holds_no_pickle(tmp_path):
    tnd.save(_tricky_object(), tmp_path / "c.npz")
    members = backend.read_npz(str(tmp_path / "c.npz"))  # allow_pickle=False: raises on objects
    assert all(a.dtype.kind != "O" for a in members.values())
    header = json.loads(members["__structure__"].tobytes())
    assert header["format"] == "tinygrad_nd.checkpoint"


def _model():
    nn = pytest.importorskip("tinygrad_nd.nn")
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(3 * 2 * 2, 4))


def _train(model, opt, steps, seed=0):
    import tinygrad_nd.nn.functional as F

    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = tnd.tensor(rng.standard_normal((5, 1, 4, 4)).astype(np.float32))
        y = tnd.tensor(rng.integers(0, 4, 5))
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("make_opt", [
    lambda p: tnd.optim.Adam(p, lr=1e-2),
    lambda p: tnd.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
], ids=["adam", "sgd-momentum"])
def test_model_and_optimizer_round_trip_and_resume(tmp_path, make_opt):
    optim = pytest.importorskip("tinygrad_nd.optim")  # noqa: F841  (written by the optim engineer)
    tnd.manual_seed(0)
    model = _model()
    opt = make_opt(model.parameters())
    _train(model, opt, 3)
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}
    tnd.save(state, tmp_path / "ckpt.npz")
    loaded = tnd.load(tmp_path / "ckpt.npz")
    _assert_same(state, loaded)

    # resuming from the checkpoint continues exactly as the uninterrupted run
    tnd.manual_seed(1)
    resumed = _model()
    resumed_opt = make_opt(resumed.parameters())
    resumed.load_state_dict(loaded["model"])
    resumed_opt.load_state_dict(loaded["optimizer"])
    _train(model, opt, 2, seed=7)
    _train(resumed, resumed_opt, 2, seed=7)
    for (name, a), (_, b) in zip(model.state_dict().items(), resumed.state_dict().items()):
        assert a.numpy().tobytes() == b.numpy().tobytes(), name


# ----------------------------------------------------------------------------- what cannot be saved
@pytest.mark.parametrize("obj, words", [
    ({"model": object()}, "obj['model'] of type object"),
    ({"a": [1, {2, 3}]}, "obj['a'][1] of type set"),
    ({(1, 2): 3}, "dict keys must be str or int"),
    ({True: 3}, "dict keys must be str or int"),
    ({"x": np.array([None], dtype=object)}, "object arrays"),
], ids=["object", "set", "tuple-key", "bool-key", "object-array"])
def test_unsupported_values_name_where(tmp_path, obj, words):
    with pytest.raises(TypeError) as info:
        tnd.save(obj, tmp_path / "bad.npz")
    assert words in str(info.value)
    assert os.listdir(tmp_path) == []  # nothing written, not even a temporary file


def test_unwritable_path_names_it(tmp_path):
    with pytest.raises(OSError, match="save: cannot write .*missing"):
        tnd.save({"a": 1}, tmp_path / "missing" / "c.npz")


def test_reference_cycle_is_refused(tmp_path):
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="contains itself"):
        tnd.save({"loop": loop}, tmp_path / "c.npz")


def test_shared_references_are_fine(tmp_path):
    shared = [1, 2]
    tnd.save({"a": shared, "b": shared}, tmp_path / "c.npz")
    assert tnd.load(tmp_path / "c.npz") == {"a": [1, 2], "b": [1, 2]}


# ----------------------------------------------------------------------------- loading never unpickles
class _Payload:
    """Unpickling this writes the marker file: proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _malicious_npz(path, marker, with_structure):
    arrays = {"a0": np.array([_Payload(marker)], dtype=object)}
    if with_structure:
        header = {"format": "tinygrad_nd.checkpoint", "version": 1,
                  "tree": {"type": "tensor", "array": "a0", "requires_grad": False}}
        arrays["__structure__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(path, **arrays)  # numpy's default allows pickling the object array


def test_payload_really_runs_when_unpickled(tmp_path):
    """The check below is meaningful: numpy with allow_pickle=True would run the payload."""
    marker = tmp_path / "marker"
    _malicious_npz(tmp_path / "evil.npz", marker, with_structure=True)
    np.load(tmp_path / "evil.npz", allow_pickle=True)["a0"]
    assert marker.exists()


@pytest.mark.parametrize("with_structure", [True, False], ids=["with-structure", "bare"])
def test_pickled_member_is_refused_without_running(tmp_path, with_structure):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.npz"
    _malicious_npz(path, marker, with_structure)
    with pytest.raises(ValueError, match="pickled") as info:
        tnd.load(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_plain_pickle_file_is_refused_without_running(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"state": _Payload(marker)}, f)
    with pytest.raises(ValueError, match="not a tinygrad_nd checkpoint") as info:
        tnd.load(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_zip_member_that_is_a_raw_pickle_is_refused(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a0.npy", pickle.dumps(_Payload(marker)))
        z.writestr("__structure__.npy", b"not npy either")
    with pytest.raises(ValueError, match="pickled|not an npy array|damaged"):
        tnd.load(path)
    assert not marker.exists()


# ----------------------------------------------------------------------------- damaged files
def _saved(tmp_path):
    path = tmp_path / "ckpt.npz"
    tnd.save({"w": tnd.randn(64, 64), "step": 1}, path)
    return path


@pytest.mark.parametrize("keep", [0.5, 0.95, 0.01], ids=["half", "tail-missing", "few-bytes"])
def test_truncated_file(tmp_path, keep):
    path = _saved(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[: max(4, int(len(raw) * keep))])
    with pytest.raises(ValueError, match="truncated or damaged") as info:
        tnd.load(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        tnd.load(tmp_path / "nope.npz")


@pytest.mark.parametrize("content", [b"hello world\n", b"", b"\x93NUMPY"],
                         ids=["text", "empty", "npy-magic"])
def test_not_an_npz(tmp_path, content):
    path = tmp_path / "c.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a tinygrad_nd checkpoint") as info:
        tnd.load(path)
    assert str(path) in str(info.value)


def test_npz_without_structure_entry(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, weights=np.ones(3))
    with pytest.raises(ValueError, match="without the '__structure__' entry") as info:
        tnd.load(path)
    assert "weights" in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("structure, words", [
    (np.frombuffer(b"{not json", dtype=np.uint8), "not valid JSON"),
    (np.zeros(3, dtype=np.float32), "1-d uint8"),
    (np.frombuffer(b'{"format": "other", "tree": 1}', dtype=np.uint8), "header"),
    (np.frombuffer(b'{"format": "tinygrad_nd.checkpoint", "version": 99, "tree": 1}', dtype=np.uint8),
     "version 99"),
    (np.frombuffer(b'{"format": "tinygrad_nd.checkpoint", "version": 1, '
                   b'"tree": {"type": "tensor", "array": "a9"}}', dtype=np.uint8), "'a9'"),
    (np.frombuffer(b'{"format": "tinygrad_nd.checkpoint", "version": 1, '
                   b'"tree": {"type": "dict", "items": 5}}', dtype=np.uint8), "malformed"),
], ids=["bad-json", "wrong-dtype", "wrong-format", "future-version", "missing-array", "malformed"])
def test_bad_structure_entry(tmp_path, structure, words):
    path = tmp_path / "c.npz"
    np.savez(path, __structure__=structure, a0=np.ones(2))
    with pytest.raises(ValueError, match="load") as info:
        tnd.load(path)
    assert words in str(info.value)


# ----------------------------------------------------------------------------- bad files leave the model unchanged
def _snapshot(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def _unchanged(model, before):
    after = _snapshot(model)
    assert list(after) == list(before)
    for k in before:
        assert after[k].tobytes() == before[k].tobytes(), k


def test_truncated_checkpoint_leaves_model_unchanged(tmp_path):
    tnd.manual_seed(0)
    source, target = _model(), _model()
    path = tmp_path / "ckpt.npz"
    tnd.save({"model": source.state_dict()}, path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) * 2 // 3])
    before = _snapshot(target)
    with pytest.raises(ValueError):
        target.load_state_dict(tnd.load(path)["model"])
    _unchanged(target, before)


@pytest.mark.parametrize("damage", ["shape", "dtype", "missing", "unexpected"])
def test_mismatched_checkpoint_leaves_model_unchanged(tmp_path, damage):
    tnd.manual_seed(0)
    source, target = _model(), _model()
    state = dict(source.state_dict())
    names = list(state)
    last = names[-1]  # a good entry comes first: nothing may be assigned before validation
    if damage == "shape":
        state[last] = tnd.zeros(*state[last].shape, 2)
    elif damage == "dtype":
        state[last] = state[last].double()
    elif damage == "missing":
        del state[last]
    else:
        state["extra.weight"] = tnd.zeros(1)
    tnd.save(state, tmp_path / "ckpt.npz")
    before = _snapshot(target)
    with pytest.raises((ValueError, KeyError, RuntimeError, TypeError)) as info:
        target.load_state_dict(tnd.load(tmp_path / "ckpt.npz"))
    assert (last if damage != "unexpected" else "extra.weight") in str(info.value)
    _unchanged(target, before)


# ----------------------------------------------------------------------------- devices
@pytest.mark.parametrize("source", ["fake_cuda", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_device_tensors_load_to_cpu_and_cuda(request, tmp_path, source):
    request.getfixturevalue("fake_cuda" if source == "fake_cuda" else "real_cuda")
    cp = backend._cupy
    obj = {"w": tnd.randn(3, 4, device="cuda"), "raw": cp.arange(3), "host": np.ones(2),
           "state": {0: {"step": 4, "exp_avg": tnd.ones(2, device="cuda")}}}
    tnd.save(obj, tmp_path / "gpu.npz")
    on_cpu = tnd.load(tmp_path / "gpu.npz")
    assert on_cpu["w"].device == "cpu" and type(on_cpu["w"].data) is np.ndarray
    assert type(on_cpu["raw"]) is np.ndarray and on_cpu["raw"].tolist() == [0, 1, 2]
    assert on_cpu["state"][0]["exp_avg"].device == "cpu"
    assert on_cpu["w"].numpy().tobytes() == obj["w"].numpy().tobytes()
    on_gpu = tnd.load(tmp_path / "gpu.npz", device="cuda")
    assert on_gpu["w"].device == "cuda:0" and type(on_gpu["w"].data) is cp.ndarray
    assert type(on_gpu["raw"]) is cp.ndarray and type(on_gpu["host"]) is cp.ndarray
    assert on_gpu["state"][0]["exp_avg"].device == "cuda:0"
    assert on_gpu["w"].numpy().tobytes() == obj["w"].numpy().tobytes()


def test_bad_device(tmp_path):
    tnd.save(1, tmp_path / "c.npz")
    with pytest.raises(ValueError, match="unknown device"):
        tnd.load(tmp_path / "c.npz", device="tpu")
