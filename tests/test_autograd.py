"""Engine tests: the tape's semantics (accumulation, retain/create graph, hooks, grad mode,
freeing, anomaly mode), conventions at kinks and ties, and errors on bad input."""
import gc
import warnings
import weakref

import numpy as np
import pytest

import tinygrad_nd as tnd
import tinygrad_nd.nn.functional as F
from tinygrad_nd.ops import elementwise as E


def leaf(values, dtype=tnd.float64):
    return tnd.tensor(values, dtype=dtype, requires_grad=True)


# ----------------------------------------------------------------------------- accumulation
def test_fan_out_accumulates_within_one_pass():
    x = leaf([1.0, -2.0, 3.0])
    y = x * x + x  # x used three times
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 2 * x.numpy() + 1)


def test_a_node_runs_once_after_all_its_consumers_however_deep_they_are():
    # a is consumed by a short path (c) and by a long one (b1 -> b2 -> b3) created in between:
    # its rule must run once, with both paths' gradients summed
    x = leaf([0.5, -1.5])
    a = x.exp()
    c = a * 2.0
    b = ((a * a).tanh() * a).tanh()
    loss = (c * b + a).sum()
    calls = []
    a.grad_fn.add_hook(lambda g: calls.append(g.numpy().copy()))
    loss.backward()
    assert len(calls) == 1
    xs = x.numpy()
    eps = 1e-6

    def f(v):
        av = np.exp(v)
        return np.sum(2 * av * np.tanh(np.tanh(av * av) * av) + av)
    numeric = [(f(xs + eps * e) - f(xs - eps * e)) / (2 * eps) for e in np.eye(2)]
    np.testing.assert_allclose(x.grad.numpy(), numeric, rtol=1e-6)


def test_leaf_gradients_accumulate_across_backward_calls_until_cleared():
    x = leaf([1.0, 2.0])
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 6.0])
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_retain_graph_allows_a_second_backward():
    x = leaf([2.0])
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)


def test_second_backward_through_a_freed_graph_raises():
    x = leaf([2.0])
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_non_leaf_grad_is_not_kept_unless_retained():
    x = leaf([1.0, 2.0])
    h = x * 2
    k = x * 3
    k.retain_grad()
    (h * k).sum().backward()
    assert h.grad is None
    np.testing.assert_array_equal(k.grad.numpy(), h.numpy())


def test_ten_thousand_op_chain_has_no_recursion_limit():
    x = leaf([1.0])
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 10_000], rtol=1e-10)


def test_saved_arrays_are_released_by_reference_counting_after_backward():
    gc.collect()
    gc.disable()
    try:
        x = leaf(np.random.default_rng(0).standard_normal(1000))
        hidden = x.exp()  # Exp saves its output array
        saved = weakref.ref(hidden.grad_fn._output)
        loss = (hidden.sigmoid() * x).sum()
        del hidden
        assert saved() is not None
        loss.backward()
        assert saved() is None, "the graph kept a saved array alive after backward"
        assert x.grad is not None
        # and a whole graph dropped without backward is freed by refcounting too
        y = (x.tanh() * 2).sum()
        node = weakref.ref(y.grad_fn)
        del y
        assert node() is None
    finally:
        gc.enable()


def test_nodes_hold_no_reference_to_their_outputs():
    x = leaf([1.0, 2.0])
    y = x.exp()
    ref = weakref.ref(y)
    node = y.grad_fn
    del y
    assert ref() is None
    assert node.output().numpy().tolist() == pytest.approx(np.exp([1.0, 2.0]).tolist())


# ----------------------------------------------------------------------------- grad mode
def test_no_grad_records_nothing_and_nests_with_enable_grad():
    x = leaf([1.0])
    with tnd.no_grad():
        assert not tnd.is_grad_enabled()
        y = x * 2
        with tnd.enable_grad():
            z = x * 2
    assert tnd.is_grad_enabled()
    assert y.grad_fn is None and not y.requires_grad
    assert z.grad_fn is not None and z.requires_grad


def test_no_grad_as_a_decorator_restores_mode_after_an_exception():
    @tnd.no_grad()
    def f(x):
        assert not tnd.is_grad_enabled()
        raise KeyError("boom")

    with pytest.raises(KeyError):
        f(leaf([1.0]))
    assert tnd.is_grad_enabled()


def test_result_records_only_when_an_input_requires_grad():
    a = tnd.tensor([1.0])
    assert (a * 2).grad_fn is None
    assert (a * leaf([1.0])).grad_fn is not None


def test_detach_cuts_the_graph():
    x = leaf([3.0])
    y = (x * x).detach() * x
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [9.0])
    assert (x * 1).detach().is_leaf


# ----------------------------------------------------------------------------- hooks
def test_leaf_hook_sees_and_replaces_the_gradient():
    x = leaf([1.0, 2.0])
    seen = []
    x.register_hook(lambda g: seen.append(g.numpy().copy()))
    x.register_hook(lambda g: g * 10)
    (x * x).sum().backward()
    np.testing.assert_array_equal(seen[0], [2.0, 4.0])
    np.testing.assert_array_equal(x.grad.numpy(), [20.0, 40.0])


def test_non_leaf_hook_changes_what_flows_upstream():
    x = leaf([1.0, 2.0])
    h = x * 2
    h.register_hook(lambda g: g * 0.5)
    (h * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_hook_returning_the_wrong_shape_raises():
    x = leaf([1.0, 2.0])
    x.register_hook(lambda g: g.sum())
    with pytest.raises(RuntimeError, match=r"shape \(\).*expected \(2,\)"):
        (x * x).sum().backward()


# ----------------------------------------------------------------------------- higher order
def test_hessian_vector_product_with_create_graph():
    # f(x) = sum(x^3) + x0 * x1, H = diag(6x) + [[0, 1], [1, 0]]
    x = leaf([1.0, 2.0])
    v = tnd.tensor([1.0, -1.0], dtype=tnd.float64)
    f = (x ** 3).sum() + x[0] * x[1]
    (g,) = tnd.autograd.grad(f, x, create_graph=True)
    (hv,) = tnd.autograd.grad((g * v).sum(), x)
    np.testing.assert_allclose(hv.numpy(), [6 * 1 * 1 - 1, -6 * 2 + 1])


def test_gradient_penalty_trains_through_the_gradient_norm():
    w = leaf([[0.5, -1.0], [2.0, 0.3]])
    x = leaf([[1.0, 2.0]])
    out = (x @ w).tanh().sum()
    (gx,) = tnd.autograd.grad(out, x, create_graph=True)
    penalty = ((gx * gx).sum() - 1.0) ** 2
    penalty.backward()
    assert w.grad is not None and np.all(np.isfinite(w.grad.numpy()))
    # check against finite differences of the penalty as a function of w
    def penalty_of(w_):
        x_ = leaf([[1.0, 2.0]])
        (g,) = tnd.autograd.grad((x_ @ w_).tanh().sum(), x_, create_graph=True)
        return ((g * g).sum() - 1.0) ** 2
    assert tnd.gradcheck(penalty_of, (leaf(w.numpy()),))


def test_create_graph_gives_a_differentiable_leaf_grad():
    x = leaf([2.0])
    (x ** 4).sum().backward(create_graph=True)
    assert x.grad.grad_fn is not None
    (g2,) = tnd.autograd.grad(x.grad.sum(), x)
    np.testing.assert_allclose(g2.numpy(), [12 * 4.0])


def test_autograd_grad_leaves_dot_grad_untouched_and_handles_intermediates():
    x = leaf([1.0, 2.0])
    h = x * x
    y = (h * 3).sum()
    gx, gh = tnd.autograd.grad(y, (x, h))
    assert x.grad is None
    np.testing.assert_array_equal(gh.numpy(), [3.0, 3.0])
    np.testing.assert_array_equal(gx.numpy(), [6.0, 12.0])


def test_autograd_grad_unused_input():
    x, z = leaf([1.0]), leaf([1.0])
    with pytest.raises(RuntimeError, match="not used"):
        tnd.autograd.grad((x * 2).sum(), (x, z), retain_graph=True)
    assert tnd.autograd.grad((x * 2).sum(), (x, z), allow_unused=True)[1] is None


# ----------------------------------------------------------------------------- anomaly mode
@pytest.mark.filterwarnings("ignore:invalid value encountered in log:RuntimeWarning")
def test_anomaly_mode_names_the_forward_op_and_the_user_line():
    x = leaf([-1.0])
    with tnd.autograd.detect_anomaly():
        with pytest.raises(RuntimeError, match=r"'log'.*test_autograd\.py:\d+") as info:
            x.log()
    assert "x.log()" in str(info.value)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_anomaly_mode_names_the_backward_op():
    x = leaf([0.0, 1.0])
    with tnd.autograd.detect_anomaly():
        y = x.sqrt().sum()  # forward is finite, d sqrt/dx at 0 is inf
        with pytest.raises(RuntimeError, match=r"backward of op 'sqrt'.*test_autograd\.py"):
            y.backward()


def test_anomaly_mode_names_the_input_whose_gradient_is_not_finite():
    # input 1's gradient is NaN; the input is found by identity (Tensor == is elementwise)
    class SecondGradientNaN(tnd.autograd.Function):
        def forward(self, xp, x, y):
            return x + y

        def backward(self, gz):
            return gz, tnd.tensor(np.full(gz.shape, np.nan))  # made by no op: only the check sees it

    x, y = leaf([0.0, 1.0]), leaf([1.0, 2.0])
    with tnd.autograd.detect_anomaly():
        z = SecondGradientNaN.apply(x, y).sum()
        with pytest.raises(RuntimeError, match=r"returned NaN or Inf for input 1"):
            z.backward()


def test_without_anomaly_mode_nan_passes_silently():
    x = leaf([-1.0])
    with np.errstate(invalid="ignore"):
        assert np.isnan(x.log().item())


# ----------------------------------------------------------------------------- kinks and ties
def test_relu_abs_clamp_at_their_kinks():
    x = leaf([0.0, -0.5, 0.5])
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 1.0])
    x.grad = None
    x.abs().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, -1.0, 1.0])
    x.grad = None
    x.clamp(-0.5, 0.5).sum().backward()  # bounds included, as PyTorch
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0, 1.0])


def test_max_ties_full_reduction_shares_evenly_and_dim_picks_the_first():
    x = leaf([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    x.max().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0.5, 0.5], [0, 0, 0]])
    x.grad = None
    values, indices = x.max(1)
    values.sum().backward()
    assert indices.tolist() == [1, 0]
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 1, 0], [1, 0, 0]])


def test_max_propagates_nan_and_routes_its_gradient_to_the_nan():
    x = leaf([[1.0, np.nan, 3.0]])
    values, _ = x.max(1)
    assert np.isnan(values.item())
    values.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 1, 0]])


@pytest.mark.parametrize("repeat", [1, 100], ids=["small-array-path", "large-array-path"])
def test_sigmoid_is_finite_and_silent_at_extremes(repeat):
    values = [-1e4, -50.0, 0.0, 50.0, 1e4]
    assert (len(values) * repeat <= E.Sigmoid.SMALL) == (repeat == 1)  # both forward paths run
    x = tnd.tensor(values * repeat, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = x.sigmoid()
        y.sum().backward()
    np.testing.assert_allclose(y.numpy(), [0.0, 1.9287499e-22, 0.5, 1.0, 1.0] * repeat, rtol=1e-6)
    assert np.all(np.isfinite(x.grad.numpy()))


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-6), (np.float64, 1e-14)])
def test_sigmoid_paths_agree_with_the_textbook_formula(dtype, rtol):
    """Small arrays use exp(x - logaddexp(0, x)), large ones 1 / (1 + exp(-x)): same values."""
    grid = np.linspace(-30, 30, 10 * E.Sigmoid.SMALL + 1).astype(dtype)
    expected = 1 / (1 + np.exp(-grid.astype(np.float64)))
    large = tnd.tensor(grid).sigmoid().numpy()
    small = np.concatenate([tnd.tensor(chunk).sigmoid().numpy()
                            for chunk in np.array_split(grid, 11)])
    assert large.dtype == small.dtype == dtype
    np.testing.assert_allclose(large, expected, rtol=rtol)
    np.testing.assert_allclose(small, expected, rtol=rtol * 4)  # error grows as max(x, 0) * eps


@pytest.mark.parametrize("op", ["exp", "log", "sqrt", "tanh", "sigmoid"])
def test_float_valued_unary_ops_make_integer_input_float32(op):
    """As PyTorch: ``torch.tensor([1, 2]).exp()`` is float32, not float64."""
    y = getattr(tnd.tensor([1, 2]), op)()
    assert y.dtype == np.float32
    expected = getattr(np, op, None) or (lambda v: 1 / (1 + np.exp(-v)))
    np.testing.assert_allclose(y.numpy(), expected(np.array([1.0, 2.0])), rtol=1e-6)


def test_log_softmax_is_stable_for_large_logits():
    x = leaf([[1000.0, 0.0, -1000.0]])
    np.testing.assert_allclose(x.log_softmax(1).numpy(), [[0.0, -1000.0, -2000.0]])
    np.testing.assert_allclose(x.softmax(1).numpy(), [[1.0, 0.0, 0.0]])


def test_repeated_integer_indices_accumulate_in_backward():
    x = leaf([1.0, 2.0, 3.0])
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])


# ----------------------------------------------------------------------------- dtypes
def test_dtype_rules_follow_pytorch():
    assert tnd.tensor(1.5).dtype == tnd.float32
    assert tnd.tensor(3).dtype == tnd.int64
    assert tnd.tensor(np.ones(2)).dtype == tnd.float64
    x = tnd.ones(2)
    assert (x * 2.5).dtype == tnd.float32
    assert (tnd.tensor([1, 2]) * 0.5).dtype == tnd.float32
    assert (tnd.tensor([1, 2]) / tnd.tensor([2, 2])).dtype == tnd.float32


def test_gradient_of_a_cast_comes_back_in_the_input_dtype():
    x = tnd.tensor([1.0, 2.0], requires_grad=True)
    (x.double() * 3).sum().backward()
    assert x.grad.dtype == tnd.float32
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


# ----------------------------------------------------------------------------- bad input
def test_backward_on_a_non_scalar_needs_a_gradient():
    x = leaf([[1.0, 2.0]])
    with pytest.raises(RuntimeError, match=r"shape \(1, 2\)"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match=r"gradient has shape \(2,\) but the output has shape \(1, 2\)"):
        (x * 2).backward(tnd.ones(2, dtype=tnd.float64))
    (x * 2).backward(tnd.ones(1, 2, dtype=tnd.float64))
    np.testing.assert_array_equal(x.grad.numpy(), [[2.0, 2.0]])


def test_requires_grad_on_an_integer_tensor_is_refused():
    with pytest.raises(RuntimeError, match="floating point.*int64"):
        tnd.tensor([1, 2], requires_grad=True)


def test_broadcast_mismatch_names_the_op_and_shapes():
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        tnd.ones(2, 3) + tnd.ones(4)


def test_matmul_mismatch_names_the_shapes():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\).*3 and 4"):
        tnd.ones(2, 3) @ tnd.ones(4, 5)
    with pytest.raises(ValueError, match="batch"):
        tnd.ones(2, 2, 3) @ tnd.ones(3, 3, 4)


def test_reshape_and_dims_errors():
    with pytest.raises(ValueError, match=r"reshape: cannot reshape a tensor of shape \(2, 3\)"):
        tnd.ones(2, 3).reshape(4, 2)
    with pytest.raises(IndexError, match="sum: dim 2 is out of range"):
        tnd.ones(2, 3).sum(2)


def test_backward_without_requires_grad_explains():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tnd.ones(2).sum().backward()


def test_losses_check_their_inputs():
    with pytest.raises(ValueError, match="mse_loss"):
        F.mse_loss(tnd.ones(2, 3), tnd.ones(3))
    with pytest.raises(IndexError, match=r"cross_entropy: target values must lie in \[0, 3\)"):
        F.cross_entropy(tnd.ones(2, 3), tnd.tensor([0, 3]))


def test_leaf_gradients_can_be_modified_in_place():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    x.sum().backward()  # the gradient of a sum is a broadcast of one value
    x.grad.data *= 0.5  # gradient clipping and the like work in place
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 2), 0.5))


def test_gradients_come_back_in_each_input_dtype_under_type_promotion():
    x = tnd.ones(3, requires_grad=True)  # float32
    y = tnd.ones(3, dtype=tnd.float64, requires_grad=True)
    (x * y).sum().backward()  # the product is float64, as in PyTorch
    assert x.grad.dtype == tnd.float32 and y.grad.dtype == tnd.float64
