"""Max and average pooling beyond the op-case table: PyTorch as the oracle on every device, the
conventions with exact expected gradients (ties, NaN, -inf, overlapping windows, per-example
maxima, ceil mode, padding), return_indices, and the wrappers' error messages."""
import numpy as np
import pytest

import tinygrad_nd as tnd
from op_cases_conv import ref_avg_pool, ref_max_pool
from tinygrad_nd import backend
from tinygrad_nd.nn import functional_conv as F
from tinygrad_nd.ops import _windows as win

try:
    import torch
except ImportError:  # the exact-gradient and numpy-reference tests below still run
    torch = None
needs_torch = [pytest.mark.torch, pytest.mark.skipif(torch is None, reason="needs torch")]

# id, input shape, kernel, stride, padding, dilation, ceil_mode
GEOMETRIES = [
    ("1d-k2", (2, 3, 10), 2, None, 0, 1, False),
    ("1d-k3s2p1-ceil", (2, 2, 10), 3, 2, 1, 1, True),
    ("2d-k2", (2, 3, 8, 6), 2, None, 0, 1, False),
    ("2d-k3s1p1-overlap", (2, 2, 6, 7), 3, 1, 1, 1, False),
    ("2d-k3s2-ceil-uneven", (2, 2, 7, 8), (3, 2), 2, (1, 0), 1, True),
    ("2d-k2d2", (1, 2, 7, 7), 2, (1, 2), (1, 0), (2, 1), False),
    ("2d-k3s3p1-ceil", (1, 3, 8, 7), 3, 3, 1, 1, True),
    ("3d-k2s2p1-ceil", (2, 2, 5, 4, 5), (2, 3, 2), 2, (1, 1, 0), 1, True),
    ("3d-k3s2", (1, 2, 7, 7, 6), 3, 2, 0, 1, False),
    ("2d-unbatched", (3, 6, 5), 2, 1, 0, 1, False),
]
IDS = [g[0] for g in GEOMETRIES]


def _n(shape, kernel):
    return len(kernel) if isinstance(kernel, tuple) else len(shape) - 2 if len(shape) > 3 else 1


def _spatial_dims(geometry):
    _, shape, kernel, *_ = geometry
    if isinstance(kernel, tuple):
        return len(kernel)
    return {"1d": 1, "2d": 2, "3d": 3}[geometry[0][:2]]


def _distinct(shape, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 3.0).astype(dtype)


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)


@pytest.fixture(params=["small", "general"])
def route(request, monkeypatch):
    """Both routes of max pooling: the one-gather route (small inputs whose windows lie inside
    the input) and, with ``_windows.SMALL_ELEMENTS = 0``, the loop over kernel offsets."""
    if request.param == "general":
        monkeypatch.setattr(win, "SMALL_ELEMENTS", 0)
    return request.param


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=IDS)
@pytest.mark.parametrize("", [pytest.param(marks=needs_torch)])
def test_max_pool_matches_torch(geometry, dtype, device, route):
    _, shape, kernel, stride, padding, dilation, ceil_mode = geometry
    n = _spatial_dims(geometry)
    x = _distinct(shape, dtype=dtype)
    tx = torch.tensor(x, requires_grad=True)
    ty, tindex = getattr(torch.nn.functional, f"max_pool{n}d")(
        tx, kernel, stride, padding, dilation, ceil_mode=ceil_mode, return_indices=True)
    v = np.random.default_rng(1).standard_normal(ty.shape).astype(dtype)
    (ty * torch.tensor(v)).sum().backward()

    mx = tnd.tensor(x, device=device, requires_grad=True)
    y, index = getattr(F, f"max_pool{n}d")(mx, kernel, stride, padding, dilation,
                                           ceil_mode=ceil_mode, return_indices=True)
    (y * tnd.tensor(v, device=device)).sum().backward()
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    assert index.dtype == tnd.int64 and not index.requires_grad
    np.testing.assert_array_equal(index.numpy(), tindex.numpy())
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), **_tol(dtype))


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("geometry", [g for g in GEOMETRIES if g[5] == 1],
                         ids=[g[0] for g in GEOMETRIES if g[5] == 1])
@pytest.mark.parametrize("", [pytest.param(marks=needs_torch)])
def test_avg_pool_matches_torch(geometry, dtype, count_include_pad, device):
    _, shape, kernel, stride, padding, _, ceil_mode = geometry
    n = _spatial_dims(geometry)
    x = np.random.default_rng(2).standard_normal(shape).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    ty = getattr(torch.nn.functional, f"avg_pool{n}d")(
        tx, kernel, stride, padding, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    v = np.random.default_rng(3).standard_normal(ty.shape).astype(dtype)
    (ty * torch.tensor(v)).sum().backward()

    mx = tnd.tensor(x, device=device, requires_grad=True)
    y = getattr(F, f"avg_pool{n}d")(mx, kernel, stride, padding, ceil_mode=ceil_mode,
                                    count_include_pad=count_include_pad)
    (y * tnd.tensor(v, device=device)).sum().backward()
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **_tol(dtype))
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), **_tol(dtype))


def _as_tuple(value, n):
    return (value,) * n if isinstance(value, int) else tuple(value)


@pytest.mark.parametrize("geometry", [g for g in GEOMETRIES if len(g[1]) > 3],
                         ids=[g[0] for g in GEOMETRIES if len(g[1]) > 3])
def test_values_match_numpy_reference(geometry):
    _, shape, kernel, stride, padding, dilation, ceil_mode = geometry
    n = _spatial_dims(geometry)
    k = _as_tuple(kernel, n)
    s, p, d = k if stride is None else _as_tuple(stride, n), _as_tuple(padding, n), \
        _as_tuple(dilation, n)
    x = _distinct(shape)
    y = F.max_pool_nd(tnd.tensor(x), k, s, p, d, ceil_mode=ceil_mode)
    np.testing.assert_array_equal(y.numpy(), ref_max_pool(x, k, s, p, d, ceil_mode))
    if d == (1,) * n:
        for include in (True, False):
            y = F.avg_pool_nd(tnd.tensor(x), k, s, p, ceil_mode, include)
            np.testing.assert_allclose(y.numpy(), ref_avg_pool(x, k, s, p, ceil_mode, include),
                                       rtol=1e-12)


# ----------------------------------------------------------------------------- conventions
def _grad_of_sum(fn, x):
    x = tnd.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    y = fn(x)
    y.sum().backward()
    return y.numpy(), x.grad.numpy()


def test_ties_go_to_the_first_maximum_in_row_major_order(route):
    x = [[[[1.0, 2.0, 0.0, 0.0],
           [2.0, 2.0, 0.0, 0.0]]]]
    y, g = _grad_of_sum(lambda t: F.max_pool2d(t, 2), x)
    assert y.tolist() == [[[[2.0, 0.0]]]]
    assert g.tolist() == [[[[0.0, 1.0, 1.0, 0.0],
                            [0.0, 0.0, 0.0, 0.0]]]]


def test_nan_propagates_and_takes_the_gradient(route):
    # as PyTorch's CPU kernel: NaN beats every number, and a later NaN beats an earlier one
    x = [[[5.0, np.nan, 1.0, 7.0, np.nan, np.nan]]]
    y, g = _grad_of_sum(lambda t: F.max_pool1d(t, 3), x)
    assert np.isnan(y).all()
    assert g.tolist() == [[[0.0, 1.0, 0.0, 0.0, 0.0, 1.0]]]
    _, index = F.max_pool1d(tnd.tensor(x), 3, return_indices=True)
    assert index.tolist() == [[[1, 5]]]


def test_padding_is_minus_inf_and_never_chosen():
    x = -np.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # all negative: zero padding would win
    y, g = _grad_of_sum(lambda t: F.max_pool2d(t, 3, 2, 1), x)
    assert y.tolist() == [[[[-1.0, -2.0], [-4.0, -5.0]]]]
    assert g.tolist() == [[[[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]]]
    # a window whose inside is all -inf points at its first element inside, as PyTorch
    y, index = F.max_pool2d(tnd.full((1, 1, 3, 3), -np.inf), 3, 2, 1, return_indices=True)
    assert index.tolist() == [[[[0, 1], [3, 4]]]]


def test_overlapping_windows_accumulate(route):
    x = [[[0.0, 1.0, 9.0, 2.0, 3.0]]]
    y, g = _grad_of_sum(lambda t: F.max_pool1d(t, 3, 1), x)
    assert y.tolist() == [[[9.0, 9.0, 9.0]]]
    assert g.tolist() == [[[0.0, 0.0, 3.0, 0.0, 0.0]]]


def test_each_example_and_channel_has_its_own_maximum(route):
    x = np.zeros((2, 2, 1, 2))
    x[0, 0, 0, 0] = x[0, 1, 0, 1] = x[1, 0, 0, 1] = x[1, 1, 0, 0] = 1.0
    _, g = _grad_of_sum(lambda t: F.max_pool2d(t, (1, 2)), x)
    np.testing.assert_array_equal(g, x)


def test_ceil_mode_last_window_must_start_inside():
    # length 5, kernel 2, stride 2, padding 1: ceil would give 4 windows, but the 4th would
    # start at 6 - 1 = 5, past the input: PyTorch drops it
    x = tnd.arange(5.0).reshape(1, 1, 5)
    assert F.max_pool1d(x, 2, 2, 1, ceil_mode=True).tolist() == [[[0.0, 2.0, 4.0]]]
    assert F.max_pool1d(x, 2, 2, 0, ceil_mode=True).tolist() == [[[1.0, 3.0, 4.0]]]
    assert F.max_pool1d(x, 2, 2, 0).tolist() == [[[1.0, 3.0]]]


def test_avg_pool_divisors():
    x = tnd.ones(1, 1, 5)
    # windows [-1, 2) [1, 4) [3, 6): with padding counted, the first holds a zero
    np.testing.assert_allclose(F.avg_pool1d(x, 3, 2, 1).numpy(), [[[2 / 3, 1.0, 2 / 3]]])
    assert F.avg_pool1d(x, 3, 2, 1, count_include_pad=False).tolist() == [[[1.0, 1.0, 1.0]]]
    # ceil mode: the last window [4, 6) overhangs by one, which never counts
    x = tnd.tensor([[[1.0, 2.0, 3.0, 4.0, 5.0]]])
    assert F.avg_pool1d(x, 2, 2, ceil_mode=True).tolist() == [[[1.5, 3.5, 5.0]]]


def test_stride_defaults_to_kernel_and_generic_rank():
    x = tnd.randn(2, 3, 6, 4)
    assert F.max_pool_nd(x, 2).shape == (2, 3, 3, 2)
    assert F.max_pool_nd(x, (2, 2), stride=None).shape == (2, 3, 3, 2)
    with pytest.raises(ValueError, match=r"1-d window needs an input of shape \(batch, C, D1\)"):
        F.max_pool_nd(x, (3,))  # a tuple kernel fixes N; the input must then be N+1 or N+2-d
    assert F.avg_pool_nd(tnd.randn(3, 6, 4), (2, 2)).shape == (3, 3, 2)  # unbatched


def test_second_order_through_a_smooth_head(route):
    x = tnd.tensor(_distinct((1, 2, 4, 4)), requires_grad=True)
    assert tnd.gradgradcheck(lambda t: F.max_pool2d(t, 2, 1).sigmoid(), (x,))
    assert tnd.gradgradcheck(lambda t: (F.avg_pool2d(t, 3, 2, 1, ceil_mode=True) ** 2), (x,))


@pytest.mark.parametrize("", [pytest.param(marks=needs_torch)])
def test_double_backward_matches_torch(route):
    x = _distinct((2, 2, 5, 5))

    def run(lib, Fn, x):
        y = Fn.max_pool2d(x, 3, 1, 1).sigmoid() + Fn.avg_pool2d(x, 2, 1, ceil_mode=True).sum()
        (g,) = lib.autograd.grad((y * y).sum(), [x], create_graph=True)
        (g * g).sum().backward()
        return x.grad.numpy()

    mine = run(tnd, F, tnd.tensor(x, requires_grad=True))
    theirs = run(torch, torch.nn.functional, torch.tensor(x, requires_grad=True))
    np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)


def test_no_grad_and_graph_node():
    x = tnd.randn(1, 1, 4, 4, requires_grad=True)
    y = F.max_pool2d(x, 2)
    assert y.grad_fn.name == "max_pool_nd"
    assert y.grad_fn.params == dict(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0),
                                    dilation=(1, 1), ceil_mode=False)
    assert F.avg_pool2d(x, 2).grad_fn.params == dict(
        kernel_size=(2, 2), stride=(2, 2), padding=(0, 0), ceil_mode=False,
        count_include_pad=True)
    with tnd.no_grad():
        assert F.max_pool2d(x, 2).grad_fn is None


# ----------------------------------------------------------------------------- errors
def _x(*shape):
    return tnd.zeros(*shape)


ERRORS = [
    ("padding-over-half", lambda: F.max_pool2d(_x(1, 1, 6, 6), 3, padding=2), ValueError,
     ["max_pool2d", "padding (2, 2)", "half", "(3, 3)"]),
    ("avg-padding-over-half", lambda: F.avg_pool1d(_x(1, 1, 6), 2, padding=2), ValueError,
     ["avg_pool1d", "padding"]),
    ("zero-kernel", lambda: F.max_pool1d(_x(1, 1, 6), 0), ValueError,
     ["max_pool1d", "kernel_size", "positive"]),
    ("zero-stride", lambda: F.max_pool1d(_x(1, 1, 6), 2, 0), ValueError,
     ["max_pool1d", "stride", "positive"]),
    ("zero-dilation", lambda: F.max_pool_nd(_x(1, 1, 6), 2, dilation=0), ValueError,
     ["max_pool_nd", "dilation", "positive"]),
    ("negative-padding", lambda: F.avg_pool_nd(_x(1, 1, 6), 2, padding=-1), ValueError,
     ["avg_pool_nd", "padding", "non-negative"]),
    ("too-small", lambda: F.max_pool2d(_x(1, 1, 2, 2), 3), ValueError,
     ["max_pool2d", "(1, 1, 2, 2)", "too small"]),
    ("rank", lambda: F.max_pool2d(_x(1, 1, 1, 4, 4), 2), ValueError,
     ["max_pool2d", "(1, 1, 1, 4, 4)"]),
    ("rank-generic", lambda: F.max_pool_nd(_x(4, 4), (2, 2, 2)), ValueError,
     ["max_pool_nd", "(4, 4)"]),
    ("kernel-length", lambda: F.avg_pool2d(_x(1, 1, 4, 4), (2, 2, 2)), ValueError,
     ["avg_pool2d", "kernel_size", "2 ints"]),
    ("integer-avg", lambda: F.avg_pool1d(tnd.zeros(1, 1, 4, dtype=tnd.int64), 2), TypeError,
     ["avg_pool_nd", "int64"]),
]


@pytest.mark.parametrize("call,exception,fragments", [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_errors_name_the_op_and_shapes(call, exception, fragments):
    with pytest.raises(exception) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


# ----------------------------------------------------------------------------- routes
# id, input shape, kernel, stride, dilation, ceil_mode: every window inside the input
SMALL_GEOMETRIES = [
    ("1d-k3s2", (2, 3, 9), (3,), (2,), (1,), False),
    ("2d-k2", (2, 2, 6, 4), (2, 2), (2, 2), (1, 1), False),
    ("2d-k3s1-overlap", (1, 2, 5, 6), (3, 3), (1, 1), (1, 1), False),
    ("2d-k2d2-s3", (1, 3, 7, 8), (2, 2), (3, 2), (2, 3), False),
    ("2d-k3s2-ceil", (2, 1, 7, 9), (3, 3), (2, 2), (1, 1), True),
    ("3d-k2", (1, 2, 4, 4, 6), (2, 2, 3), (2, 2, 3), (1, 1, 1), False),
]


def _ties_and_specials(shape, dtype, seed):
    """Small integers (many ties in every window), with NaN, +-inf and -0.0 sprinkled in."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, shape).astype(dtype)
    if np.dtype(dtype).kind == "f":
        flat = x.reshape(-1)
        picks = rng.choice(flat.size, size=flat.size // 4, replace=False)
        flat[picks[0::4]], flat[picks[1::4]] = np.nan, -np.inf
        flat[picks[2::4]], flat[picks[3::4]] = np.inf, -0.0
    return x


def _both_routes(monkeypatch, fn):
    small = fn()
    monkeypatch.setattr(win, "SMALL_ELEMENTS", 0)
    general = fn()
    monkeypatch.undo()
    return small, general


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
@pytest.mark.parametrize("geometry", SMALL_GEOMETRIES, ids=[g[0] for g in SMALL_GEOMETRIES])
def test_small_route_matches_the_offset_loop(geometry, dtype, device, monkeypatch):
    # values (bit for bit: NaN, signed zeros), the window choice, the scatter and the gather
    _, shape, kernel, stride, dilation, ceil_mode = geometry
    padding = (0,) * len(kernel)
    x = tnd.tensor(_ties_and_specials(shape, dtype, seed=len(shape)), device=device).data
    xp = backend.array_module(x)
    out, small = win.pool_plan(shape, kernel, stride, padding, dilation, ceil_mode,
                              win.SMALL_ELEMENTS)
    assert small  # the gather route is the one taken by default
    gy = tnd.tensor(np.random.default_rng(1).standard_normal((shape[0], shape[1], *out)),
                    device=device).data

    def run():
        y, argk = win.max_pool(xp, x, kernel, stride, padding, dilation, ceil_mode)
        gather = win.window_gather(xp, x, argk, kernel, stride, padding, dilation)
        scatter = win.window_scatter(xp, gy, argk, shape, kernel, stride, padding, dilation)
        return [backend.to_host(a) for a in (y, argk, gather, scatter)]

    small, general = _both_routes(monkeypatch, run)
    for a, b in zip(small, general):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
        if a.dtype.kind == "f":
            np.testing.assert_array_equal(np.signbit(a), np.signbit(b))
    np.testing.assert_array_equal(small[2], small[0])  # the gather at the choice is the max


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("geometry", SMALL_GEOMETRIES, ids=[g[0] for g in SMALL_GEOMETRIES])
@pytest.mark.parametrize("", [pytest.param(marks=needs_torch)])
def test_small_route_ties_and_nan_match_torch(geometry, dtype, device):
    # PyTorch's CPU kernel as the oracle of the tie and NaN rules: same values, same indices,
    # same gradient
    _, shape, kernel, stride, dilation, ceil_mode = geometry
    x = _ties_and_specials(shape, dtype, seed=3)
    x[np.isinf(x)] = 7.0  # torch's gradient through +-inf windows is not what is tested here
    n = len(kernel)
    tx = torch.tensor(x, requires_grad=True)
    ty, tindex = getattr(torch.nn.functional, f"max_pool{n}d")(
        tx, kernel, stride, 0, dilation, ceil_mode=ceil_mode, return_indices=True)
    ty.sum().backward()
    mx = tnd.tensor(x, device=device, requires_grad=True)
    y, index = F.max_pool_nd(mx, kernel, stride, 0, dilation, ceil_mode=ceil_mode,
                             return_indices=True)
    y.sum().backward()
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    np.testing.assert_array_equal(index.numpy(), tindex.numpy())
    np.testing.assert_array_equal(mx.grad.numpy(), tx.grad.numpy())


def test_small_route_is_not_taken_with_padding_or_overhang():
    # padding and ceil-mode overhang keep the offset loop (it never materialises them)
    assert not win.pool_plan((1, 1, 6, 6), (3, 3), (2, 2), (1, 1), (1, 1), False, 4096)[1]
    assert not win.pool_plan((1, 1, 5), (2,), (2,), (0,), (1,), True, 4096)[1]
    assert not win.pool_plan((64, 32, 32, 32), (2, 2), (2, 2), (0, 0), (1, 1), False, 4096)[1]
    assert win.pool_plan((1, 1, 5), (2,), (2,), (0,), (1,), False, 4096)[1]
