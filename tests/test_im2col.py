"""The raw-array index work of ops/_im2col.py against direct loops over every element, and
against PyTorch where it is installed."""
import itertools
import math

import numpy as np
import pytest

from tinygrad_nd.ops import _im2col as im
from tinygrad_nd.ops import _windows as win

xp = np

try:
    import torch
except ImportError:  # torch is optional: the loop references below cover everything
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")


@pytest.fixture(params=["small", "general"])
def route(request, monkeypatch):
    """Max pooling's one-gather route of small inputs, and the offset loop (forced by
    ``SMALL_ELEMENTS = 0``; padded or overhanging windows take it on both)."""
    if request.param == "general":
        monkeypatch.setattr(win, "SMALL_ELEMENTS", 0)
    return request.param


def _pairs(padding):
    return tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)


# ----------------------------------------------------------------------------- loop references
def ref_im2col(x, kernel, stride, padding, dilation):
    """cols[(c, *offset), (b, *o)] = x_padded[b, c, *(o * s + offset * d)], element by element."""
    batch, channels, *spatial = x.shape
    out = im.conv_out_spatial(spatial, kernel, stride, padding, dilation)
    padded = np.pad(x, [(0, 0), (0, 0)] + list(padding))
    cols = np.zeros((channels, *kernel, batch, *out), x.dtype)
    for c, b in itertools.product(range(channels), range(batch)):
        for offset in itertools.product(*map(range, kernel)):
            for o in itertools.product(*map(range, out)):
                pos = tuple(oi * s + k * d for oi, s, k, d in zip(o, stride, offset, dilation))
                cols[(c, *offset, b, *o)] = padded[(b, c, *pos)]
    return cols.reshape(channels * math.prod(kernel), batch * math.prod(out))


def ref_pool(x, kernel, stride, padding, dilation, ceil_mode, mode, count_include_pad=True):
    """Pooling by a loop over every window (PyTorch's CPU kernels written out)."""
    batch, channels, *spatial = x.shape
    out = im.pool_out_spatial(spatial, kernel, stride, padding, dilation, ceil_mode)
    y = np.zeros((batch, channels, *out), x.dtype)
    index = np.zeros((batch, channels, *out), np.int64)
    for b, c in itertools.product(range(batch), range(channels)):
        for o in itertools.product(*map(range, out)):
            best, best_index, total = -np.inf, None, 0.0
            for offset in itertools.product(*map(range, kernel)):
                pos = [oi * s - p + k * d
                       for oi, s, p, k, d in zip(o, stride, padding, offset, dilation)]
                if not all(0 <= q < n for q, n in zip(pos, spatial)):
                    continue
                value = x[(b, c, *pos)]
                flat = int(np.ravel_multi_index(pos, spatial))
                if best_index is None:
                    best_index = flat
                if value > best or np.isnan(value):
                    best, best_index = value, flat
                total += value
            if mode == "max":
                y[(b, c, *o)], index[(b, c, *o)] = best, best_index
            else:
                size, size_in = 1, 1
                for oi, n, k, s, p in zip(o, spatial, kernel, stride, padding):
                    start = oi * s - p
                    end = min(start + k, n + p)
                    size *= end - start
                    size_in *= min(end, n) - max(start, 0)
                y[(b, c, *o)] = total / (size if count_include_pad else size_in)
    return y, index


# ----------------------------------------------------------------------------- conv layouts
CONV_GEOMETRIES = [
    # id, spatial, kernel, stride, padding (pairs), dilation
    ("1d", (9,), (3,), (1,), ((0, 0),), (1,)),
    ("1d-s2p1d2", (11,), (3,), (2,), ((1, 1),), (2,)),
    ("2d", (5, 6), (2, 3), (1, 1), ((0, 0), (0, 0)), (1, 1)),
    ("2d-s2p1", (7, 6), (3, 3), (2, 1), ((1, 1), (1, 2)), (1, 1)),
    ("2d-s1p2d2", (6, 5), (3, 2), (1, 1), ((2, 2), (1, 0)), (2, 3)),
    ("3d-s2p1d2", (6, 5, 7), (2, 2, 3), (2, 1, 2), ((1, 1), (0, 1), (1, 1)), (2, 1, 1)),
]


@pytest.mark.parametrize("case", CONV_GEOMETRIES, ids=[c[0] for c in CONV_GEOMETRIES])
def test_im2col_matches_loops(case):
    _, spatial, kernel, stride, padding, dilation = case
    x = np.random.default_rng(0).standard_normal((2, 3, *spatial))
    cols = im.im2col(xp, x, kernel, stride, padding, dilation)
    np.testing.assert_array_equal(cols, ref_im2col(x, kernel, stride, padding, dilation))


# stride 1, every dim after the first keeping its size: im2col_flat's geometries
FLAT_GEOMETRIES = [
    # id, spatial, kernel, padding (pairs), dilation
    ("1d-valid", (9,), (3,), ((0, 0),), (1,)),
    ("1d-p2-0-d2", (7,), (3,), ((2, 0),), (2,)),
    ("2d-same", (5, 6), (3, 3), ((1, 1), (1, 1)), (1, 1)),
    ("2d-same-even-d3", (6, 5), (2, 3), ((0, 3), (2, 2)), (3, 2)),  # wide first-dim margins
    ("2d-k1", (4, 3), (3, 1), ((2, 1), (0, 0)), (1, 1)),
    ("2d-pad-over-width", (6, 2), (5, 5), ((0, 0), (2, 2)), (1, 1)),  # wraps cover whole rows
    ("3d-same", (4, 3, 5), (3, 3, 3), ((1, 1), (1, 1), (1, 1)), (1, 1, 1)),
    ("3d-mixed", (5, 4, 3), (2, 3, 2), ((3, 0), (2, 0), (0, 1)), (1, 1, 1)),
]


@pytest.mark.parametrize("case", FLAT_GEOMETRIES, ids=[c[0] for c in FLAT_GEOMETRIES])
def test_im2col_flat_matches_loops(case):
    # the wrapped reads into a neighbouring row are zeroed, the margins hold zeros: bit equal
    _, spatial, kernel, padding, dilation = case
    stride = (1,) * len(spatial)
    assert im.flat_im2col_applies(spatial, kernel, stride, padding, dilation)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 2, *spatial))
    x[0, 1] = np.inf  # wrapped reads find it: they must give exact zeros (a 0/1 mask gives NaN)
    expected = ref_im2col(x, kernel, stride, padding, dilation)
    np.testing.assert_array_equal(im.im2col_flat(xp, x, kernel, padding, dilation), expected)
    strided = np.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1)  # (batch, C) transposed
    np.testing.assert_array_equal(im.im2col_flat(xp, strided, kernel, padding, dilation),
                                  expected)


def test_flat_im2col_applies_only_where_rows_keep_their_size():
    assert im.flat_im2col_applies((8, 8), (3, 3), (1, 1), ((0, 0), (1, 1)), (1, 1))
    assert not im.flat_im2col_applies((8, 8), (3, 3), (1, 1), ((1, 1), (0, 0)), (1, 1))
    assert not im.flat_im2col_applies((8, 8), (3, 3), (1, 2), ((1, 1), (1, 1)), (1, 1))
    assert not im.flat_im2col_applies((8, 8), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 2))


# stride 1 (the shared-zero grid, and the compact grid of the input gradient): asymmetric and
# wide padding (out > spatial), dilation, 1 to 3 dims
GRID_GEOMETRIES = [(c[0], c[1], c[2], c[4], c[5]) for c in CONV_GEOMETRIES
                   if set(c[3]) == {1}] + FLAT_GEOMETRIES + [
    # id, spatial, kernel, padding (pairs), dilation
    ("1d-p3-1", (9,), (3,), ((3, 1),), (1,)),
    ("2d-p1", (5, 6), (3, 3), ((1, 1), (1, 1)), (1, 1)),
    ("2d-asym", (5, 6), (3, 3), ((2, 0), (0, 2)), (1, 1)),
    ("2d-wide-pad-d2", (4, 5), (2, 3), ((3, 2), (4, 1)), (1, 2)),  # rows longer than the input
    ("2d-k1-p2", (4, 3), (1, 1), ((0, 2), (2, 1)), (1, 1)),
    ("3d-asym-d2", (4, 3, 5), (2, 3, 2), ((1, 2), (2, 0), (0, 3)), (2, 1, 2)),
]
GRID_IDS = [c[0] for c in GRID_GEOMETRIES]


def _poison_row_ends(x):
    """inf and NaN at both ends of rows (and whole rows) of ``x (batch, C, *spatial)``: where
    reads past a row land."""
    x = x.copy()
    x[0, :, ..., -1] = np.inf
    x[1, 0, ..., 0] = np.nan
    x[1, -1, -1] = -np.inf  # the last row (plane) of an example
    return x


@pytest.mark.parametrize("case", GRID_GEOMETRIES, ids=GRID_IDS)
def test_im2col_grid_holds_the_windows(case):
    # column (b, p) of the grid layout is im2col's column of the window starting at p; what the
    # other columns read past a row (inf, NaN) never reaches one of these
    _, spatial, kernel, padding, dilation = case
    stride = (1,) * len(spatial)
    x = _poison_row_ends(np.random.default_rng(8).standard_normal((2, 3, *spatial)))
    plan = im.grid_plan(spatial, kernel, padding, dilation)
    out = im.conv_out_spatial(spatial, kernel, stride, padding, dilation)
    assert plan.out == out and not plan.wraps
    cols = im.im2col_grid(xp, x, kernel, padding, dilation)  # (C*K, batch*grid)
    cropped = im.from_grid_rows(xp, cols, 2, plan.grid, out).swapaxes(0, 1)  # (C*K, batch, *out)
    np.testing.assert_array_equal(cropped.reshape(cols.shape[0], -1),
                                  ref_im2col(x, kernel, stride, padding, dilation))


def test_grid_rows_share_their_zeros():
    # 32 wide, padding 1: 33 columns a row and 33 rows an example instead of 34 (the row's
    # zero is the right padding of the row before); 'valid': the input's own size
    plan = im.grid_plan((32, 32), (3, 3), ((1, 1), (1, 1)), (1, 1))
    assert plan.grid == (33, 33) and plan.zeros == (1, 1) and plan.lead == 0
    assert im.grid_plan((28, 28), (3, 3), ((0, 0), (0, 0)), (1, 1)).grid == (28, 28)
    assert im.grid_plan((8, 8), (3, 3), ((2, 0), (0, 3)), (1, 1)).grid == (10, 11)
    compact = im.grid_plan((32, 32), (3, 3), ((1, 1), (1, 1)), (1, 1), True)
    assert compact.grid == (33, 32) and compact.zeros == (1, 0) and len(compact.wraps) == 2


@pytest.mark.parametrize("case", CONV_GEOMETRIES, ids=[c[0] for c in CONV_GEOMETRIES])
def test_col2im_is_adjoint_of_im2col(case):
    # <im2col(x), c> == <x, col2im(c)> for all x, c: the defining property of the adjoint
    _, spatial, kernel, stride, padding, dilation = case
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, *spatial))
    cols = im.im2col(xp, x, kernel, stride, padding, dilation)
    c = rng.standard_normal(cols.shape)
    back = im.col2im(xp, c, x.shape, kernel, stride, padding, dilation)
    assert back.shape == x.shape
    np.testing.assert_allclose((cols * c).sum(), (x * back).sum(), rtol=1e-12)


def _grid_cases():
    for case in GRID_GEOMETRIES:
        _, spatial, kernel, padding, dilation = case
        out = im.conv_out_spatial(spatial, kernel, (1,) * len(spatial), padding, dilation)
        yield pytest.param(case, False, id=case[0] + "-wide")
        if im.compact_grid_applies(spatial, out):
            yield pytest.param(case, True, id=case[0] + "-compact")


@pytest.mark.parametrize("case,compact", list(_grid_cases()))
def test_col2im_stride1_matches_col2im(case, compact):
    # the grid layout: gcols = w^T @ rows_on_grid(gy) gives the same input gradient; on the
    # compact grid, entries that would be added past a row are dropped: inf there changes nothing
    _, spatial, kernel, padding, dilation = case
    stride = (1,) * len(spatial)
    rng = np.random.default_rng(2)
    out = im.conv_out_spatial(spatial, kernel, stride, padding, dilation)
    gy = rng.standard_normal((2, 4, *out))
    w = rng.standard_normal((4, 3 * math.prod(kernel)))
    shape = (2, 3, *spatial)
    expected = im.col2im(xp, w.T @ im.to_rows(xp, gy), shape, kernel, stride, padding, dilation)
    plan = im.grid_plan(spatial, kernel, padding, dilation, compact)
    assert plan.grid[1:] == (out[1:] if compact else plan.grid[1:])
    gcols = w.T @ im.rows_on_grid(xp, gy, plan.grid)  # (C*K, batch*grid)
    slabs = gcols.reshape(3, *kernel, 2, *plan.grid)  # a view
    for index in plan.wraps:
        slabs[index] = np.inf  # belongs to padding: must be dropped, not added
    got = im.col2im_stride1(xp, gcols, shape, kernel, padding, dilation, compact)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    strided = im.padded_matrix(xp, None, None, *gcols.shape, gcols.dtype)  # rows apart
    strided[...] = w.T @ im.rows_on_grid(xp, gy, plan.grid)
    np.testing.assert_allclose(
        im.col2im_stride1(xp, strided, shape, kernel, padding, dilation, compact), expected,
        rtol=1e-12, atol=1e-12)


def test_padded_matrix_rows_lie_a_cache_line_apart():
    m = im.padded_matrix(xp, None, None, 3, 1024, np.float32)
    assert m.shape == (3, 1024) and m.strides == (4 * (1024 + 16), 4)
    assert im.padded_matrix(xp, None, None, 2, 5, np.float64).strides == (8 * 13, 8)


def test_rows_round_trip():
    y = np.arange(2 * 3 * 4 * 5.0).reshape(2, 3, 4, 5)
    rows = im.to_rows(xp, y)
    assert rows.shape == (3, 2 * 4 * 5)
    np.testing.assert_array_equal(im.from_rows(xp, rows, 2, (4, 5)), y)


@needs_torch
@pytest.mark.parametrize("case", CONV_GEOMETRIES, ids=[c[0] for c in CONV_GEOMETRIES])
def test_im2col_gemm_is_torch_conv(case):
    _, spatial, kernel, stride, padding, dilation = case
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, *spatial))
    w = rng.standard_normal((4, 3, *kernel))
    cols = im.im2col(xp, x, kernel, stride, padding, dilation)
    out = im.conv_out_spatial(spatial, kernel, stride, padding, dilation)
    y = im.from_rows(xp, w.reshape(4, -1) @ cols, 2, out)
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d,
            3: torch.nn.functional.conv3d}[len(spatial)]
    flat_pad = [v for lo_hi in reversed(padding) for v in lo_hi]  # F.pad order: last dim first
    xt = torch.nn.functional.pad(torch.from_numpy(x), flat_pad)
    expected = conv(xt, torch.from_numpy(w), stride=stride, dilation=dilation).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- pooling
POOL_GEOMETRIES = [
    # id, spatial, kernel, stride, padding, dilation, ceil_mode
    ("1d", (8,), (2,), (2,), (0,), (1,), False),
    ("1d-k3s2p1-ceil", (8,), (3,), (2,), (1,), (1,), True),
    ("2d-k2s2", (6, 4), (2, 2), (2, 2), (0, 0), (1, 1), False),
    ("2d-k3s1p1", (5, 6), (3, 3), (1, 1), (1, 1), (1, 1), False),
    ("2d-k3s2-ceil", (7, 6), (3, 2), (2, 2), (0, 1), (1, 1), True),
    ("2d-k2s1d2", (6, 6), (2, 2), (1, 1), (0, 1), (2, 2), False),
    ("2d-k3s3p1-ceil", (5, 5), (3, 3), (3, 3), (1, 1), (1, 1), True),
    ("3d-k2s2p1-ceil", (5, 4, 5), (2, 3, 2), (2, 2, 2), (1, 1, 0), (1, 1, 2), True),
]
POOL_IDS = [c[0] for c in POOL_GEOMETRIES]


def _distinct(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.permutation(math.prod(shape)).reshape(shape).astype(np.float64) - 10.0


@pytest.mark.parametrize("case", POOL_GEOMETRIES, ids=POOL_IDS)
def test_window_boxes_stay_inside(case):
    _, spatial, kernel, stride, padding, dilation, ceil_mode = case
    out = im.pool_out_spatial(spatial, kernel, stride, padding, dilation, ceil_mode)
    seen = np.zeros(out, np.int64)
    for _, in_slices, out_slices in win.window_boxes(spatial, kernel, stride, padding,
                                                    dilation, out):
        block = np.zeros(spatial)[in_slices[2:]]
        assert block.shape == seen[out_slices[2:]].shape
        seen[out_slices[2:]] += 1
    assert seen.min() >= 1  # every window has at least one element inside


@pytest.mark.parametrize("case", POOL_GEOMETRIES, ids=POOL_IDS)
def test_max_pool_matches_loops(case, route):
    _, spatial, kernel, stride, padding, dilation, ceil_mode = case
    x = _distinct((2, 3, *spatial))
    y, argk = win.max_pool(xp, x, kernel, stride, padding, dilation, ceil_mode)
    ref_y, ref_index = ref_pool(x, kernel, stride, padding, dilation, ceil_mode, "max")
    np.testing.assert_array_equal(y, ref_y)
    index = win.flat_indices(xp, argk, spatial, kernel, stride, padding, dilation)
    np.testing.assert_array_equal(index, ref_index)
    np.testing.assert_array_equal(
        win.window_gather(xp, x, argk, kernel, stride, padding, dilation), y)


def test_max_pool_ties_nan_and_minus_inf(route):
    x = np.array([[[[1.0, 1.0, 2.0, 2.0, -np.inf, -np.inf],
                    [1.0, 1.0, np.nan, 2.0, -np.inf, -np.inf]]]])
    y, argk = win.max_pool(xp, x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    np.testing.assert_array_equal(y, [[[[1.0, np.nan, -np.inf]]]])
    # ties: the first maximal element in row-major window order; NaN wins; all -inf: the first
    np.testing.assert_array_equal(argk, [[[[0, 2, 0]]]])
    ref_y, ref_index = ref_pool(x, (2, 2), (2, 2), (0, 0), (1, 1), False, "max")
    index = win.flat_indices(xp, argk, (2, 6), (2, 2), (2, 2), (0, 0), (1, 1))
    np.testing.assert_array_equal(index, ref_index)
    # with padding, a window whose inside is all -inf still points inside
    x = np.full((1, 1, 3, 3), -np.inf)
    y, argk = win.max_pool(xp, x, (3, 3), (2, 2), (1, 1), (1, 1), False)
    index = win.flat_indices(xp, argk, (3, 3), (3, 3), (2, 2), (1, 1), (1, 1))
    np.testing.assert_array_equal(index, [[[[0, 1], [3, 4]]]])


@pytest.mark.parametrize("case", POOL_GEOMETRIES, ids=POOL_IDS)
def test_window_scatter_is_adjoint_of_gather(case, route):
    _, spatial, kernel, stride, padding, dilation, ceil_mode = case
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, *spatial))
    _, argk = win.max_pool(xp, x, kernel, stride, padding, dilation, ceil_mode)
    z = rng.standard_normal(x.shape)
    gy = rng.standard_normal(argk.shape)
    gathered = win.window_gather(xp, z, argk, kernel, stride, padding, dilation)
    scattered = win.window_scatter(xp, gy, argk, x.shape, kernel, stride, padding, dilation)
    np.testing.assert_allclose((gathered * gy).sum(), (z * scattered).sum(), rtol=1e-12)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", [c for c in POOL_GEOMETRIES if set(c[5]) == {1}],
                         ids=lambda c: c[0])
def test_avg_pool_matches_loops(case, count_include_pad):
    _, spatial, kernel, stride, padding, _, ceil_mode = case
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, *spatial))
    out = im.pool_out_spatial(spatial, kernel, stride, padding, (1,) * len(kernel), ceil_mode)
    total = win.window_sum(xp, x, kernel, stride, padding, out)
    divisor = win.avg_pool_divisor(xp, spatial, kernel, stride, padding, out, count_include_pad,
                                  x.dtype)
    ref_y, _ = ref_pool(x, kernel, stride, padding, (1,) * len(kernel), ceil_mode, "avg",
                        count_include_pad)
    np.testing.assert_allclose(total / divisor, ref_y, rtol=1e-12)
    gy = rng.standard_normal(total.shape)
    back = win.window_sum_adjoint(xp, gy, x.shape, kernel, stride, padding)
    np.testing.assert_allclose((total * gy).sum(), (x * back).sum(), rtol=1e-12)


@needs_torch
@pytest.mark.parametrize("case", POOL_GEOMETRIES, ids=POOL_IDS)
def test_pool_sizes_and_indices_match_torch(case):
    _, spatial, kernel, stride, padding, dilation, ceil_mode = case
    n = len(spatial)
    x = _distinct((2, 3, *spatial), seed=6)
    pool = getattr(torch.nn.functional, f"max_pool{n}d")
    ty, tindex = pool(torch.from_numpy(x), kernel, stride, padding, dilation,
                      ceil_mode=ceil_mode, return_indices=True)
    y, argk = win.max_pool(xp, x, kernel, stride, padding, dilation, ceil_mode)
    np.testing.assert_array_equal(y, ty.numpy())
    index = win.flat_indices(xp, argk, spatial, kernel, stride, padding, dilation)
    np.testing.assert_array_equal(index, tindex.numpy())


@needs_torch
def test_out_sizes_match_torch_exhaustively():
    # every small 1-d geometry where PyTorch accepts the pool: the ceil-mode rule included
    for n, k, s, p, d, ceil_mode in itertools.product(range(1, 9), range(1, 4), range(1, 4),
                                                     range(0, 2), range(1, 3), (False, True)):
        if p > k // 2 or n + 2 * p < d * (k - 1) + 1:
            continue
        (out,) = im.pool_out_spatial((n,), (k,), (s,), (p,), (d,), ceil_mode)
        t = torch.nn.functional.max_pool1d(torch.zeros(1, 1, n), k, s, p, d, ceil_mode=ceil_mode)
        assert out == t.shape[-1], (n, k, s, p, d, ceil_mode)
        (conv_out,) = im.conv_out_spatial((n,), (k,), (s,), ((p, p),), (d,))
        t = torch.nn.functional.conv1d(torch.zeros(1, 1, n), torch.zeros(1, 1, k), stride=s,
                                       padding=p, dilation=d)
        assert conv_out == t.shape[-1]
