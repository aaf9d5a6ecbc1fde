"""The GPU code path, proven portable without a GPU: everything runs with ``device="cuda"`` on
the strict CuPy stand-in (``tests/strict_cupy.py``), whose arrays refuse every implicit host
conversion, and must give the CPU's results on the same inputs.

Covered: every case of the op-case table forward, backward and double backward; modules,
optimizers, losses and a few training steps of a small CNN; checkpoints across devices; the
digits example; errors for mixed devices and for a missing CuPy; ``numpy()`` always on the host.
"""
from __future__ import annotations

import importlib
import os
import sys

import numpy as np
import pytest

import strict_cupy
import tinygrad_nd as tnd
import tinygrad_nd.nn.functional as F
from op_cases import all_cases
from tinygrad_nd import backend, nn
from tinygrad_nd.ops import shape as S
from tinygrad_nd.ops.registry import REGISTRY

CASES = all_cases()


def _device_index(x, values):
    """An integer index array made on ``x``'s device, as ``getitem`` makes it in real use."""
    return tnd.tensor(values, device=x.device).data


# Cases that hand a host (numpy) index straight to a primitive. In real use the index comes from
# ``getitem``, which builds it on the tensor's device; on a device the case must do the same.
DEVICE_FN = {
    "index_put_add-repeated-rows":
        lambda x: S.IndexPutAdd.apply(x, index=(_device_index(x, [0, 2, 0]),), shape=(4, 3)),
}


def _on_device(t, where):
    """Assert the result lives on ``where`` with an array of the matching kind."""
    assert t.device == where, f"expected a result on {where}, got {t.device}"
    if where == "cpu":
        assert type(t.data) is np.ndarray
    else:
        assert type(t.data) is strict_cupy.ndarray, f"silent host fallback: {type(t.data)}"


def _inputs(case, arrays, device, dtype):
    tensors = []
    for array, diff in zip(arrays, case.differentiable()):
        if array.dtype == bool:
            tensors.append(tnd.tensor(array, device=device))
        else:
            tensors.append(tnd.tensor(array.astype(dtype), device=device, requires_grad=diff))
    return tensors


def _run_case(case, device, dtype, order):
    """Forward, backward (and, for order 2, the gradient of <grads, v>) on ``device``.

    Returns host copies: ``[output, first-order grads..., second-order grads...]``.
    """
    arrays = case.arrays()
    fn = DEVICE_FN.get(case.id, case.fn) if device != "cpu" else case.fn
    inputs = _inputs(case, arrays, device, dtype)
    out = fn(*inputs)
    where = "cpu" if device == "cpu" else "cuda:0"
    _on_device(out, where)
    results = [out.numpy()]
    wrt = [t for t in inputs if t.requires_grad]
    if not out.requires_grad or not wrt:
        return results
    rng = np.random.default_rng(1)
    gy = tnd.tensor(rng.standard_normal(out.shape).astype(out.dtype), device=device)
    grads = tnd.autograd.grad(out, wrt, gy, create_graph=order == 2, allow_unused=True)
    for g in grads:
        if g is not None:
            _on_device(g, where)
            results.append(g.numpy())
    if order == 2:
        used = [(g, t) for g, t in zip(grads, wrt) if g is not None and g.requires_grad]
        if used:
            vs = [tnd.tensor(rng.standard_normal(g.shape).astype(g.dtype), device=device) for g, _ in used]
            total = sum((g * v).sum() for (g, _), v in zip(used, vs))
            for g2 in tnd.autograd.grad(total, wrt, allow_unused=True):
                if g2 is not None:
                    _on_device(g2, where)
                    results.append(g2.numpy())
    return results


def test_every_registered_op_has_a_case_to_run_on_the_device():
    missing = sorted(set(REGISTRY) - {case.op for case in CASES})
    assert not missing, f"registered ops the device run cannot cover (add cases): {missing}"
    stale = sorted(set(DEVICE_FN) - {case.id for case in CASES})
    assert not stale, f"DEVICE_FN overrides for cases that no longer exist: {stale}"


RUNS = [(c, d, 1) for c in CASES for d in c.dtypes] + [(c, "float64", 2) for c in CASES if c.second_order]


@pytest.mark.parametrize("case,dtype,order", RUNS,
                         ids=[f"{c.id}-{d}-order{o}" for c, d, o in RUNS])
def test_op_case_on_the_device_matches_the_cpu(fake_cuda, case, dtype, order):
    on_cpu = _run_case(case, "cpu", dtype, order)
    on_device = _run_case(case, "cuda", dtype, order)
    assert len(on_device) == len(on_cpu)
    rtol = 1e-6 if dtype == "float32" else 1e-12  # same numpy kernels; only chunking may differ
    for i, (got, want) in enumerate(zip(on_device, on_cpu)):
        assert got.dtype == want.dtype and got.shape == want.shape, f"result {i}"
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, err_msg=f"result {i}")
    # and the forward matches the numpy reference on the same inputs
    arrays = [a if a.dtype == bool else a.astype(dtype) for a in case.arrays()]
    expected = np.asarray(case.ref(*arrays))
    ref_rtol = case.rtol32 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(on_device[0], expected, rtol=ref_rtol, atol=ref_rtol * 1e-2)


# ----------------------------------------------------------------------------- tensors and devices
def test_factories_and_moves_place_data_on_the_device(fake_cuda):
    made = [tnd.tensor([1.0, 2.0], device="cuda"), tnd.zeros(2, 3, device="cuda"),
            tnd.ones(2, device="cuda:0"), tnd.full((2,), 3.0, device="cuda"),
            tnd.arange(4, device="cuda"), tnd.eye(3, device="cuda"), tnd.rand(2, device="cuda"),
            tnd.randn(2, 2, device="cuda"), tnd.tensor([1.0]).to("cuda"), tnd.tensor([1.0]).cuda(),
            tnd.zeros_like(tnd.zeros(2, device="cuda")), tnd.randn_like(tnd.zeros(2, device="cuda"))]
    for t in made:
        _on_device(t, "cuda:0")
    back = made[0].cpu()
    _on_device(back, "cpu")
    assert back.tolist() == [1.0, 2.0]


def test_same_seed_gives_the_same_initial_values_on_both_devices(fake_cuda):
    tnd.manual_seed(7)
    a = tnd.randn(3, 4)
    tnd.manual_seed(7)
    b = tnd.randn(3, 4, device="cuda")
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_moving_between_devices_is_differentiable(fake_cuda):
    x = tnd.tensor([1.0, -2.0], dtype=tnd.float64, requires_grad=True)
    y = (x.cuda() * 3.0).exp().cpu().sum()
    y.backward()
    _on_device(x.grad, "cpu")
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.exp(3 * x.numpy()))


def test_numpy_always_returns_a_host_copy_from_the_device(fake_cuda):
    t = tnd.tensor([1.0, 2.0], device="cuda")
    host = t.numpy()
    assert type(host) is np.ndarray
    host[0] = 100.0  # a copy: the device data is untouched
    assert t.tolist() == [1.0, 2.0]
    assert t.item() if t.numel() == 1 else True
    assert tnd.tensor([2.5], device="cuda").item() == 2.5
    assert float(tnd.tensor(1.5, device="cuda")) == 1.5
    assert "device='cuda:0'" in repr(t)


def test_numpy_on_the_cpu_shares_memory():
    t = tnd.tensor([1.0, 2.0])
    assert type(t.numpy()) is np.ndarray
    t.numpy()[0] = 5.0
    assert t.tolist() == [5.0, 2.0]


def test_device_reports_cuda_with_its_index(fake_cuda):
    t = tnd.ones(2, device="cuda")
    assert t.device == "cuda:0"
    assert t.to("cuda:0") is t


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("op", [
    lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a @ b, lambda a, b: tnd.cat([a, b]),
    lambda a, b: tnd.where(a > 0, a, b), lambda a, b: a < b, lambda a, b: F.mse_loss(a, b),
], ids=["add", "mul", "matmul", "cat", "where", "compare", "mse_loss"])
def test_mixing_cpu_and_cuda_tensors_names_which_is_where(fake_cuda, op):
    cpu = tnd.ones(2)
    gpu = tnd.ones(2, device="cuda")
    for a, b, first, second in ((cpu, gpu, "cpu", "cuda:0"), (gpu, cpu, "cuda:0", "cpu")):
        with pytest.raises(RuntimeError) as info:
            op(a, b)
        message = str(info.value)
        assert f"on {first}" in message and f"on {second}" in message, message
        assert "to(" in message, message


def test_mixing_devices_in_backward_is_caught_too(fake_cuda):
    w = tnd.ones(2, requires_grad=True)
    y = (w * 2.0).sum()
    with pytest.raises(RuntimeError, match="cuda:0"):
        y.backward(tnd.tensor(1.0, device="cuda"))


def _without_cupy(monkeypatch):
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` raises ImportError


def test_asking_for_cuda_without_cupy_says_which_wheel_to_install(monkeypatch):
    _without_cupy(monkeypatch)
    for make in (lambda: tnd.zeros(2, device="cuda"), lambda: tnd.tensor([1.0]).cuda(),
                 lambda: tnd.tensor([1.0]).to("cuda:0"), lambda: nn.Linear(2, 2).to("cuda")):
        with pytest.raises(RuntimeError) as info:
            make()
        message = str(info.value)
        assert "cupy-cuda12x" in message and "cupy-cuda13x" in message, message
        assert "tinygrad-nd[cuda12]" in message and "tinygrad-nd[cuda13]" in message, message


def test_asking_for_cuda_without_a_gpu_says_so(monkeypatch):
    class NoDriver:
        class cuda:
            class runtime:
                @staticmethod
                def getDeviceCount():
                    raise OSError("CUDA driver version is insufficient")

    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setitem(sys.modules, "cupy", NoDriver)
    with pytest.raises(RuntimeError, match="no CUDA GPU is usable.*driver"):
        tnd.zeros(2, device="cuda")


def test_unknown_device_strings_are_refused():
    for bad in ("gpu", "cuda:x", "tpu:0", "cuda:-1"):
        with pytest.raises(ValueError, match="unknown device"):
            tnd.zeros(1, device=bad)


def test_a_device_index_that_does_not_exist_is_refused(fake_cuda):
    with pytest.raises(Exception, match="invalid device ordinal 3"):
        tnd.zeros(1, device="cuda:3")


# ----------------------------------------------------------------------------- the stand-in's wall
def test_the_stand_in_refuses_every_implicit_host_conversion(fake_cuda):
    """The guard is only as good as its wall: check it refuses what CuPy refuses and more."""
    a = fake_cuda.asarray([1.0, 2.0])
    refusals = [lambda: np.asarray(a), lambda: np.exp(a), lambda: np.sum(a), lambda: float(a[0]),
                lambda: int(a[0]), lambda: bool(a[0]), lambda: a.item(), lambda: a.tolist(),
                lambda: a + np.ones(2), lambda: np.ones(2) * a, lambda: a[np.array([0])],
                lambda: a.__setitem__(0, np.ones(())), lambda: [0, 1][a.argmax()],
                lambda: f"{a[0]:.2f}"]
    for i, refuse in enumerate(refusals):
        with pytest.raises(TypeError):
            refuse()
            pytest.fail(f"refusal {i} did not raise")
    with pytest.raises(AttributeError, match="numpy-only"):
        fake_cuda.errstate
    assert type(a.sum()) is fake_cuda.ndarray  # reductions stay on the device
    assert type(a.get()) is np.ndarray  # the explicit transfer works


def test_the_stand_in_refuses_arrays_from_another_device(fake_cuda):
    fake_cuda.reset(device_count=2)
    with fake_cuda.cuda.Device(1):
        b = fake_cuda.ones(2)
    with pytest.raises(ValueError, match="current device"):
        b + 1


# ----------------------------------------------------------------------------- second device
def test_tensors_on_a_second_device_stay_there(fake_cuda):
    fake_cuda.reset(device_count=2)
    x = tnd.tensor([1.0, 2.0], device="cuda:1", requires_grad=True)
    w = tnd.tensor([[1.0], [3.0]], device="cuda:1", requires_grad=True)
    y = ((x @ w).relu() * 2.0 + 1.0).sum()
    assert y.device == "cuda:1"
    y.backward()
    assert x.grad.device == "cuda:1" and w.grad.device == "cuda:1"
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 6.0])
    with pytest.raises(RuntimeError, match="cuda:0.*cuda:1|cuda:1.*cuda:0"):
        x + tnd.ones(2, device="cuda:0")
