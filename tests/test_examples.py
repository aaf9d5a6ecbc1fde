"""The examples run end to end in their --tiny mode (imported and called through main(argv))."""
import importlib.util
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import tinygrad_nd as tnd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def _example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def no_sklearn_skip():
    pytest.importorskip("sklearn")


def test_train_digits_tiny_writes_checkpoint_and_plot(tmp_path, no_sklearn_skip, capsys):
    pytest.importorskip("matplotlib")
    example = _example("train_digits")
    out = tmp_path / "digits"
    result = example.main(["--tiny", "--quiet", "--seed", "3", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "test accuracy:" in printed
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a graph diagram, or one line saying why not
    assert (out / "graph.svg").exists() or "graph diagram skipped" in printed

    # the checkpoint restores the trained model exactly
    state = tnd.load(out / "digits.npz")
    assert set(state) >= {"model", "optimizer", "epoch", "args", "history"}
    model = example.build_model()
    model.load_state_dict(state["model"])
    x = tnd.data.load_digits()[0][:5]
    model.eval()
    with tnd.no_grad():
        logits = model(x)
    assert logits.shape == (5, 10)
    assert state["history"]["test_acc"][-1] == result["test_accuracy"]


def test_train_digits_is_deterministic(tmp_path, no_sklearn_skip):
    pytest.importorskip("matplotlib")
    example = _example("train_digits")
    runs = [example.main(["--tiny", "--quiet", "--seed", "1", "--out", str(tmp_path / str(i))])
            for i in range(2)]
    assert runs[0]["history"] == runs[1]["history"]


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop", "adamw"])
def test_train_digits_other_optimizers(tmp_path, no_sklearn_skip, optimizer):
    pytest.importorskip("matplotlib")
    result = _example("train_digits").main(["--tiny", "--quiet", "--optimizer", optimizer,
                                            "--out", str(tmp_path)])
    assert math.isfinite(result["history"]["train_loss"][0])


def test_conv1d_signals_tiny(capsys):
    acc = _example("conv1d_signals").main(["--tiny", "--seed", "2"])
    assert 0.0 <= acc <= 1.0
    assert "sawtooth" in capsys.readouterr().out


def test_conv1d_signals_data_is_balanced_and_seeded():
    example = _example("conv1d_signals")
    x1, y1 = example.make_signals(300, 32, 0.5, np.random.default_rng(0))
    x2, y2 = example.make_signals(300, 32, 0.5, np.random.default_rng(0))
    assert x1.shape == (300, 1, 32) and x1.dtype == np.float32 and y1.dtype == np.int64
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert len(np.bincount(y1)) == 3 and np.bincount(y1).min() > 60  # all three classes, roughly equal


def test_conv3d_volumes_tiny(capsys):
    acc = _example("conv3d_volumes").main(["--tiny", "--seed", "2"])
    assert 0.0 <= acc <= 1.0
    assert "test accuracy" in capsys.readouterr().out


def test_conv3d_volumes_shapes_are_what_they_claim():
    example = _example("conv3d_volumes")
    volumes, labels = example.make_volumes(40, 12, 0.0, np.random.default_rng(0))
    assert volumes.shape == (40, 1, 12, 12, 12) and set(labels.tolist()) == {0, 1}
    for v, label in zip(volumes[:, 0], labels):
        inside = v > 0.5
        zs, ys, xs = np.nonzero(inside)
        box = (zs.max() - zs.min() + 1) * (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        fill = inside.sum() / box
        # a cube fills its bounding box; a sphere about pi/6 of it
        assert (fill == 1.0) if label == 1 else (fill < 0.8), (label, fill)


def test_exploding_updates_tiny(tmp_path, no_sklearn_skip, capsys):
    pytest.importorskip("matplotlib")
    curves = _example("exploding_updates").main(["--tiny", "--out", str(tmp_path)])
    summed, mean, adam = curves.values()
    # the summed loss with a large step blows up; the other two stay finite and go down
    assert not math.isfinite(summed[-1]) or summed[-1] > 1e6 * summed[0]
    for losses in (mean, adam):
        assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert "DIVERGED" in capsys.readouterr().out
    assert (tmp_path / "exploding_updates.png").exists()


def test_examples_run_as_scripts(tmp_path, no_sklearn_skip):
    """The command line a new user types, in a fresh interpreter."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, os.path.join(EXAMPLES, "train_digits.py"), "--tiny",
                           "--out", str(tmp_path)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "test accuracy:" in done.stdout
    assert (tmp_path / "digits.npz").exists()


def test_train_digits_without_dot_prints_a_note(tmp_path, no_sklearn_skip, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    viz = pytest.importorskip("tinygrad_nd.viz")

    def no_dot(*roots, path, **options):
        raise viz.GraphvizNotFoundError("render: Graphviz's `dot` program was not found on PATH",
                                        str(tmp_path / "graph.dot"))

    monkeypatch.setattr(viz, "render", no_dot)
    _example("train_digits").main(["--tiny", "--quiet", "--out", str(tmp_path)])
    lines = [line for line in capsys.readouterr().out.splitlines() if "graph diagram" in line]
    assert lines == ["graph diagram skipped: render: Graphviz's `dot` program was not found on PATH"]
    assert (tmp_path / "digits.npz").exists()  # everything else was still written


@pytest.mark.parametrize("name", ["conv1d_signals", "conv3d_volumes"])
def test_synthetic_examples_on_the_device(fake_cuda, name):
    """--device cuda runs on the strict CuPy stand-in: no hidden host round trips."""
    acc = _example(name).main(["--tiny", "--device", "cuda"])
    assert 0.0 <= acc <= 1.0
