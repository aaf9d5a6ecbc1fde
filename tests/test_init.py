"""nn.init: gains, fans, the distributions' bounds and spreads (statistical checks on many
samples), in-place semantics, seeding, and the default initialisation of the layers."""
import math

import numpy as np
import pytest

import tinygrad_nd as tnd
from tinygrad_nd import nn
from tinygrad_nd.nn import init


@pytest.mark.parametrize("name, param, expected", [
    ("linear", None, 1.0), ("conv2d", None, 1.0), ("sigmoid", None, 1.0), ("tanh", None, 5 / 3),
    ("relu", None, math.sqrt(2)), ("leaky_relu", None, math.sqrt(2 / (1 + 0.01 ** 2))),
    ("leaky_relu", math.sqrt(5), math.sqrt(1 / 3)), ("selu", None, 0.75),
])
def test_calculate_gain(name, param, expected):
    assert init.calculate_gain(name, param) == pytest.approx(expected, rel=1e-15)


def test_calculate_gain_rejects_unknown():
    with pytest.raises(ValueError, match="unsupported nonlinearity 'gelu'"):
        init.calculate_gain("gelu")
    with pytest.raises(ValueError, match="not a number"):
        init.calculate_gain("leaky_relu", "x")


def test_fans():
    assert init._calculate_fan_in_and_fan_out(tnd.empty(7, 3)) == (3, 7)
    assert init._calculate_fan_in_and_fan_out(tnd.empty(8, 4, 3, 5)) == (60, 120)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.kaiming_uniform_(tnd.empty(5))
    with pytest.raises(ValueError, match="mode must be"):
        init.kaiming_normal_(tnd.empty(5, 5), mode="fan_avg")


SHAPE = (400, 100, 3, 3)  # fan_in 900, fan_out 3600, 360,000 samples
FAN_IN, FAN_OUT = 900, 3600


@pytest.mark.parametrize("fill, low, high, std", [
    (lambda t: init.uniform_(t, -2.0, 3.0), -2.0, 3.0, 5 / math.sqrt(12)),
    (lambda t: init.xavier_uniform_(t, gain=2.0), -2 * math.sqrt(6 / (FAN_IN + FAN_OUT)),
     2 * math.sqrt(6 / (FAN_IN + FAN_OUT)), 2 * math.sqrt(2 / (FAN_IN + FAN_OUT))),
    (lambda t: init.kaiming_uniform_(t, nonlinearity="relu"), -math.sqrt(6 / FAN_IN),
     math.sqrt(6 / FAN_IN), math.sqrt(2 / FAN_IN)),
    (lambda t: init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu"), -math.sqrt(6 / FAN_OUT),
     math.sqrt(6 / FAN_OUT), math.sqrt(2 / FAN_OUT)),
    (lambda t: init.kaiming_uniform_(t, a=math.sqrt(5)), -1 / math.sqrt(FAN_IN), 1 / math.sqrt(FAN_IN),
     1 / math.sqrt(3 * FAN_IN)),
], ids=["uniform", "xavier_uniform", "kaiming_uniform-relu", "kaiming_uniform-fan_out", "kaiming_uniform-a5"])
def test_uniform_initialisers_fill_their_interval(fill, low, high, std):
    t = tnd.empty(*SHAPE)
    values = fill(t).numpy().astype(np.float64)
    assert values.min() >= low and values.max() <= high
    width = high - low  # with 360,000 samples both ends are approached within 0.1% of the width
    assert values.min() < low + 1e-3 * width and values.max() > high - 1e-3 * width
    assert abs(values.mean() - (low + high) / 2) < 0.01 * width
    assert values.std() == pytest.approx(std, rel=0.01)


@pytest.mark.parametrize("fill, mean, std", [
    (lambda t: init.normal_(t, 1.5, 0.2), 1.5, 0.2),
    (lambda t: init.xavier_normal_(t), 0.0, math.sqrt(2 / (FAN_IN + FAN_OUT))),
    (lambda t: init.kaiming_normal_(t, nonlinearity="relu"), 0.0, math.sqrt(2 / FAN_IN)),
    (lambda t: init.kaiming_normal_(t, a=0.2, mode="fan_out"), 0.0,
     math.sqrt(2 / (1 + 0.04)) / math.sqrt(FAN_OUT)),
], ids=["normal", "xavier_normal", "kaiming_normal-relu", "kaiming_normal-leaky-fan_out"])
def test_normal_initialisers_have_the_right_spread(fill, mean, std):
    values = fill(tnd.empty(*SHAPE)).numpy().astype(np.float64)
    # the standard error of the mean is std / 600; of the std about std / 850
    assert abs(values.mean() - mean) < 5 * std / 600
    assert values.std() == pytest.approx(std, rel=0.01)
    kurtosis = ((values - values.mean()) ** 4).mean() / values.var() ** 2
    assert kurtosis == pytest.approx(3.0, abs=0.05)  # normal, not uniform (1.8)


def test_constant_zeros_ones():
    t = tnd.empty(2, 3, dtype=tnd.float64)
    assert init.constant_(t, 2.5) is t and t.tolist() == [[2.5] * 3] * 2 and t.dtype == tnd.float64
    assert init.zeros_(t).tolist() == [[0.0] * 3] * 2
    assert init.ones_(t).tolist() == [[1.0] * 3] * 2


def test_in_place_keeps_the_parameter_and_records_nothing():
    p = nn.Parameter(tnd.zeros(4, 3, dtype=tnd.float64))
    out = init.kaiming_normal_(p)
    assert out is p and isinstance(p, nn.Parameter)
    assert p.requires_grad and p.grad_fn is None and p.dtype == tnd.float64 and p.shape == (4, 3)
    assert p.numpy().any()


def test_seeding_reproduces_and_generator_argument():
    tnd.manual_seed(3)
    a = init.xavier_uniform_(tnd.empty(5, 5)).numpy()
    tnd.manual_seed(3)
    b = init.xavier_uniform_(tnd.empty(5, 5)).numpy()
    np.testing.assert_array_equal(a, b)
    c = init.xavier_uniform_(tnd.empty(5, 5)).numpy()
    assert not np.array_equal(a, c)
    g1 = init.normal_(tnd.empty(4), generator=np.random.default_rng(9)).numpy()
    g2 = init.normal_(tnd.empty(4), generator=np.random.default_rng(9)).numpy()
    np.testing.assert_array_equal(g1, g2)


def test_models_are_reproducible_from_the_seed():
    def build():
        tnd.manual_seed(42)
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.Linear(4, 2))

    first, second = build().state_dict(), build().state_dict()
    for key in first:
        np.testing.assert_array_equal(first[key].numpy(), second[key].numpy())


def test_empty_tensors_are_left_alone():
    assert init.kaiming_uniform_(tnd.empty(0, 3)).shape == (0, 3)


def test_argument_errors():
    with pytest.raises(ValueError, match="a <= b"):
        init.uniform_(tnd.empty(2), 1.0, 0.0)
    with pytest.raises(ValueError, match="std must be >= 0"):
        init.normal_(tnd.empty(2), std=-1.0)
    with pytest.raises(TypeError, match="expected a Tensor"):
        init.zeros_([1.0])


# ----------------------------------------------------------------------------- default layer init
@pytest.mark.parametrize("make, fan_in", [
    (lambda: nn.Linear(300, 400), 300),
    (lambda: nn.Conv2d(12, 64, 5), 12 * 25),
    (lambda: nn.Conv1d(8, 240, 5, groups=4), 2 * 5),
    (lambda: nn.ConvNd(4, 32, (2, 3, 2, 2)), 4 * 24),
], ids=["linear", "conv2d", "conv1d-groups", "convnd"])
def test_default_init_is_uniform_on_one_over_sqrt_fan_in(make, fan_in):
    tnd.manual_seed(0)
    layer = make()
    bound = 1 / math.sqrt(fan_in)
    w, b = layer.weight.numpy(), layer.bias.numpy()
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(w).max() > 0.99 * bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.06)  # >= 2,400 samples
    assert np.abs(b).max() > 0.5 * bound


@pytest.mark.torch
@pytest.mark.parametrize("name, args, fan_in", [("Linear", (300, 400), 300), ("Conv2d", (12, 64, 5), 300),
                                                ("Conv1d", (8, 60, 3), 24), ("Conv3d", (4, 16, 3), 108)])
def test_default_init_bounds_match_torch(name, args, fan_in):
    torch = pytest.importorskip("torch")
    tnd.manual_seed(0)
    torch.manual_seed(0)
    ours, theirs = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
    assert ours.weight.shape == tuple(theirs.weight.shape)
    bound = 1 / math.sqrt(fan_in)
    for key in ("weight", "bias"):
        mine, other = getattr(ours, key).numpy(), getattr(theirs, key).detach().numpy()
        assert np.abs(mine).max() <= bound and np.abs(other).max() <= bound * (1 + 1e-6)  # one interval
        if key == "weight":  # thousands of samples: both fill it, with the same spread
            assert np.abs(mine).max() > 0.99 * bound and np.abs(other).max() > 0.99 * bound
            assert mine.std() == pytest.approx(other.std(), rel=0.05)


def test_batchnorm_starts_at_identity():
    bn = nn.BatchNorm2d(3)
    assert bn.weight.tolist() == [1.0] * 3 and bn.bias.tolist() == [0.0] * 3
    assert bn.running_mean.tolist() == [0.0] * 3 and bn.running_var.tolist() == [1.0] * 3
    assert bn.num_batches_tracked.item() == 0
