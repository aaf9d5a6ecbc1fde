"""PyTorch as the oracle: the same models, initial weights and data give the same losses,
gradients and, after 10 steps of every optimizer configuration, the same parameters (float64).
BatchNorm's outputs, gradients and running statistics match in train and eval mode."""
import numpy as np
import pytest

import tinygrad_nd as tnd
from tinygrad_nd import nn, optim

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

RTOL, ATOL = 1e-10, 1e-12


# ----------------------------------------------------------------------------- models
# The layer names and arguments are the same in both libraries, so one function builds both.
def cnn(lib):
    m = lib.nn
    return m.Sequential(m.Conv2d(1, 4, 3), m.ReLU(), m.MaxPool2d(2), m.Conv2d(4, 6, 3, padding=1),
                        m.Sigmoid(), m.Flatten(), m.Linear(6 * 3 * 3, 5))


def cnn_bn(lib):
    m = lib.nn
    return m.Sequential(m.Conv2d(1, 4, 3, bias=False), m.BatchNorm2d(4), m.ReLU(), m.MaxPool2d(2),
                        m.Conv2d(4, 6, 3, padding=1), m.Tanh(), m.Flatten(), m.Linear(6 * 3 * 3, 5))


def mlp(lib):
    m = lib.nn
    return m.Sequential(m.Linear(8, 16), m.Tanh(), m.Linear(16, 16), m.Sigmoid(), m.Linear(16, 3))


def cnn1d(lib):
    m = lib.nn
    return m.Sequential(m.Conv1d(2, 3, 3, stride=2, padding=1), m.Tanh(), m.AvgPool1d(2),
                        m.Flatten(), m.Linear(3 * 4, 3))


def cnn3d(lib):
    m = lib.nn
    return m.Sequential(m.Conv3d(1, 2, 2, dilation=(1, 2, 1)), m.ReLU(), m.MaxPool3d(2, stride=1),
                        m.Flatten(), m.Linear(2 * 3 * 3 * 3, 3))


rng = np.random.default_rng(0)
DATA = {  # model -> (input, classes or regression target, loss)
    "cnn": (rng.standard_normal((6, 1, 8, 8)), rng.integers(0, 5, 6), "ce"),
    "cnn_bn": (rng.standard_normal((6, 1, 8, 8)), rng.integers(0, 5, 6), "ce"),
    "mlp": (rng.standard_normal((10, 8)), rng.standard_normal((10, 3)), "mse"),
    "cnn1d": (rng.standard_normal((4, 2, 16)), rng.integers(0, 3, 4), "ce"),
    "cnn3d": (rng.standard_normal((3, 1, 5, 6, 5)), rng.standard_normal((3, 3)), "mse"),
}
MODELS = {"cnn": cnn, "cnn_bn": cnn_bn, "mlp": mlp, "cnn1d": cnn1d, "cnn3d": cnn3d}


def twin_models(name):
    """The tnd model (default init, float64) and a torch copy with the same weights."""
    tnd.manual_seed(1)
    ours = MODELS[name](tnd).double()
    theirs = MODELS[name](torch).double()
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in ours.state_dict().items()})
    return ours, theirs


def losses(name, ours, theirs):
    x, target, kind = DATA[name]
    ours_out, theirs_out = ours(tnd.tensor(x)), theirs(torch.from_numpy(x))
    if kind == "ce":
        return (nn.CrossEntropyLoss()(ours_out, tnd.tensor(target)),
                torch.nn.CrossEntropyLoss()(theirs_out, torch.from_numpy(target)))
    return (nn.MSELoss()(ours_out, tnd.tensor(target)),
            torch.nn.MSELoss()(theirs_out, torch.from_numpy(target)))


def assert_same_state(ours, theirs, what):
    mine = ours.state_dict()
    other = theirs.state_dict()
    assert list(mine) == list(other)
    for key in mine:
        np.testing.assert_allclose(mine[key].numpy(), other[key].numpy(), rtol=RTOL, atol=ATOL,
                                   err_msg=f"{what}: {key}")


@pytest.mark.parametrize("name", list(MODELS))
def test_same_names_loss_and_gradients(name):
    ours, theirs = twin_models(name)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    loss, ref = losses(name, ours, theirs)
    loss.backward()
    ref.backward()
    np.testing.assert_allclose(loss.item(), ref.item(), rtol=RTOL)
    for (key, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert p.grad is not None, key
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=key)
    assert_same_state(ours, theirs, "after one forward")  # BatchNorm running statistics


OPTIMIZERS = [
    ("sgd", "SGD", dict(lr=0.1)),
    ("sgd-momentum", "SGD", dict(lr=0.05, momentum=0.9)),
    ("sgd-dampening", "SGD", dict(lr=0.05, momentum=0.9, dampening=0.3)),
    ("sgd-nesterov", "SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("sgd-weight-decay", "SGD", dict(lr=0.05, momentum=0.5, weight_decay=0.01)),
    ("adam", "Adam", dict(lr=0.01)),
    ("adam-l2-amsgrad", "Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True)),
    ("adamw", "AdamW", dict(lr=0.01)),
    ("adamw-decay", "AdamW", dict(lr=0.02, weight_decay=0.1, eps=1e-6)),
    ("rmsprop", "RMSprop", dict(lr=0.01)),
    ("rmsprop-momentum-decay", "RMSprop", dict(lr=0.01, momentum=0.9, weight_decay=0.01)),
    ("rmsprop-centered", "RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True)),
]


def train_both(name, cls, kwargs, steps=10, groups=None):
    ours, theirs = twin_models(name)
    if groups is None:
        opt = getattr(optim, cls)(ours.parameters(), **kwargs)
        ref = getattr(torch.optim, cls)(theirs.parameters(), **kwargs)
    else:
        opt = getattr(optim, cls)(groups(ours), **kwargs)
        ref = getattr(torch.optim, cls)(groups(theirs), **kwargs)
    for step in range(steps):
        opt.zero_grad()
        ref.zero_grad()
        loss, ref_loss = losses(name, ours, theirs)
        loss.backward()
        ref_loss.backward()
        np.testing.assert_allclose(loss.item(), ref_loss.item(), rtol=RTOL, err_msg=f"step {step}")
        opt.step()
        ref.step()
    return ours, theirs, opt, ref


@pytest.mark.parametrize("name", ["cnn", "mlp"])
@pytest.mark.parametrize("label, cls, kwargs", OPTIMIZERS, ids=[c[0] for c in OPTIMIZERS])
def test_ten_steps_match_torch(name, label, cls, kwargs):
    ours, theirs, opt, ref = train_both(name, cls, kwargs)
    assert_same_state(ours, theirs, label)
    # the optimizer state matches too (same keys, same buffers)
    mine, other = opt.state_dict(), ref.state_dict()
    assert sorted(mine["state"]) == sorted(other["state"])
    for index, entry in mine["state"].items():
        assert set(entry) == set(other["state"][index])
        for key, value in entry.items():
            if key == "step":
                assert value == int(other["state"][index][key])
            else:
                np.testing.assert_allclose(value.numpy(), other["state"][index][key].numpy(),
                                           rtol=RTOL, atol=ATOL, err_msg=f"{label} state {key}")


@pytest.mark.parametrize("name", ["cnn_bn", "cnn1d", "cnn3d"])
def test_other_models_train_like_torch(name):
    ours, theirs, _, _ = train_both(name, "Adam", dict(lr=0.02))
    assert_same_state(ours, theirs, name)  # includes BatchNorm's running statistics


def test_param_groups_and_frozen_parameters_match_torch():
    def groups(model):  # two groups with their own rates; the first layer's bias is left out
        return [{"params": [model[0].weight], "lr": 0.2, "momentum": 0.5},
                {"params": list(model[2].parameters()) + list(model[4].parameters())}]

    ours, theirs, opt, ref = train_both("mlp", "SGD", dict(lr=0.05, momentum=0.9, nesterov=True),
                                        groups=groups)
    assert_same_state(ours, theirs, "groups")
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in ref.param_groups]


@pytest.mark.parametrize("cls, kwargs", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.01)),
                                         ("RMSprop", dict(lr=0.01, centered=True, momentum=0.3))],
                         ids=["sgd", "adam", "rmsprop"])
def test_state_dict_resume_matches_uninterrupted_torch(cls, kwargs):
    """5 steps, state_dict -> a fresh optimizer (ours) -> 5 more steps == 10 steps of torch."""
    ours, theirs = twin_models("mlp")
    opt = getattr(optim, cls)(ours.parameters(), **kwargs)
    ref = getattr(torch.optim, cls)(theirs.parameters(), **kwargs)
    for step in range(10):
        if step == 5:
            saved = opt.state_dict()
            opt = getattr(optim, cls)(ours.parameters(), **kwargs)
            opt.load_state_dict(saved)
        opt.zero_grad()
        ref.zero_grad()
        loss, ref_loss = losses("mlp", ours, theirs)
        loss.backward()
        ref_loss.backward()
        opt.step()
        ref.step()
    assert_same_state(ours, theirs, "resumed")


# ----------------------------------------------------------------------------- BatchNorm
BN_CASES = [
    ("1d-NC", "BatchNorm1d", (8, 3), {}),
    ("1d-NCL", "BatchNorm1d", (4, 3, 5), {}),
    ("2d", "BatchNorm2d", (3, 2, 4, 5), {}),
    ("3d", "BatchNorm3d", (2, 2, 3, 4, 3), {}),
    ("2d-momentum-none", "BatchNorm2d", (3, 2, 4, 5), dict(momentum=None)),
    ("2d-no-affine-eps", "BatchNorm2d", (3, 2, 4, 5), dict(affine=False, eps=1e-3)),
    ("2d-no-running-stats", "BatchNorm2d", (3, 2, 4, 5), dict(track_running_stats=False)),
]


@pytest.mark.parametrize("label, cls, shape, kwargs", BN_CASES, ids=[c[0] for c in BN_CASES])
def test_batchnorm_matches_torch(label, cls, shape, kwargs):
    channels = shape[1]
    ours = getattr(nn, cls)(channels, **kwargs).double()
    theirs = getattr(torch.nn, cls)(channels, **kwargs).double()
    gen = np.random.default_rng(3)
    if ours.affine:
        weight, bias = gen.uniform(0.5, 2, channels), gen.standard_normal(channels)
        ours.load_state_dict({**ours.state_dict(), "weight": tnd.tensor(weight), "bias": tnd.tensor(bias)})
        with torch.no_grad():
            theirs.weight.copy_(torch.from_numpy(weight))
            theirs.bias.copy_(torch.from_numpy(bias))
    for mode in ["train", "train", "train", "eval", "eval"]:
        ours.train(mode == "train")
        theirs.train(mode == "train")
        x = gen.standard_normal(shape) * 3 + 1
        upstream = gen.standard_normal(shape)
        x_ours, x_theirs = tnd.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y_ours, y_theirs = ours(x_ours), theirs(x_theirs)
        np.testing.assert_allclose(y_ours.numpy(), y_theirs.detach().numpy(), rtol=RTOL, atol=ATOL)
        (y_ours * tnd.tensor(upstream)).sum().backward()
        (y_theirs * torch.from_numpy(upstream)).sum().backward()
        np.testing.assert_allclose(x_ours.grad.numpy(), x_theirs.grad.numpy(), rtol=1e-9, atol=1e-11)
        for (key, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
            np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=key)
            p.grad = None
            q.grad = None
        mine, other = ours.state_dict(), theirs.state_dict()
        assert list(mine) == list(other)
        for key in mine:
            np.testing.assert_allclose(mine[key].numpy(), other[key].numpy(), rtol=RTOL, atol=ATOL,
                                       err_msg=f"{mode}: {key}")
