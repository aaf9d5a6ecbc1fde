"""The GPU test run: real CuPy on a real CUDA GPU (every test is marked ``gpu`` and skips, with the
reason, where CuPy or a GPU is missing).

    pytest -m gpu tests/test_gpu.py -q -ra

Covers the op-case table (CuPy results against numpy on the same inputs, forward, backward and
double backward), the engine, training steps of a small CNN against the CPU, a sync-free
training step, checkpoints GPU -> CPU -> GPU, and the digits example in its tiny mode. The same
code runs without a GPU on the strict stand-in in tests/test_device_portability.py; this file
is where the numerics of the GPU kernels themselves (cuBLAS, CuPy's reductions) are checked.
"""
from __future__ import annotations


import numpy as np
import pytest

import tinygrad_nd as tnd
import tinygrad_nd.nn.functional as F
from op_cases import all_cases
from test_device_portability import (
    OPTIMIZERS, engine_checks, on_device, run_case, run_digits_tiny_on_cuda, small_cnn,
)

pytestmark = pytest.mark.gpu

CASES = all_cases()
# float64 on a GPU: the same formulas, other summation orders and libm; float32 additionally
# goes through cuBLAS (no TF32 unless CUPY_TF32 is set).
TOLERANCE = {"float32": dict(rtol=1e-4, atol=1e-5), "float64": dict(rtol=1e-9, atol=1e-11)}

RUNS = [(c, d, 1) for c in CASES for d in c.dtypes] + [(c, "float64", 2) for c in CASES if c.second_order]


@pytest.mark.parametrize("case,dtype,order", RUNS, ids=[f"{c.id}-{d}-order{o}" for c, d, o in RUNS])
def test_op_case_on_cuda_matches_numpy(real_cuda, case, dtype, order):
    on_cpu = run_case(case, "cpu", dtype, order)
    on_gpu = run_case(case, "cuda", dtype, order)
    assert len(on_gpu) == len(on_cpu)
    for i, (got, want) in enumerate(zip(on_gpu, on_cpu)):
        assert got.dtype == want.dtype and got.shape == want.shape, f"result {i}"
        np.testing.assert_allclose(got, want, err_msg=f"result {i}", **TOLERANCE[dtype])


def test_engine_on_cuda(real_cuda):
    engine_checks("cuda")


def test_numpy_returns_host_data_from_the_gpu(real_cuda):
    t = tnd.arange(6, dtype=tnd.float32, device="cuda").reshape(2, 3)
    assert isinstance(t.data, real_cuda.ndarray) and t.device == "cuda:0"
    host = t.numpy()
    assert type(host) is np.ndarray
    host[0, 0] = 100.0
    assert t.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


@pytest.mark.parametrize("name", ["sgd-momentum-nesterov-wd", "adam", "adamw", "rmsprop"])
def test_training_steps_on_cuda_match_the_cpu(real_cuda, name):
    tnd.manual_seed(0)
    cpu = small_cnn()
    tnd.manual_seed(0)
    gpu = small_cnn().to("cuda")
    rng = np.random.default_rng(5)
    batches = [(rng.standard_normal((16, 1, 8, 8)).astype(np.float32),
                rng.standard_normal((16, 4)).astype(np.float32)) for _ in range(3)]
    for model, device in ((cpu, "cpu"), (gpu, "cuda")):
        opt = OPTIMIZERS[name](model.parameters())
        for x, target in batches:
            loss = F.mse_loss(model(tnd.tensor(x, device=device)), tnd.tensor(target, device=device))
            opt.zero_grad()
            loss.backward()
            opt.step()
    for p_cpu, p_gpu in zip(cpu.parameters(), gpu.parameters()):
        on_device(p_gpu, "cuda:0")
        np.testing.assert_allclose(p_gpu.numpy(), p_cpu.numpy(), rtol=1e-3, atol=1e-4)


def test_a_training_step_makes_no_device_sync(real_cuda):
    """CuPy's own guard: raise if anything synchronises (a hidden host round trip)."""
    cupyx = pytest.importorskip("cupyx")
    if not hasattr(cupyx, "allow_synchronize"):
        pytest.skip("this CuPy has no cupyx.allow_synchronize")
    tnd.manual_seed(0)
    model = small_cnn().to("cuda")
    opt = OPTIMIZERS["adam"](model.parameters())
    x = tnd.randn(8, 1, 8, 8, device="cuda")
    target = tnd.randn(8, 4, device="cuda")
    real_cuda.cuda.Device(0).synchronize()
    with cupyx.allow_synchronize(False):
        loss = F.mse_loss(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert np.isfinite(loss.item())


def test_checkpoint_gpu_to_cpu_to_gpu(real_cuda, tmp_path):
    tnd.manual_seed(0)
    model = small_cnn().to("cuda")
    path = tmp_path / "model.npz"
    tnd.save(model.state_dict(), path)
    on_cpu = tnd.load(path)
    for value in on_cpu.values():
        on_device(value, "cpu")
    cpu_model = small_cnn()
    cpu_model.load_state_dict(on_cpu)
    tnd.save(cpu_model.state_dict(), tmp_path / "again.npz")
    back = tnd.load(tmp_path / "again.npz", device="cuda")
    for key, value in back.items():
        on_device(value, "cuda:0")
        np.testing.assert_array_equal(value.numpy(), model.state_dict()[key].numpy())
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    model.eval(), cpu_model.eval()
    with tnd.no_grad():
        np.testing.assert_allclose(model(tnd.tensor(x, device="cuda")).numpy(),
                                   cpu_model(tnd.tensor(x)).numpy(), rtol=1e-4, atol=1e-5)


def test_digits_example_tiny_on_cuda(real_cuda, tmp_path, capsys):
    run_digits_tiny_on_cuda(tmp_path, capsys)
