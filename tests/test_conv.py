"""conv_nd and conv1d/2d/3d beyond the op-case table: PyTorch as the oracle on every device
(values, gradients of input, weight and bias, a double backward), the numpy reference where torch
is absent, chunked column matrices, the wrappers' conventions and their error messages."""
import numpy as np
import pytest

import tinygrad_nd as tnd
from op_cases_conv import ref_conv
from tinygrad_nd import backend
from tinygrad_nd.nn import functional_conv as F
from tinygrad_nd.ops import _im2col as im
from tinygrad_nd.ops.conv import ConvNd, ConvNdInputGrad, ConvNdWeightGrad

try:
    import torch
except ImportError:  # the numpy reference tests below still run
    torch = None
needs_torch = [pytest.mark.torch, pytest.mark.skipif(torch is None, reason="needs torch")]

# id, input shape, weight shape, keyword arguments, with bias
CONFIGS = [
    ("1d", (3, 4, 11), (5, 4, 3), {}, True),
    ("1d-s3p2d2", (2, 3, 13), (4, 3, 3), dict(stride=3, padding=2, dilation=2), False),
    ("1d-same-even", (2, 2, 9), (3, 2, 4), dict(padding="same"), True),
    ("2d", (2, 3, 7, 6), (4, 3, 3, 3), {}, True),
    ("2d-s2p1", (2, 3, 8, 7), (5, 3, 3, 3), dict(stride=2, padding=1), True),
    ("2d-s2p1d2-groups3", (2, 6, 9, 9), (6, 2, 3, 2), dict(stride=(2, 1), padding=(1, 2),
                                                          dilation=(2, 1), groups=3), True),
    ("2d-depthwise", (2, 4, 6, 6), (8, 1, 3, 3), dict(padding=1, groups=4), False),
    ("2d-same-dilated", (1, 2, 7, 8), (3, 2, 2, 3), dict(padding="same", dilation=(3, 2)), True),
    ("2d-valid-1x1", (2, 5, 4, 4), (3, 5, 1, 1), dict(padding="valid"), True),
    ("3d", (2, 2, 5, 6, 5), (3, 2, 3, 2, 3), dict(padding=1), True),
    ("3d-s2d2-groups2", (1, 4, 7, 6, 7), (4, 2, 2, 3, 2), dict(stride=2, dilation=(2, 1, 2),
                                                               groups=2), False),
    ("2d-unbatched", (3, 6, 5), (2, 3, 3, 2), dict(padding=1), True),
]
IDS = [c[0] for c in CONFIGS]


def _arrays(config, dtype, seed=0):
    _, x_shape, w_shape, _, with_bias = config
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if with_bias else None
    return x, w, b


def _wrapper(w_shape, module):
    return getattr(module, f"conv{len(w_shape) - 2}d")


def _tol(dtype):
    return dict(rtol=1e-4, atol=1e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)


@pytest.fixture(params=["small", "general"])
def route(request, monkeypatch):
    """Both routes of the conv primitives: the one-gather route of small inputs (every config
    here is small) and, with ``_im2col.SMALL_COLUMNS = 0``, the chunked column matrices (the
    grid routes for stride 1)."""
    if request.param == "general":
        monkeypatch.setattr(im, "SMALL_COLUMNS", 0)
    return request.param


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's note on even kernels
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
@pytest.mark.parametrize("", [pytest.param(marks=needs_torch)])
def test_values_and_gradients_match_torch(config, dtype, device, route):
    _, x_shape, w_shape, kwargs, _ = config
    x, w, b = _arrays(config, dtype)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    ty = _wrapper(w_shape, torch.nn.functional)(tx, tw, tb, **kwargs)
    v = np.random.default_rng(1).standard_normal(ty.shape).astype(dtype)
    (ty * torch.tensor(v)).sum().backward()

    ours = [tnd.tensor(a, device=device, requires_grad=True) if a is not None else None
            for a in (x, w, b)]
    y = _wrapper(w_shape, F)(*ours, **kwargs)
    assert y.device == ours[0].device
    (y * tnd.tensor(v, device=device)).sum().backward()
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **_tol(dtype))
    for mine, theirs in zip(ours, (tx, tw, tb)):
        if theirs is not None:
            assert mine.grad.dtype == mine.dtype
            np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), **_tol(dtype))


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_values_match_numpy_reference(config):
    _, x_shape, w_shape, kwargs, _ = config
    x, w, b = _arrays(config, "float64")
    y = F.conv_nd(tnd.tensor(x), tnd.tensor(w), None if b is None else tnd.tensor(b), **kwargs)
    batched = x if len(x_shape) == len(w_shape) else x[None]
    kw = dict(kwargs)
    if kw.get("padding") in ("same", "valid"):  # as the wrapper resolves them
        dilation = kw.get("dilation", 1)
        dilation = (dilation,) * (len(w_shape) - 2) if isinstance(dilation, int) else dilation
        total = [d * (k - 1) for k, d in zip(w_shape[2:], dilation)]
        kw["padding"] = tuple((t // 2, t - t // 2) for t in total) if kw["padding"] == "same" \
            else 0
    expected = ref_conv(batched, w, **kw)
    if b is not None:
        expected = expected + b.reshape(1, -1, *(1,) * (len(w_shape) - 2))
    if len(x_shape) != len(w_shape):
        expected = expected[0]
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("config", [CONFIGS[i] for i in (1, 5, 7, 10)],
                         ids=[IDS[i] for i in (1, 5, 7, 10)])
@pytest.mark.parametrize("", [pytest.param(marks=needs_torch)])
def test_double_backward_matches_torch(config, route):
    # a gradient penalty: differentiate |d<y, v>/dx|^2 again, w.r.t. x, w and b
    _, x_shape, w_shape, kwargs, _ = config
    x, w, b = _arrays(config, "float64")
    v = None

    def run(lib, conv, x, w, b):
        nonlocal v
        y = conv(x, w, b, **kwargs)
        if v is None:
            v = np.random.default_rng(2).standard_normal(tuple(y.shape))
        vt = lib.tensor(v)
        (gx,) = lib.autograd.grad((y * y * vt).sum(), [x], create_graph=True)
        (gx * gx).sum().backward()
        return [t.grad for t in (x, w, b) if t is not None]

    mine = run(tnd, _wrapper(w_shape, F), *[tnd.tensor(a, requires_grad=True) if a is not None
                                          else None for a in (x, w, b)])
    theirs = run(torch, _wrapper(w_shape, torch.nn.functional),
                 *[torch.tensor(a, requires_grad=True) if a is not None else None
                   for a in (x, w, b)])
    for a, t in zip(mine, theirs):
        np.testing.assert_allclose(a.numpy(), t.numpy(), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("config", [CONFIGS[i] for i in (0, 2, 4, 5, 9)],
                         ids=[IDS[i] for i in (0, 2, 4, 5, 9)])
def test_chunked_columns_give_the_same_result(config, monkeypatch):
    # one example per column-matrix chunk must equal the whole batch at once
    _, x_shape, w_shape, kwargs, _ = config
    monkeypatch.setattr(im, "SMALL_COLUMNS", 0)  # these inputs would take the gather route
    x, w, b = _arrays(config, "float64")

    def run():
        ts = [tnd.tensor(a, requires_grad=True) for a in (x, w)]
        y = F.conv_nd(*ts, **kwargs)
        (gx, gw) = tnd.autograd.grad((y * y).sum(), ts, create_graph=True)
        (gx.sum() + (gw * gw).sum()).backward()
        return [y.numpy(), gx.numpy(), gw.numpy(), ts[0].grad.numpy(), ts[1].grad.numpy()]

    whole = run()
    monkeypatch.setattr(backend, "im2col_chunk_bytes", lambda xp: 1)
    for a, b_ in zip(run(), whole):
        np.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)


def test_unbatched_equals_batched_of_one():
    x, w, b = _arrays(CONFIGS[-1], "float64")
    single = F.conv2d(tnd.tensor(x), tnd.tensor(w), tnd.tensor(b), padding=1)
    batched = F.conv2d(tnd.tensor(x[None]), tnd.tensor(w), tnd.tensor(b), padding=1)
    assert single.shape == batched.shape[1:]
    np.testing.assert_array_equal(single.numpy(), batched.numpy()[0])


def test_cross_correlation_without_kernel_flip():
    x = tnd.tensor([[[0.0, 1.0, 2.0, 3.0]]])
    y = F.conv1d(x, tnd.tensor([[[1.0, 10.0]]]))
    assert y.tolist() == [[[10.0, 21.0, 32.0]]]  # y[i] = x[i] * 1 + x[i + 1] * 10


def test_same_padding_puts_the_extra_on_the_end():
    # kernel 4: 3 padding in all, 1 before and 2 after (PyTorch's rule)
    x = tnd.arange(6.0).reshape(1, 1, 6)
    y = F.conv1d(x, tnd.ones(1, 1, 4), padding="same")
    assert y.tolist() == [[[3.0, 6.0, 10.0, 14.0, 12.0, 9.0]]]


def test_graph_node_and_no_grad():
    x = tnd.randn(1, 2, 5, 5, requires_grad=True)
    w = tnd.randn(3, 2, 3, 3, requires_grad=True)
    y = F.conv2d(x, w, stride=2, padding=1)
    assert y.grad_fn.name == "conv_nd"
    assert y.grad_fn.params == dict(stride=(2, 2), padding=((1, 1), (1, 1)), dilation=(1, 1),
                                    groups=1)
    assert y.grad_fn.saved == ()  # the weight gradient rebuilds its columns from x
    with tnd.no_grad():
        z = F.conv2d(x, w)
    assert z.grad_fn is None and not z.requires_grad


def test_only_the_needed_gradients_are_computed():
    x = tnd.randn(1, 2, 5, 5)
    w = tnd.randn(3, 2, 3, 3, requires_grad=True)
    y = F.conv2d(x, w)
    y.sum().backward()
    assert x.grad is None and w.grad.shape == w.shape


@pytest.mark.parametrize("", [pytest.param(marks=needs_torch)])
def test_non_contiguous_input(device, route):
    base = np.random.default_rng(3).standard_normal((5, 2, 3, 6)).astype(np.float32)
    x = tnd.tensor(base, device=device).permute(1, 2, 0, 3)  # (2, 3, 5, 6), a strided view
    w = tnd.tensor(np.ones((4, 3, 2, 2), np.float32), device=device)
    expected = torch.nn.functional.conv2d(torch.tensor(base).permute(1, 2, 0, 3),
                                          torch.ones(4, 3, 2, 2))
    np.testing.assert_allclose(F.conv2d(x, w).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def _x(*shape):
    return tnd.zeros(*shape)


ERRORS = [
    # id, call, exception, fragments the message must contain
    ("channel-mismatch", lambda: F.conv2d(_x(1, 3, 5, 5), _x(4, 2, 3, 3)), ValueError,
     ["conv2d", "(1, 3, 5, 5)", "(4, 2, 3, 3)", "3 channels"]),
    ("groups-in", lambda: F.conv_nd(_x(1, 4, 5, 5), _x(3, 2, 3, 3), groups=3), ValueError,
     ["conv_nd", "groups=3", "4 input channels"]),
    ("groups-out", lambda: F.conv_nd(_x(1, 3, 5, 5), _x(4, 1, 3, 3), groups=3), ValueError,
     ["conv_nd", "groups=3", "4 output channels"]),
    ("kernel-too-large", lambda: F.conv2d(_x(1, 1, 3, 3), _x(1, 1, 4, 4), padding=0), ValueError,
     ["conv2d", "kernel", "(4, 4)", "padded input", "(3, 3)"]),
    ("dilated-kernel-too-large", lambda: F.conv1d(_x(1, 1, 5), _x(1, 1, 3), dilation=3),
     ValueError, ["conv1d", "(7,)", "(5,)"]),
    ("zero-stride", lambda: F.conv2d(_x(1, 1, 5, 5), _x(1, 1, 3, 3), stride=0), ValueError,
     ["conv2d", "stride", "positive"]),
    ("negative-stride", lambda: F.conv2d(_x(1, 1, 5, 5), _x(1, 1, 3, 3), stride=(1, -1)),
     ValueError, ["conv2d", "stride", "(1, -1)"]),
    ("zero-dilation", lambda: F.conv1d(_x(1, 1, 5), _x(1, 1, 3), dilation=0), ValueError,
     ["dilation", "positive"]),
    ("negative-padding", lambda: F.conv1d(_x(1, 1, 5), _x(1, 1, 3), padding=-1), ValueError,
     ["padding", "non-negative"]),
    ("input-rank", lambda: F.conv2d(_x(1, 1, 1, 5, 5), _x(1, 1, 3, 3)), ValueError,
     ["conv2d", "(1, 1, 1, 5, 5)", "(1, 1, 3, 3)"]),
    ("weight-rank", lambda: F.conv2d(_x(1, 1, 5, 5), _x(1, 1, 3)), ValueError,
     ["conv2d", "(1, 1, 3)"]),
    ("weight-without-spatial", lambda: F.conv_nd(_x(1, 1, 5), _x(1, 1)), ValueError,
     ["conv_nd", "(1, 1)"]),
    ("same-strided", lambda: F.conv2d(_x(1, 1, 5, 5), _x(1, 1, 3, 3), stride=2, padding="same"),
     ValueError, ["same", "stride"]),
    ("unknown-padding", lambda: F.conv2d(_x(1, 1, 5, 5), _x(1, 1, 3, 3), padding="full"),
     ValueError, ["'full'"]),
    ("stride-length", lambda: F.conv2d(_x(1, 1, 5, 5), _x(1, 1, 3, 3), stride=(1, 1, 1)),
     ValueError, ["stride", "2 ints"]),
    ("bias-shape", lambda: F.conv2d(_x(1, 1, 5, 5), _x(2, 1, 3, 3), _x(3)), ValueError,
     ["bias", "(2,)", "(3,)"]),
    ("dtypes", lambda: F.conv2d(_x(1, 1, 5, 5), tnd.zeros(1, 1, 3, 3, dtype=tnd.float64)),
     TypeError, ["conv2d", "float32", "float64"]),
]


@pytest.mark.parametrize("call,exception,fragments", [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_errors_name_the_op_and_shapes(call, exception, fragments):
    with pytest.raises(exception) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_results_never_share_the_work_arrays(route):
    # the column matrices live in reused work arrays (backend.scratch); outputs must not
    rng = np.random.default_rng(4)
    x1, x2 = (tnd.tensor(rng.standard_normal((2, 3, 6, 6))) for _ in range(2))
    w = tnd.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    y1 = F.conv2d(x1, w, padding=1)
    kept = y1.numpy().copy()
    y2 = F.conv2d(x2, w, padding=1)
    (y1.sum() + y2.sum()).backward()
    np.testing.assert_array_equal(y1.numpy(), kept)
    np.testing.assert_allclose(y1.numpy(), ref_conv(x1.numpy(), w.numpy(), padding=1),
                               rtol=1e-12, atol=1e-12)


def test_threads_get_their_own_work_arrays():
    import threading

    rng = np.random.default_rng(5)
    inputs = [rng.standard_normal((4, 3, 9, 9)) for _ in range(4)]
    w = rng.standard_normal((5, 3, 3, 3))
    results = {}

    def run(i):
        for _ in range(5):
            results[i] = F.conv2d(tnd.tensor(inputs[i]), tnd.tensor(w), padding=1).numpy()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, x in enumerate(inputs):
        np.testing.assert_allclose(results[i], ref_conv(x, w, padding=1), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- the benchmark script
def _bench(*args):
    import pathlib
    import subprocess
    import sys

    script = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "bench_conv.py"
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=300)


def test_benchmark_runs():
    done = _bench("--only", "ag", "--repeat", "1", "--no-torch", "--no-memory", "--threads", "1")
    assert done.returncode == 0, done.stderr
    assert "| a | conv2d" in done.stdout and "| g | small net" in done.stdout


def test_benchmark_on_cuda_without_cupy_says_how_to_get_it():
    try:
        import cupy  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("CuPy is installed")
    done = _bench("--device", "cuda", "--no-torch")
    assert done.returncode != 0
    assert "CuPy" in done.stderr and "pip install" in done.stderr


# ----------------------------------------------------------------------------- routes
def _batched_shapes(config):
    _, x_shape, w_shape, kwargs, _ = config
    return (x_shape if len(x_shape) == len(w_shape) else (1, *x_shape)), w_shape


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_small_route_matches_the_chunked_route(config, dtype, device, monkeypatch):
    # forward, input, weight and bias gradients, and a second-order term, on both routes
    _, _, w_shape, kwargs, _ = config
    x, w, b = _arrays(config, dtype, seed=5)

    def run():
        ts = [None if a is None else tnd.tensor(a, device=device, requires_grad=True)
              for a in (x, w, b)]
        y = _wrapper(w_shape, F)(*ts, **kwargs)
        (gx,) = tnd.autograd.grad((y * y).sum(), [ts[0]], create_graph=True)
        ((gx * gx).sum() + y.sum()).backward()
        return [y.numpy(), gx.numpy()] + [t.grad.numpy() for t in ts if t is not None]

    x_shape, _ = _batched_shapes(config)
    _, out = F._conv_params(config[0], x_shape, w_shape, kwargs.get("stride", 1),
                         kwargs.get("padding", 0), kwargs.get("dilation", 1),
                         kwargs.get("groups", 1))
    out = im.conv_out_spatial(x_shape[2:], w_shape[2:], out["stride"], out["padding"],
                              out["dilation"])
    monkeypatch.setattr(im, "SMALL_COLUMNS", 1 << 20)  # the 3-d configs are a little larger
    assert im.is_small(x_shape[0], x_shape[1], out, w_shape[2:])  # the gather route is taken
    small = run()
    monkeypatch.setattr(im, "SMALL_COLUMNS", 0)
    general = run()
    tol = dict(rtol=2e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    for a, g in zip(small, general):
        np.testing.assert_allclose(a, g, **tol)


def test_im2col_small_equals_im2col(device):
    xp_ = backend.array_module(tnd.zeros(1, device=device).data)
    rng = np.random.default_rng(6)
    for shape, kernel, stride, padding, dilation in [
            ((2, 3, 6, 5), (3, 2), (1, 2), ((1, 0), (2, 1)), (1, 2)),
            ((1, 2, 7), (3,), (2,), ((0, 0),), (2,)),
            ((2, 1, 4, 3, 4), (2, 2, 2), (1, 1, 2), ((1, 1), (0, 0), (1, 0)), (1, 1, 1))]:
        x = tnd.tensor(rng.standard_normal(shape), device=device).data
        out = im.conv_out_spatial(shape[2:], kernel, stride, padding, dilation)
        got = im.im2col_small(xp_, x, kernel, stride, padding, dilation, out)
        expected = im.im2col(xp_, x, kernel, stride, padding, dilation)
        np.testing.assert_array_equal(backend.to_host(got), backend.to_host(expected))


@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "chunked"])
@pytest.mark.parametrize("x_shape,w_shape,kwargs", [
    ((3, 4, 12, 12), (6, 2, 3, 3), dict(padding=1, groups=2)),  # im2col_flat
    ((2, 3, 14, 13), (4, 3, 3, 2), {}),  # im2col (rows shrink)
    ((2, 3, 150), (4, 3, 5), dict(dilation=2)),  # 1-d: im2col_flat without margins
    ((2, 2, 6, 6, 5), (3, 2, 3, 3, 3), dict(padding=2, dilation=2)),
], ids=["2d-same-groups2", "2d-valid", "1d-dilated", "3d-same-dilated"])
@pytest.mark.parametrize("", [pytest.param(marks=needs_torch)])
def test_weight_grad_per_example_products(x_shape, w_shape, kwargs, chunked, device,
                                          monkeypatch):
    # >= 128 output positions per example: the weight gradient multiplies gy[b] example by
    # example (no to_rows copy); its gradients must still be torch's
    monkeypatch.setattr(im, "SMALL_COLUMNS", 0)
    if chunked:
        monkeypatch.setattr(backend, "im2col_chunk_bytes", lambda xp: 1)  # one example a chunk
    copies = []
    to_rows = im.to_rows
    monkeypatch.setattr(im, "to_rows", lambda *a, **k: copies.append(1) or to_rows(*a, **k))
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ty = _wrapper(w_shape, torch.nn.functional)(tx, tw, **kwargs)
    v = rng.standard_normal(ty.shape)
    (ty * torch.tensor(v)).sum().backward()
    ours = [tnd.tensor(a, device=device, requires_grad=True) for a in (x, w)]
    y = _wrapper(w_shape, F)(*ours, **kwargs)
    (y * tnd.tensor(v, device=device)).sum().backward()
    assert not copies  # the per-example route was taken
    for mine, theirs in zip(ours, (tx, tw)):
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-10,
                                   atol=1e-12)


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # inf - inf in the GEMM
def test_grid_forward_crops_what_it_reads_past_the_rows(monkeypatch):
    # stride 1 computes on the whole padded grid: columns that start no window read the next
    # row or example; inf and NaN there must not reach any output
    monkeypatch.setattr(im, "SMALL_COLUMNS", 0)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 2, 6, 7))
    x[0, :, :, -1] = np.inf
    x[1, 0, 2, 0] = np.nan
    w = rng.standard_normal((3, 2, 3, 3))
    y = F.conv2d(tnd.tensor(x), tnd.tensor(w), padding=(0, 1))
    np.testing.assert_allclose(y.numpy(), ref_conv(x, w, padding=((0, 0), (1, 1))),
                               rtol=1e-12, atol=1e-12)
    assert np.isfinite(y.numpy()[0, :, :, :-2]).all() and not np.isfinite(y.numpy()[0]).all()


def _ref_input_and_weight_grads(x, w, gy, padding, dilation, groups):
    """Stride-1 ``gx`` and ``gw`` by a loop over kernel offsets on the padded input (numpy):
    every product once, the padding's contributions dropped by the crop."""
    import itertools
    batch, channels, *spatial = x.shape
    kernel, out = w.shape[2:], gy.shape[2:]
    xpad = np.pad(x, [(0, 0), (0, 0)] + list(padding))
    gxpad = np.zeros_like(xpad)
    gw = np.zeros_like(w)
    gyg = gy.reshape(batch, groups, -1, *out)  # (B, g, O/g, *out)
    wg = w.reshape(groups, -1, *w.shape[1:])  # (g, O/g, C/g, *k)
    for offset in itertools.product(*map(range, kernel)):
        window = (slice(None), slice(None)) + tuple(
            slice(k * d, k * d + o) for k, d, o in zip(offset, dilation, out))
        part = xpad[window].reshape(batch, groups, -1, *out)  # (B, g, C/g, *out)
        gw[(slice(None), slice(None)) + offset] = np.einsum(
            "bgop,bgcp->goc", gyg.reshape(*gyg.shape[:3], -1),
            part.reshape(*part.shape[:3], -1)).reshape(w.shape[:2])
        gxpad[window] += np.einsum("bgo...,goc->bgc...", gyg,
                                   wg[(slice(None),) * 3 + offset]).reshape(batch, channels, *out)
    inner = (slice(None), slice(None)) + tuple(slice(lo, lo + n)
                                               for n, (lo, _) in zip(spatial, padding))
    return gxpad[inner], gw


STRIDE1_ROUTES = [
    # x shape, w shape, padding pairs, dilation, groups, forward route, input-gradient grid
    ((2, 2, 8, 9), (3, 2, 3, 3), ((1, 1), (1, 1)), (1, 1), 1, "flat", "dim0k"),
    ((2, 2, 8, 9), (3, 2, 3, 3), ((1, 1), (2, 2)), (1, 1), 1, "grid", "dim0k"),  # out > n
    ((2, 2, 8, 9), (4, 1, 3, 2), ((2, 2), (0, 0)), (1, 1), 2, "grid", "wide"),  # rows shrink
    ((2, 2, 8, 9), (3, 2, 2, 3), ((1, 2), (2, 2)), (3, 2), 1, "flat", "dim0k"),  # 'same'
    ((2, 4, 8, 8), (6, 2, 3, 3), ((1, 1), (1, 1)), (1, 1), 2, "flat", "dim0k"),
    ((2, 2, 6, 7), (3, 2, 3, 3), ((1, 1), (1, 1)), (1, 1), 1, "flat", "wide"),  # < 64 outputs
    ((3, 2, 70), (3, 2, 3), ((2, 2),), (2,), 1, "flat", "compact"),
    ((2, 2, 4, 5, 4), (3, 2, 3, 2, 3), ((1, 1), (1, 1), (1, 1)), (1, 1, 1), 1, "grid",
     "dim0k"),
    # >= 128 positions: the weight gradient example by example, dim 0's offsets as shifts
    ((2, 8, 13, 12), (3, 8, 3, 3), ((1, 1), (1, 1)), (1, 1), 1, "flat", "dim0k"),
    ((2, 16, 13, 12), (4, 8, 2, 3), ((2, 1), (2, 2)), (2, 2), 2, "flat", "dim0k"),
    ((2, 16, 140), (3, 16, 3), ((2, 2),), (2,), 1, "flat", "compact"),
    ((2, 2, 6, 5, 6), (3, 2, 3, 3, 3), ((1, 1), (1, 1), (1, 1)), (1, 1, 1), 1, "flat",
     "dim0k"),
    # dim 0's offsets in K (dim0k): padding wider than the kernel reaches in dim 0 (input
    # rows no output reads: zero rows of G), asymmetric, dilated, a kernel of 1 in dim 0
    ((2, 2, 9, 8), (4, 1, 3, 3), ((3, 0), (1, 1)), (2, 1), 2, "flat", "dim0k"),
    ((2, 3, 9, 8), (2, 3, 2, 3), ((0, 4), (2, 2)), (1, 2), 1, "flat", "dim0k"),
    ((2, 3, 9, 8), (2, 3, 1, 3), ((0, 0), (1, 1)), (1, 1), 1, "flat", "dim0k"),
    ((2, 2, 6, 5, 6), (6, 1, 2, 3, 3), ((1, 0), (1, 1), (2, 2)), (1, 1, 1), 2, "grid",
     "dim0k"),
]


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # inf - inf in the GEMMs
@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "chunked"])
@pytest.mark.parametrize("case", STRIDE1_ROUTES, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}-{c[5]}-"
                         f"{c[6]}".replace(" ", ""))
def test_stride1_routes_keep_inf_and_nan_where_they_belong(case, chunked, monkeypatch):
    # the grids read and add past rows and examples: inf and NaN at the ends of rows, in x and
    # in gy, must reach exactly the outputs and gradients they reach in the loop reference
    from tinygrad_nd.ops import conv
    x_shape, w_shape, padding, dilation, groups, forward, grid = case
    monkeypatch.setattr(im, "SMALL_COLUMNS", 0)
    if chunked:
        monkeypatch.setattr(backend, "im2col_chunk_bytes", lambda xp: 1)  # one example a chunk
    seen = set()
    for name, route in (("im2col_flat", "flat"), ("im2col_grid", "grid"),
                        ("rows_on_grid", "wide")):
        original = getattr(im, name)
        monkeypatch.setattr(im, name, lambda *a, _f=original, _r=route, **k: seen.add(_r)
                            or _f(*a, **k))
    products, offsets = conv._products_on_grid, im.dim0_offsets
    monkeypatch.setattr(conv, "_products_on_grid",
                        lambda *a: seen.add("compact") or products(*a))
    monkeypatch.setattr(im, "dim0_offsets", lambda *a: seen.add("dim0") or offsets(*a))
    in_k = ConvNdInputGrad._dim0_in_k
    monkeypatch.setattr(ConvNdInputGrad, "_dim0_in_k",
                        lambda *a: seen.add("dim0k") or in_k(*a))
    rng = np.random.default_rng(11)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    x[0, :, ..., -1] = np.inf  # the last element of every row
    x[1, 0, ..., 0] = np.nan  # the first
    x[1, -1, -1] = -np.inf  # the last row (plane) of an example
    params = dict(stride=(1,) * (len(x_shape) - 2), padding=padding, dilation=dilation,
                  groups=groups)
    y = ConvNd.apply(tnd.tensor(x), tnd.tensor(w), **params).numpy()
    np.testing.assert_allclose(y, ref_conv(x, w, padding=padding, dilation=dilation,
                                           groups=groups), rtol=1e-12, atol=1e-12)
    gy = rng.standard_normal(y.shape)
    gy[0, :, ..., 0] = np.inf
    gy[1, -1, ..., -1] = -np.inf
    gy[1, 0, 0] = np.nan
    gx = ConvNdInputGrad.apply(tnd.tensor(gy), tnd.tensor(w), input_shape=x_shape,
                               **params).numpy()
    ref_gx, _ = _ref_input_and_weight_grads(x, w, gy, padding, dilation, groups)
    assert np.isfinite(gx).any() and not np.isfinite(gx).all()
    np.testing.assert_allclose(gx, ref_gx, rtol=1e-12, atol=1e-12)
    # the weight gradient sums over positions: inf and NaN in one channel's row ends only, so
    # that the other entries check the values and the kernel offsets that never read a row's
    # end must stay finite
    x, gy = rng.standard_normal(x_shape), rng.standard_normal(y.shape)
    x[0, 0, ..., -1] = np.inf
    x[1, 0, ..., 0] = np.nan
    gw = ConvNdWeightGrad.apply(tnd.tensor(x), tnd.tensor(gy), weight_shape=w_shape,
                                **params).numpy()
    _, ref_gw = _ref_input_and_weight_grads(x, w, gy, padding, dilation, groups)
    assert np.isfinite(gw).any() and not np.isfinite(gw).all()
    np.testing.assert_allclose(gw, ref_gw, rtol=1e-12, atol=1e-12)
    assert {forward, grid} <= seen
    size, n_cols = np.prod(y.shape[2:]), np.prod(w_shape[1:])  # positions, C_in/g * K
    per_example = size >= max(128, 2 * n_cols, w_shape[0] // groups)
    assert ("dim0" in seen) == (per_example and forward == "flat"
                                and n_cols // w_shape[2] >= 16)  # C_in/g * prod(kernel[1:])


def test_bias_inside_the_primitive_has_gradients_of_every_order(route):
    rng = np.random.default_rng(8)
    x, w, b = (tnd.tensor(rng.standard_normal(s), requires_grad=True)
               for s in ((2, 4, 5, 4), (4, 2, 3, 2), (4,)))
    y = F.conv2d(x, w, b, stride=(2, 1), padding=1, groups=2)
    assert y.grad_fn.name == "conv_nd" and len(y.grad_fn.inputs) == 3  # no separate add node
    assert tnd.gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1, groups=2),
                         (x, w, b))
    assert tnd.gradgradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=1, groups=2), (x, w, b))


def test_bias_errors_in_the_primitive():
    x, w = tnd.zeros(1, 2, 4, 4), tnd.zeros(3, 2, 2, 2)
    params = dict(stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1))
    with pytest.raises(ValueError, match=r"conv_nd: bias must have shape \(3,\).*\(2,\)"):
        ConvNd.apply(x, w, tnd.zeros(2), **params)
    with pytest.raises(TypeError, match="conv_nd: bias .*float64.*float32"):
        ConvNd.apply(x, w, tnd.zeros(3, dtype=tnd.float64), **params)
    with pytest.raises(TypeError, match="conv2d: bias .*float64.*float32"):
        F.conv2d(x, w, tnd.zeros(3, dtype=tnd.float64))
