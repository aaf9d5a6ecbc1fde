"""The GPU code path, proven portable without a GPU: everything runs with ``device="cuda"`` on
the strict CuPy stand-in (``tests/strict_cupy.py``), whose arrays refuse every implicit host
conversion, and must give the CPU's results on the same inputs.

Covered: every case of the op-case table forward, backward and double backward; modules,
optimizers, losses and a few training steps of a small CNN; checkpoints across devices; the
digits example; errors for mixed devices and for a missing CuPy; ``numpy()`` always on the host.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

import tinygrad_nd as tnd
import tinygrad_nd.nn.functional as F
from op_cases import all_cases
from tinygrad_nd import backend, nn, optim
from tinygrad_nd.ops.registry import REGISTRY

CASES = all_cases()


def on_device(t, where):
    """Assert that tensor ``t`` lives on ``where`` and holds an array of the matching kind
    (numpy on the CPU; the stand-in's or CuPy's ndarray, whichever backend has, on a GPU)."""
    assert t.device == where, f"expected a result on {where}, got {t.device}"
    if where == "cpu":
        assert type(t.data) is np.ndarray
    else:
        assert type(t.data) is backend._cupy.ndarray, f"silent host fallback: {type(t.data)}"


def _inputs(case, arrays, device, dtype):
    tensors = []
    for array, diff in zip(arrays, case.differentiable()):
        if array.dtype == bool:
            tensors.append(tnd.tensor(array, device=device))
        else:
            tensors.append(tnd.tensor(array.astype(dtype), device=device, requires_grad=diff))
    return tensors


def run_case(case, device, dtype, order):
    """Forward, backward (and, for order 2, the gradient of <grads, v>) on ``device``.

    Returns host copies: ``[output, first-order grads..., second-order grads...]``.
    """
    arrays = case.arrays()
    inputs = _inputs(case, arrays, device, dtype)
    out = case.fn(*inputs)
    where = "cpu" if device == "cpu" else "cuda:0"
    on_device(out, where)
    results = [out.numpy()]
    wrt = [t for t in inputs if t.requires_grad]
    if not out.requires_grad or not wrt:
        return results
    rng = np.random.default_rng(1)
    gy = tnd.tensor(rng.standard_normal(out.shape).astype(out.dtype), device=device)
    grads = tnd.autograd.grad(out, wrt, gy, create_graph=order == 2, allow_unused=True)
    for g in grads:
        if g is not None:
            on_device(g, where)
            results.append(g.numpy())
    if order == 2:
        used = [(g, t) for g, t in zip(grads, wrt) if g is not None and g.requires_grad]
        if used:
            vs = [tnd.tensor(rng.standard_normal(g.shape).astype(g.dtype), device=device) for g, _ in used]
            total = sum((g * v).sum() for (g, _), v in zip(used, vs))
            for g2 in tnd.autograd.grad(total, wrt, allow_unused=True):
                if g2 is not None:
                    on_device(g2, where)
                    results.append(g2.numpy())
    return results


def test_every_registered_op_has_a_case_to_run_on_the_device():
    missing = sorted(set(REGISTRY) - {case.op for case in CASES})
    assert not missing, f"registered ops the device run cannot cover (add cases): {missing}"


RUNS = [(c, d, 1) for c in CASES for d in c.dtypes] + [(c, "float64", 2) for c in CASES if c.second_order]


@pytest.mark.parametrize("case,dtype,order", RUNS,
                         ids=[f"{c.id}-{d}-order{o}" for c, d, o in RUNS])
def test_op_case_on_the_device_matches_the_cpu(fake_cuda, case, dtype, order):
    on_cpu = run_case(case, "cpu", dtype, order)
    on_device = run_case(case, "cuda", dtype, order)
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
        on_device(t, "cuda:0")
    back = made[0].cpu()
    on_device(back, "cpu")
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
    on_device(x.grad, "cpu")
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.exp(3 * x.numpy()))


def test_numpy_always_returns_a_host_copy_from_the_device(fake_cuda):
    t = tnd.tensor([1.0, 2.0], device="cuda")
    host = t.numpy()
    assert type(host) is np.ndarray
    host[0] = 100.0  # a copy: the device data is untouched
    assert t.tolist() == [1.0, 2.0]
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


# ----------------------------------------------------------------------------- the engine
def engine_checks(device):
    """The tape's semantics on ``device``: accumulation, retained and freed graphs, higher-order
    gradients, hooks, ``grad()``, ``no_grad`` and anomaly mode. Shared with tests/test_gpu.py."""
    where = "cpu" if device == "cpu" else backend.parse_device(device)
    x = tnd.tensor([0.5, -1.0, 2.0], dtype=tnd.float64, device=device, requires_grad=True)
    y = tnd.tensor([1.5, 0.25, -0.5], dtype=tnd.float64, device=device, requires_grad=True)

    # accumulation until cleared, and a retained graph walked twice
    f = (x * x * y).sum()
    f.backward(retain_graph=True)
    f.backward()
    on_device(x.grad, where)
    np.testing.assert_allclose(x.grad.numpy(), 2 * (2 * x.numpy() * y.numpy()))
    with pytest.raises(RuntimeError, match="second time"):
        f.backward()
    x.grad = y.grad = None

    # create_graph: a Hessian-vector product of sum(x^3 y + exp(x) y)
    v = tnd.tensor([1.0, 2.0, -1.0], dtype=tnd.float64, device=device)
    f = (x ** 3 * y + x.exp() * y).sum()
    (gx,) = tnd.autograd.grad(f, x, create_graph=True)
    on_device(gx, where)
    (hv,) = tnd.autograd.grad((gx * v).sum(), x)
    on_device(hv, where)
    xs, ys = x.numpy(), y.numpy()
    np.testing.assert_allclose(hv.numpy(), (6 * xs * ys + np.exp(xs) * ys) * v.numpy(), rtol=1e-12)
    assert x.grad is None  # grad() leaves .grad alone

    # a hook that doubles the gradient, and a retained non-leaf gradient
    h = x * 3.0
    h.retain_grad()
    h.register_hook(lambda g: g * 2.0)
    (h * y).sum().backward()
    on_device(h.grad, where)
    np.testing.assert_allclose(x.grad.numpy(), 6 * y.numpy())
    x.grad = None

    # an explicit upstream gradient, given as host data or as a tensor on the device
    z = x * y
    z.backward([1.0, 0.0, 2.0])
    np.testing.assert_allclose(x.grad.numpy(), y.numpy() * [1.0, 0.0, 2.0])

    with tnd.no_grad():
        assert not (x * y).requires_grad
    with tnd.autograd.detect_anomaly():
        with pytest.raises(RuntimeError, match="NaN or Inf"):
            (x - x.detach() + float("nan")).sum()
        root = tnd.tensor([0.0, 1.0], dtype=tnd.float64, device=device, requires_grad=True)
        with np.errstate(divide="ignore"), pytest.raises(RuntimeError, match="backward of op 'sqrt'"):
            root.sqrt().sum().backward()  # d sqrt/dx is inf at 0: caught inside the backward pass


def test_engine_semantics_on_every_device(device):
    engine_checks(device)


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
        _ = fake_cuda.errstate
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
    engine_checks("cuda:1")


# ----------------------------------------------------------------------------- modules, optimizers

def _both(build, seed=0):
    """The same freshly seeded module on the CPU and on the device."""
    tnd.manual_seed(seed)
    cpu = build()
    tnd.manual_seed(seed)
    return cpu, build().to("cuda")


def _assert_same(cpu_tensors, device_tensors, rtol=1e-6):
    cpu_tensors, device_tensors = list(cpu_tensors), list(device_tensors)
    assert len(cpu_tensors) == len(device_tensors)
    for i, (a, b) in enumerate(zip(cpu_tensors, device_tensors)):
        on_device(b, "cuda:0")
        assert a.dtype == b.dtype and a.shape == b.shape, i
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=rtol, atol=rtol, err_msg=f"tensor {i}")


MODULES = {
    "linear": (lambda: nn.Linear(5, 3), (4, 5)),
    "conv1d": (lambda: nn.Conv1d(2, 3, 3, padding=1), (2, 2, 7)),
    "conv2d-strided-grouped": (lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), (2, 4, 7, 6)),
    "conv3d-dilated": (lambda: nn.Conv3d(2, 2, 2, dilation=2), (1, 2, 5, 5, 5)),
    "maxpool1d": (lambda: nn.MaxPool1d(2), (2, 3, 8)),
    "maxpool2d-overlapping": (lambda: nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), (2, 2, 7, 7)),
    "maxpool3d": (lambda: nn.MaxPool3d(2), (1, 2, 4, 4, 4)),
    "avgpool2d": (lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (2, 2, 6, 5)),
    "avgpool1d": (lambda: nn.AvgPool1d(2), (2, 2, 6)),
    "batchnorm1d": (lambda: nn.BatchNorm1d(3), (5, 3)),
    "batchnorm2d": (lambda: nn.BatchNorm2d(3), (4, 3, 3, 3)),
    "batchnorm2d-cumulative": (lambda: nn.BatchNorm2d(3, momentum=None), (4, 3, 2, 2)),
    "dropout": (lambda: nn.Dropout(0.3), (4, 6)),
    "activations": (lambda: nn.Sequential(nn.ReLU(), nn.Sigmoid(), nn.Tanh()), (3, 4)),
    "flatten-linear": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), (2, 3, 4)),
}


@pytest.mark.parametrize("name", list(MODULES))
def test_module_forward_backward_and_state_on_the_device(fake_cuda, name):
    build, shape = MODULES[name]
    cpu, dev = _both(build)
    for p in dev.parameters():
        on_device(p, "cuda:0")
    for b in dev.buffers():
        on_device(b, "cuda:0")
    x_host = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    for step in range(2):  # two steps: running statistics and dropout masks move on
        outs = []
        for model, device in ((cpu, "cpu"), (dev, "cuda")):
            tnd.manual_seed(10 + step)  # the same dropout mask on both devices
            x = tnd.tensor(x_host, device=device, requires_grad=True)
            y = model(x)
            y.backward(tnd.tensor(np.linspace(-1, 1, y.numel()).reshape(y.shape).astype(np.float32),
                                  device=device))
            outs.append([y, x.grad] + [p.grad for p in model.parameters()])
        _assert_same(*outs, rtol=1e-5)
    _assert_same(cpu.state_dict().values(), dev.state_dict().values(), rtol=1e-5)
    cpu.eval(), dev.eval()
    with tnd.no_grad():
        _assert_same([cpu(tnd.tensor(x_host))], [dev(tnd.tensor(x_host, device="cuda"))], rtol=1e-5)
    back = dev.to("cpu")
    for t in list(back.parameters()) + list(back.buffers()):
        on_device(t, "cpu")


def test_mse_loss_on_the_device(fake_cuda):
    x = tnd.tensor([[0.5, -1.0], [2.0, 0.0]], device="cuda", requires_grad=True)
    loss = nn.MSELoss()(x, tnd.zeros(2, 2, device="cuda"))
    loss.backward()
    on_device(loss, "cuda:0")
    assert loss.item() == pytest.approx(5.25 / 4)
    np.testing.assert_allclose(x.grad.numpy(), x.numpy() / 2)


def test_cross_entropy_on_the_device(fake_cuda):
    logits = tnd.tensor([[1.0, 2.0, 0.5], [0.1, -1.0, 0.3]], device="cuda", requires_grad=True)
    target = tnd.tensor([1, 2], device="cuda")
    loss = nn.CrossEntropyLoss()(logits, target)
    loss.backward()
    on_device(loss, "cuda:0")
    expected = F.cross_entropy(logits.detach().cpu(), target.cpu())
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    on_device(logits.grad, "cuda:0")


OPTIMIZERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.1),
    "sgd-momentum-nesterov-wd": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True,
                                                     weight_decay=1e-2),
    "sgd-dampening": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.5, dampening=0.3),
    "adam": lambda ps: optim.Adam(ps, lr=1e-2),
    "adam-wd": lambda ps: optim.Adam(ps, lr=1e-2, weight_decay=1e-2),
    "adam-amsgrad": lambda ps: optim.Adam(ps, lr=1e-2, amsgrad=True),
    "adamw": lambda ps: optim.AdamW(ps, lr=1e-2, weight_decay=1e-1),
    "rmsprop": lambda ps: optim.RMSprop(ps, lr=1e-2),
    "rmsprop-momentum": lambda ps: optim.RMSprop(ps, lr=1e-2, momentum=0.9),
    "rmsprop-centered-wd": lambda ps: optim.RMSprop(ps, lr=1e-2, centered=True, weight_decay=1e-2),
}


def small_cnn():
    """(N, 1, 8, 8) -> (N, 4): conv, pool, batch norm, activations, linear."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),  # (N, 4, 4, 4)
        nn.Conv2d(4, 6, 3), nn.Sigmoid(), nn.AvgPool2d(2),  # (N, 6, 1, 1)
        nn.Flatten(), nn.Linear(6, 4), nn.Tanh(),
    )


def _train(model, make_optimizer, device, steps, loss_fn=F.mse_loss):
    rng = np.random.default_rng(5)
    opt = make_optimizer(model.parameters())
    losses = []
    for _ in range(steps):
        x = tnd.tensor(rng.standard_normal((6, 1, 8, 8)).astype(np.float32), device=device)
        target = tnd.tensor(rng.standard_normal((6, 4)).astype(np.float32), device=device)
        loss = loss_fn(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss)
    return opt, losses


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_training_steps_match_the_cpu_for_every_optimizer(fake_cuda, name):
    cpu, dev = _both(small_cnn)
    opt_cpu, losses_cpu = _train(cpu, OPTIMIZERS[name], "cpu", 3)
    opt_dev, losses_dev = _train(dev, OPTIMIZERS[name], "cuda", 3)
    _assert_same(losses_cpu, losses_dev, rtol=1e-5)
    _assert_same(cpu.parameters(), dev.parameters(), rtol=1e-5)
    _assert_same(cpu.buffers(), dev.buffers(), rtol=1e-5)
    for state in opt_dev.state.values():  # optimizer buffers live with their parameters
        for value in state.values():
            if isinstance(value, tnd.Tensor):
                on_device(value, "cuda:0")


def test_training_with_cross_entropy_on_the_device(fake_cuda):
    def loss_fn(logits, target):
        return F.cross_entropy(logits, target.argmax(dim=1))

    cpu, dev = _both(small_cnn)
    _, losses_cpu = _train(cpu, OPTIMIZERS["adam"], "cpu", 2, loss_fn)
    _, losses_dev = _train(dev, OPTIMIZERS["adam"], "cuda", 2, loss_fn)
    _assert_same(losses_cpu, losses_dev, rtol=1e-5)


def test_lr_schedulers_drive_a_device_optimizer(fake_cuda):
    model = nn.Linear(3, 1).to("cuda")
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    schedulers = [optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5),
                  optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)]
    for _ in range(2):
        loss = model(tnd.ones(2, 3, device="cuda")).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        for s in schedulers:
            s.step()
    lr = opt.param_groups[0]["lr"]
    assert isinstance(lr, float) and 0 < lr < 0.1  # a Python number, never a device array
    for p in model.parameters():
        on_device(p, "cuda:0")


# ----------------------------------------------------------------------------- checkpoints
def test_checkpoint_from_the_device_loads_on_the_cpu_and_back(fake_cuda, tmp_path):
    tnd.manual_seed(0)
    model = small_cnn().to("cuda")
    opt, _ = _train(model, OPTIMIZERS["adam"], "cuda", 2)
    path = tmp_path / "ckpt.npz"
    tnd.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": 2}, path)

    on_cpu = tnd.load(path)  # device="cpu" by default
    for value in on_cpu["model"].values():
        on_device(value, "cpu")
    cpu_model = small_cnn()
    cpu_model.load_state_dict(on_cpu["model"])
    cpu_opt = OPTIMIZERS["adam"](cpu_model.parameters())
    cpu_opt.load_state_dict(on_cpu["optimizer"])

    on_gpu = tnd.load(path, device="cuda")
    for value in on_gpu["model"].values():
        on_device(value, "cuda:0")
    tnd.manual_seed(1)
    dev_model = small_cnn().to("cuda")
    dev_model.load_state_dict(on_gpu["model"])
    dev_opt = OPTIMIZERS["adam"](dev_model.parameters())
    dev_opt.load_state_dict(on_cpu["optimizer"])  # CPU optimizer state onto device parameters

    # restored exactly, and training continues identically on both devices
    _assert_same(cpu_model.state_dict().values(), model.state_dict().values(), rtol=0)
    _assert_same(cpu_model.state_dict().values(), dev_model.state_dict().values(), rtol=0)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 1, 8, 8)).astype(np.float32)
    for m, o, device in ((cpu_model, cpu_opt, "cpu"), (dev_model, dev_opt, "cuda")):
        loss = m(tnd.tensor(x, device=device)).sum()
        o.zero_grad()
        loss.backward()
        o.step()
    _assert_same(cpu_model.parameters(), dev_model.parameters(), rtol=1e-5)
    for state in dev_opt.state.values():
        for value in state.values():
            if isinstance(value, tnd.Tensor):
                on_device(value, "cuda:0")


def test_loading_a_cpu_state_dict_into_a_device_model_keeps_it_on_the_device(fake_cuda):
    cpu, dev = _both(lambda: nn.Linear(3, 2), seed=0)
    tnd.manual_seed(5)
    other = nn.Linear(3, 2)
    dev.load_state_dict(other.state_dict())
    for p in dev.parameters():
        on_device(p, "cuda:0")
    _assert_same(other.parameters(), dev.parameters(), rtol=0)


# ----------------------------------------------------------------------------- the digits example
def run_digits_tiny_on_cuda(tmp_path, capsys):
    """examples/train_digits.py in --tiny mode on "cuda"; its checkpoint must load to the CPU.
    Shared with tests/test_gpu.py (real GPU)."""
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / "train_digits.py"
    spec = importlib.util.spec_from_file_location("train_digits_on_device", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.main(["--tiny", "--quiet", "--device", "cuda", "--out", str(tmp_path)])
    assert "on cuda" in capsys.readouterr().out
    assert 0.0 <= result["test_accuracy"] <= 1.0
    state = tnd.load(result["checkpoint"])
    for value in state["model"].values():
        on_device(value, "cpu")


def test_digits_example_tiny_on_the_device(fake_cuda, tmp_path, capsys):
    run_digits_tiny_on_cuda(tmp_path, capsys)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_training_on_a_second_device(fake_cuda, name):
    """Optimizer updates, batch-norm statistics and zero_grad run on the data's device too."""
    fake_cuda.reset(device_count=2)
    tnd.manual_seed(0)
    model = small_cnn().to("cuda:1")
    opt, losses = _train(model, OPTIMIZERS[name], "cuda:1", 2)
    model.zero_grad(set_to_none=False)
    for t in list(model.parameters()) + [p.grad for p in model.parameters()] + list(model.buffers()) + losses:
        on_device(t, "cuda:1")
    for state in opt.state.values():
        for value in state.values():
            if isinstance(value, tnd.Tensor):
                on_device(value, "cuda:1")
