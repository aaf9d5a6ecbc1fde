"""Optimizers and schedulers: update rules by hand, argument errors, param groups, state_dict
round trips and validation; schedulers against their closed forms and against torch."""
import copy
import math

import numpy as np
import pytest

import tinygrad_nd as tnd
from tinygrad_nd import nn, optim
from tinygrad_nd.optim import lr_scheduler


def param(values):
    return nn.Parameter(tnd.tensor(values, dtype=tnd.float64))


def constant_grad_steps(opt, p, grad, steps):
    history = []
    for _ in range(steps):
        p.grad = tnd.tensor(grad, dtype=tnd.float64)
        opt.step()
        history.append(p.numpy().copy())
    return history


# ----------------------------------------------------------------------------- update rules by hand
def test_sgd_momentum_dampening_by_hand():
    p = param([1.0, -1.0])
    g = np.array([0.5, 2.0])
    h = constant_grad_steps(optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.25), p, g, 3)
    buf1 = g                      # the first step takes the gradient undamped
    buf2 = 0.9 * buf1 + 0.75 * g
    buf3 = 0.9 * buf2 + 0.75 * g
    np.testing.assert_allclose(h[0], [1.0, -1.0] - 0.1 * buf1, rtol=1e-15)
    np.testing.assert_allclose(h[1], h[0] - 0.1 * buf2, rtol=1e-15)
    np.testing.assert_allclose(h[2], h[1] - 0.1 * buf3, rtol=1e-15)


def test_sgd_nesterov_and_weight_decay_by_hand():
    p = param([2.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.5, nesterov=True, weight_decay=0.1)
    p.grad = tnd.tensor([1.0], dtype=tnd.float64)
    opt.step()
    g = 1.0 + 0.1 * 2.0           # L2 term added to the gradient
    assert p.item() == pytest.approx(2.0 - 0.1 * (g + 0.5 * g), rel=1e-15)


def test_adam_first_step_is_lr_times_sign_whatever_the_scale():
    for scale in (1e-3, 1.0, 1e6):
        p = param([0.0, 0.0])
        opt = optim.Adam([p], lr=0.01)
        p.grad = tnd.tensor([scale, -scale], dtype=tnd.float64)
        opt.step()
        np.testing.assert_allclose(p.numpy(), [-0.01, 0.01], rtol=1e-5)


def test_adam_two_steps_by_hand():
    p = param([1.0])
    b1, b2, lr, eps = 0.9, 0.999, 0.1, 1e-8
    h = constant_grad_steps(optim.Adam([p], lr=lr), p, [2.0], 2)
    m2 = (1 - b1) * 2 * (1 + b1)
    v2 = (1 - b2) * 4 * (1 + b2)
    step2 = lr / (1 - b1 ** 2) * m2 / (math.sqrt(v2) / math.sqrt(1 - b2 ** 2) + eps)
    assert h[1][0] == pytest.approx(h[0][0] - step2, rel=1e-14)


def test_adamw_decays_decoupled_and_adam_couples():
    p, q = param([1.0]), param([1.0])
    adamw = optim.AdamW([p], lr=0.1, weight_decay=0.5)
    adam = optim.Adam([q], lr=0.1, weight_decay=0.5)
    for _ in range(3):
        p.grad = tnd.tensor([0.0], dtype=tnd.float64)
        q.grad = tnd.tensor([0.0], dtype=tnd.float64)
        adamw.step()
        adam.step()
    assert p.item() == pytest.approx(0.95 ** 3, rel=1e-14)  # pure shrinkage
    assert q.item() < 0.8  # the L2 term went through Adam's normalisation: about lr per step
    assert optim.AdamW([param([1.0])]).param_groups[0]["weight_decay"] == 0.01


def test_rmsprop_by_hand():
    p = param([1.0])
    h = constant_grad_steps(optim.RMSprop([p], lr=0.01, alpha=0.9, momentum=0.5, centered=True), p, [3.0], 2)
    v1, a1 = 0.1 * 9, 0.1 * 3
    d1 = math.sqrt(v1 - a1 * a1) + 1e-8
    b1 = 3 / d1
    v2, a2 = 0.9 * v1 + 0.1 * 9, 0.9 * a1 + 0.1 * 3
    b2 = 0.5 * b1 + 3 / (math.sqrt(v2 - a2 * a2) + 1e-8)
    assert h[0][0] == pytest.approx(1 - 0.01 * b1, rel=1e-14)
    assert h[1][0] == pytest.approx(h[0][0] - 0.01 * b2, rel=1e-14)


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), lambda ps: optim.Adam(ps),
                                  lambda ps: optim.RMSprop(ps, momentum=0.1)], ids=["sgd", "adam", "rmsprop"])
def test_parameters_without_gradient_are_skipped(make):
    used, unused = param([1.0]), param([1.0])
    opt = make([used, unused])
    used.grad = tnd.tensor([1.0], dtype=tnd.float64)
    opt.step()
    assert unused.item() == 1.0 and used.item() != 1.0
    assert list(opt.state_dict()["state"]) == [0]


def test_float32_parameters_stay_float32():
    p = nn.Parameter(tnd.ones(3))
    opt = optim.Adam([p], lr=0.1)
    p.grad = tnd.ones(3)
    opt.step()
    assert p.dtype == tnd.float32 and opt.state[p]["exp_avg"].dtype == tnd.float32


def test_zero_grad_and_closure():
    model = nn.Linear(3, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    x = tnd.randn(4, 3)

    def closure():
        opt.zero_grad()
        loss = (model(x) ** 2).mean()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert isinstance(loss, tnd.Tensor) and all(p.grad is not None for p in model.parameters())
    opt.zero_grad(set_to_none=False)
    assert all(not p.grad.numpy().any() for p in model.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_parameters_change_in_place():
    model = nn.Linear(2, 2)
    weight, array = model.weight, model.weight.data
    opt = optim.SGD(model.parameters(), lr=0.1)
    model(tnd.ones(1, 2)).sum().backward()
    opt.step()
    assert model.weight is weight and model.weight.data is array


# ----------------------------------------------------------------------------- argument errors
P = nn.Parameter(tnd.ones(1))


@pytest.mark.parametrize("make, error, message", [
    (lambda: optim.SGD([], lr=0.1), ValueError, "optimizer got an empty parameter list"),
    (lambda: optim.Adam(nn.ReLU().parameters()), ValueError, "optimizer got an empty parameter list"),
    (lambda: optim.SGD([param([1.0])], lr=-0.1), ValueError, "invalid learning rate lr: -0.1"),
    (lambda: optim.Adam([param([1.0])], lr=-1), ValueError, "invalid learning rate"),
    (lambda: optim.AdamW([param([1.0])], lr=-1), ValueError, "AdamW: invalid learning rate"),
    (lambda: optim.RMSprop([param([1.0])], lr=-1), ValueError, "invalid learning rate"),
    (lambda: optim.SGD([param([1.0])], lr=0.1, momentum=-0.5), ValueError, "invalid momentum"),
    (lambda: optim.SGD([param([1.0])], lr=0.1, nesterov=True), ValueError, "Nesterov momentum needs momentum > 0"),
    (lambda: optim.SGD([param([1.0])], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError,
     "dampening = 0"),
    (lambda: optim.SGD([param([1.0])], lr=0.1, weight_decay=-1), ValueError, "invalid weight_decay"),
    (lambda: optim.Adam([param([1.0])], betas=(1.0, 0.999)), ValueError,
     r"invalid beta1 .*: 1.0 \(must be >= 0 and < 1\)"),
    (lambda: optim.Adam([param([1.0])], betas=(0.9, -0.1)), ValueError, "invalid beta2"),
    (lambda: optim.Adam([param([1.0])], betas=(0.9,)), ValueError, "betas must be a pair"),
    (lambda: optim.Adam([param([1.0])], eps=-1e-8), ValueError, "invalid eps"),
    (lambda: optim.RMSprop([param([1.0])], alpha=-0.1), ValueError, "invalid alpha"),
    (lambda: optim.RMSprop([param([1.0])], momentum=-0.1), ValueError, "invalid momentum"),
    (lambda: optim.SGD([param([1.0])], lr="fast"), TypeError, "lr must be a number"),
    (lambda: optim.SGD(param([1.0]), lr=0.1), TypeError, "single Tensor"),
    (lambda: optim.SGD({param([1.0])}, lr=0.1), TypeError, "ordered collection"),
    (lambda: optim.SGD([np.ones(2)], lr=0.1), TypeError, "can only optimise Tensors"),
    (lambda: optim.SGD([param([1.0]) * 2], lr=0.1), TypeError, "non-leaf"),
    (lambda: optim.SGD([{"params": [P]}, {"params": [P]}], lr=0.1), ValueError, "more than one parameter group"),
    (lambda: optim.SGD([P, P], lr=0.1), ValueError, "appears twice"),
    (lambda: optim.SGD([{"params": [param([1.0])], "lr": -1.0}], lr=0.1), ValueError, "invalid learning rate"),
    (lambda: optim.SGD([{"lr": 0.1}], lr=0.1), ValueError, "needs a 'params' entry"),
], ids=["empty", "empty-generator", "sgd-lr", "adam-lr", "adamw-lr", "rmsprop-lr", "momentum", "nesterov",
        "nesterov-dampening", "weight-decay", "beta1", "beta2", "betas-len", "eps", "alpha", "rms-momentum",
        "lr-type", "single-tensor", "set", "array", "non-leaf", "two-groups", "duplicate", "group-lr",
        "group-without-params"])
def test_argument_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


# ----------------------------------------------------------------------------- param groups
def test_param_groups_take_defaults_and_overrides():
    a, b = param([1.0]), param([1.0])
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 1.0, "tag": "head"}], lr=0.1, momentum=0.5)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 1.0
    assert opt.param_groups[1]["momentum"] == 0.5 and opt.param_groups[1]["tag"] == "head"
    a.grad = tnd.tensor([1.0], dtype=tnd.float64)
    b.grad = tnd.tensor([1.0], dtype=tnd.float64)
    opt.step()
    assert a.item() == pytest.approx(0.9) and b.item() == pytest.approx(0.0)
    c = param([1.0])
    opt.add_param_group({"params": [c], "lr": 0.5})
    assert len(opt.param_groups) == 3 and opt.param_groups[2]["momentum"] == 0.5
    assert "Parameter Group 2" in repr(opt) and "lr: 0.5" in repr(opt)


# ----------------------------------------------------------------------------- state_dict
def make_model(seed=0):
    tnd.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()


DATA_X = np.random.default_rng(0).standard_normal((8, 3))
DATA_Y = np.random.default_rng(1).standard_normal((8, 2))


def train(model, opt, steps):
    for _ in range(steps):
        opt.zero_grad()
        nn.MSELoss()(model(tnd.tensor(DATA_X)), tnd.tensor(DATA_Y)).backward()
        opt.step()


OPTIMIZERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    "adam": lambda ps: optim.Adam(ps, lr=0.01, amsgrad=True),
    "adamw": lambda ps: optim.AdamW(ps, lr=0.01),
    "rmsprop": lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
}


def test_state_dict_layout():
    model = make_model()
    opt = optim.Adam([{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.1}])
    train(model, opt, 2)
    state = opt.state_dict()
    assert set(state) == {"state", "param_groups"}
    assert [g["params"] for g in state["param_groups"]] == [[0, 1], [2, 3]]
    assert state["param_groups"][1]["lr"] == 0.1 and state["param_groups"][0]["betas"] == (0.9, 0.999)
    assert list(state["state"]) == [0, 1, 2, 3]
    assert set(state["state"][0]) == {"step", "exp_avg", "exp_avg_sq"} and state["state"][0]["step"] == 2
    assert state["state"][2]["exp_avg"].shape == (2, 4)
    snapshot = state["state"][0]["exp_avg"].numpy().copy()
    train(model, opt, 1)  # a snapshot: later steps do not change it
    np.testing.assert_array_equal(state["state"][0]["exp_avg"].numpy(), snapshot)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_round_trip_continues_identically(name):
    model_a = make_model()
    opt_a = OPTIMIZERS[name](model_a.parameters())
    train(model_a, opt_a, 3)
    model_b = make_model(seed=5)  # different weights, fresh optimizer: everything comes from the state
    opt_b = OPTIMIZERS[name](model_b.parameters())
    model_b.load_state_dict(model_a.state_dict())
    opt_b.load_state_dict(opt_a.state_dict())
    train(model_a, opt_a, 4)
    train(model_b, opt_b, 4)
    for key, value in model_a.state_dict().items():
        np.testing.assert_array_equal(model_b.state_dict()[key].numpy(), value.numpy(), err_msg=key)


def test_loaded_state_is_a_copy():
    model = make_model()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train(model, opt, 1)
    saved = opt.state_dict()
    other = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    other.load_state_dict(saved)
    buf = other.state[model[0].weight]["momentum_buffer"]
    assert buf.data is not saved["state"][0]["momentum_buffer"].data


def test_checkpoint_style_state_loads():
    """After a save/load cycle keys may be strings, tuples lists and steps 0-d tensors."""
    model = make_model()
    opt = optim.Adam(model.parameters(), lr=0.01)
    train(model, opt, 2)
    saved = opt.state_dict()
    mangled = {
        "state": {str(i): {k: (tnd.tensor(v) if k == "step" else tnd.tensor(v.numpy())) for k, v in entry.items()}
                  for i, entry in saved["state"].items()},
        "param_groups": [{**g, "betas": list(g["betas"])} for g in saved["param_groups"]],
    }
    fresh = optim.Adam(model.parameters(), lr=0.5)
    fresh.load_state_dict(mangled)
    assert fresh.param_groups[0]["lr"] == 0.01 and fresh.param_groups[0]["betas"] == (0.9, 0.999)
    assert fresh.state[model[0].weight]["step"] == 2


def snapshot(opt):
    return ([{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups],
            {id(p): {k: (v.numpy().copy() if isinstance(v, tnd.Tensor) else v) for k, v in s.items()}
             for p, s in opt.state.items()})


def assert_unchanged(opt, before):
    groups, state = snapshot(opt)
    assert groups == before[0]
    assert state.keys() == before[1].keys()
    for key in state:
        assert state[key].keys() == before[1][key].keys()
        for field in state[key]:
            np.testing.assert_array_equal(state[key][field], before[1][key][field])


def corrupt_shape(s):
    s["state"][1]["exp_avg"] = tnd.zeros(3, dtype=tnd.float64)


def corrupt_dtype(s):
    s["state"][0]["exp_avg_sq"] = tnd.zeros(4, 3)


@pytest.mark.parametrize("corrupt, message", [
    (corrupt_shape, r"state\[1\]\['exp_avg'\]: has shape \(3,\), the parameter has shape \(4,\)"),
    (corrupt_dtype, "has dtype float32, the parameter has dtype float64"),
    (lambda s: s["state"][0].__setitem__("velocity", tnd.zeros(4, 3)), "unknown state for Adam"),
    (lambda s: s["state"][0].__setitem__("step", -1), "non-negative whole number"),
    (lambda s: s["state"].__setitem__(9, {}), "parameter index no group lists"),
    (lambda s: s["param_groups"][0].__setitem__("lr", -0.1), "invalid learning rate"),
    (lambda s: s["param_groups"][0].pop("eps"), r"lacks \['eps'\]"),
    (lambda s: s["param_groups"][0].__setitem__("momentum", 0.9), r"unknown hyperparameters \['momentum'\]"),
    (lambda s: s["param_groups"][0].__setitem__("params", [0, 1]), "holds 2 parameters"),
    (lambda s: s["param_groups"].append(dict(s["param_groups"][0])), "has 2 parameter groups"),
    (lambda s: s.pop("state"), "exactly the keys"),
], ids=["shape", "dtype", "unknown-state", "step", "index", "lr", "missing-hyper", "extra-hyper",
        "group-size", "group-count", "layout"])
def test_bad_state_leaves_the_optimizer_unchanged(corrupt, message):
    model = make_model()
    opt = optim.Adam(model.parameters(), lr=0.01)
    train(model, opt, 2)
    state = opt.state_dict()
    bad = copy.deepcopy(state)  # valid, and different from the live state, except for:
    bad["param_groups"][0]["lr"] = 0.02
    bad["state"][0]["step"] = 7
    corrupt(bad)
    before = snapshot(opt)
    with pytest.raises(ValueError, match=message):
        opt.load_state_dict(bad)
    assert_unchanged(opt, before)


# ----------------------------------------------------------------------------- schedulers
def sgd(lr=1.0, groups=1):
    return optim.SGD([{"params": [param([0.0])], "lr": lr * (i + 1)} for i in range(groups)], lr=lr)


def rates(scheduler, epochs):
    out = []
    for _ in range(epochs):
        out.append(scheduler.get_last_lr())
        scheduler.optimizer.step()
        scheduler.step()
    return out


def test_step_lr_closed_form():
    opt = sgd(0.5, groups=2)
    seen = rates(lr_scheduler.StepLR(opt, step_size=3, gamma=0.2), 10)
    for epoch, lrs in enumerate(seen):
        for base, lr in zip([0.5, 1.0], lrs):
            assert lr == pytest.approx(base * 0.2 ** (epoch // 3), rel=1e-12)
    assert opt.param_groups[0]["initial_lr"] == 0.5


def test_cosine_closed_form_within_the_period():
    opt = sgd(0.1)
    seen = rates(lr_scheduler.CosineAnnealingLR(opt, T_max=8, eta_min=0.01), 9)
    for epoch, (lr,) in enumerate(seen):
        assert lr == pytest.approx(0.01 + 0.09 * (1 + math.cos(math.pi * epoch / 8)) / 2, rel=1e-12)


@pytest.mark.torch
@pytest.mark.parametrize("kind, kwargs", [("StepLR", dict(step_size=4, gamma=0.5)),
                                          ("CosineAnnealingLR", dict(T_max=7, eta_min=0.001)),
                                          ("CosineAnnealingLR", dict(T_max=3))],
                         ids=["step", "cosine", "cosine-short"])
def test_schedulers_match_torch(kind, kwargs):
    torch = pytest.importorskip("torch")
    ours = getattr(lr_scheduler, kind)(sgd(0.3, groups=2), **kwargs)
    weights = [torch.zeros(1, requires_grad=True) for _ in range(2)]
    ref_opt = torch.optim.SGD([{"params": [w], "lr": 0.3 * (i + 1)} for i, w in enumerate(weights)], lr=0.3)
    theirs = getattr(torch.optim.lr_scheduler, kind)(ref_opt, **kwargs)
    for epoch in range(25):  # past T_max, where the cosine climbs back
        np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12, err_msg=f"epoch {epoch}")
        ref_opt.step()
        ours.optimizer.step()
        ours.step()
        theirs.step()


def test_scheduler_state_dict_resumes():
    first = lr_scheduler.CosineAnnealingLR(sgd(1.0), T_max=10)
    rates(first, 4)
    state = first.state_dict()
    assert state["last_epoch"] == 4 and "optimizer" not in state
    opt = sgd(1.0)
    opt.param_groups[0]["lr"] = first.optimizer.param_groups[0]["lr"]
    second = lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    second.load_state_dict(state)
    assert rates(second, 5) == rates(first, 5)
    with pytest.raises(ValueError, match="expected the keys"):
        second.load_state_dict({"last_epoch": 1})


def test_scheduler_errors():
    with pytest.raises(ValueError, match="step_size must be a positive int"):
        lr_scheduler.StepLR(sgd(), step_size=0)
    with pytest.raises(ValueError, match="T_max must be a positive int"):
        lr_scheduler.CosineAnnealingLR(sgd(), T_max=0)
    with pytest.raises(TypeError, match="expected an Optimizer"):
        lr_scheduler.StepLR("adam", step_size=1)
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(sgd(), step_size=1, last_epoch=3)
