"""Raw-array index work for convolution, in any number of spatial dims N: the column matrix
(im2col) and its exact adjoint (col2im), on strided views, padded and shared-zero grids; and
the sizes, kernel offsets and cached window index that pooling (``_windows``) shares.

Every function takes the array module ``xp`` first and uses only ``xp.*`` and array methods, so
numpy and cupy run the same code. Python loops run over kernel offsets only (at most
``prod(kernel)`` iterations), never over batch, channels or output positions. Small inputs
(``SMALL_COLUMNS``, last section) skip even those: one gather through a cached index array.

Shapes: an input is ``(batch, channels, *spatial)``; a kernel offset is an N-tuple ``offset``
with ``0 <= offset[i] < kernel[i]``, enumerated in row-major order; ``padding`` is an N-tuple of
``(lo, hi)`` pairs for convolution and an N-tuple of ints for pooling.

Convolution uses the column layout ``cols: (in_channels * prod(kernel), batch * prod(out))``,
rows ordered (channel, *offset) and columns (batch, *out): the weight matrix multiplies it from
the left, which made the GEMMs 2-3 times faster than the transposed layout (BENCHMARKS.md).
"""
from __future__ import annotations

import functools
import itertools
import math
import typing

from .. import backend


ALL2 = (slice(None), slice(None))  # the two leading (batch, channel) axes, whatever their order


# ----------------------------------------------------------------------------- sizes
@functools.lru_cache(maxsize=256)
def kernel_offsets(kernel):
    """All offsets of a kernel in row-major order: ``(0, .., 0), (0, .., 1), ...``."""
    return tuple(itertools.product(*(range(k) for k in kernel)))


def conv_out_spatial(spatial, kernel, stride, padding, dilation):
    """Output sizes of a convolution: ``(n + lo + hi - d * (k - 1) - 1) // s + 1`` per dim.

    A size below 1 means the dilated kernel is larger than the padded input; callers check.
    """
    return tuple((n + lo + hi - d * (k - 1) - 1) // s + 1
                 for n, k, s, (lo, hi), d in zip(spatial, kernel, stride, padding, dilation))


def pool_out_spatial(spatial, kernel, stride, padding, dilation, ceil_mode):
    """Output sizes of a pooling window, PyTorch's rule.

    ``floor`` (or ``ceil``) of ``(n + 2p - d * (k - 1) - 1) / s``, plus one; with ``ceil_mode``
    the last window must start inside the input or its left padding, else it is dropped.
    """
    sizes = []
    for n, k, s, p, d in zip(spatial, kernel, stride, padding, dilation):
        span = n + 2 * p - d * (k - 1) - 1
        out = (span + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (out - 1) * s >= n + p:
            out -= 1
        sizes.append(out)
    return tuple(sizes)


def window_slices(offset, stride, dilation, out_spatial):
    """Spatial slices picking, for every output position, the element at ``offset`` of its
    window in a padded input: ``offset * d + o * s`` for ``o < out``."""
    return tuple(slice(k * d, k * d + s * (o - 1) + 1, s)
                 for k, s, d, o in zip(offset, stride, dilation, out_spatial))


@functools.lru_cache(maxsize=256)
def _all_window_slices(kernel, stride, dilation, out_spatial):
    """``window_slices`` of every kernel offset, after the two leading axes (cached)."""
    return tuple(ALL2 + window_slices(offset, stride, dilation, out_spatial)
                 for offset in kernel_offsets(kernel))


def row_major_steps(shape):
    """Element steps of a C-contiguous array of ``shape``: ``(prod(shape[1:]), ..., 1)``."""
    steps = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        steps[i] = steps[i + 1] * shape[i + 1]
    return steps


# ----------------------------------------------------------------------------- conv layouts
def _empty(xp, work, name, shape, dtype):
    """A new array, or a work array from ``work(name, shape, dtype)`` (see backend.scratch)."""
    return xp.empty(shape, dtype=dtype) if work is None else work(name, shape, dtype)


def pad_channels_first(xp, x, padding, work=None):
    """``x (batch, C, *spatial)`` -> zero-padded ``(C, batch, *padded)``.

    Channels go first so that each channel's rows of the column matrix are contiguous.
    """
    batch, channels, *spatial = x.shape
    padded = [lo + n + hi for n, (lo, hi) in zip(spatial, padding)]
    buf = _empty(xp, work, "im2col.padded", (channels, batch, *padded), x.dtype)
    buf[...] = 0
    inner = tuple(slice(lo, lo + n) for n, (lo, _) in zip(spatial, padding))
    buf[ALL2 + inner] = x.swapaxes(0, 1)  # (C, batch, *spatial)
    return buf


def im2col(xp, x, kernel, stride, padding, dilation, work=None):
    """Unfold ``x (batch, C, *spatial)`` into ``cols (C * prod(kernel), batch * prod(out))``.

    ``cols[(c, *offset), (b, *o)] = x_padded[b, c, *(o * s + offset * d)]``; one strided copy per
    kernel offset. With ``work`` (``backend.scratch``-like) the result and the padded copy live
    in work arrays named ``im2col.cols`` and ``im2col.padded``.
    """
    batch, channels, *spatial = x.shape
    out = conv_out_spatial(spatial, kernel, stride, padding, dilation)
    if any(lo or hi for lo, hi in padding):
        source = pad_channels_first(xp, x, padding, work)  # (C, batch, *padded)
    else:
        source = x.swapaxes(0, 1)  # (C, batch, *spatial), a view
    cols = _empty(xp, work, "im2col.cols", (channels, math.prod(kernel), batch, *out), x.dtype)
    for k, window in enumerate(_all_window_slices(kernel, stride, dilation, out)):
        cols[:, k] = source[window]
    return cols.reshape(channels * math.prod(kernel), batch * math.prod(out))  # (C*K, batch*out)


def padded_matrix(xp, work, name, rows, cols, dtype):
    """An uninitialised ``(rows, cols)`` matrix whose rows lie one cache line (64 bytes) further
    apart than ``cols`` elements: a view of a ``(rows, cols + 64 / itemsize)`` work array.

    OpenBLAS ran GEMMs on column matrices whose rows are a multiple of 4 KiB apart (1024
    positions per example in float32) 3 to 6 % slower, their rows competing for the same cache
    sets; BLAS takes the longer leading dimension as it is, without a copy."""
    pad = max(1, 64 // xp.dtype(dtype).itemsize)
    return _empty(xp, work, name, (rows, cols + pad), dtype)[:, :cols]  # (rows, cols), a view


def flat_im2col_applies(spatial, kernel, stride, padding, dilation):
    """Whether ``im2col_flat`` unfolds this geometry: stride 1, and every spatial dim after the
    first keeps its size (``lo + hi == d * (k - 1)``: 'same' padding, or a kernel of 1)."""
    return all(s == 1 for s in stride) and all(
        lo + hi == d * (k - 1) for k, (lo, hi), d in zip(kernel[1:], padding[1:], dilation[1:]))


def im2col_flat(xp, x, kernel, padding, dilation, work=None):
    """``im2col`` for the geometries of ``flat_im2col_applies``: the same ``cols (C *
    prod(kernel), batch * prod(out))``, by one strided copy.

    With ``out[1:] == spatial[1:]``, the output positions and each example's input share one
    flattened layout, so row ``(c, *offset)`` is channel ``c`` shifted by a constant number of
    elements, ``sum_i (offset_i * d_i - lo_i) * step_i``, linear in ``offset``: one
    ``as_strided`` view ``(C, *kernel, batch, prod(out))`` holds every row and one copy unfolds
    them, in long contiguous runs (``im2col`` copies the short rows of the last dim one by one:
    1.6 times slower on a 32x32 input). Reads before or after an example (dim 0 out of range)
    land in zero margins around it, in the work array ``im2col.padded``; reads that wrap into
    the neighbouring row of a later dim find real data and are zeroed afterwards, one slab per
    (dim, kernel offset) that wraps. ``cols`` is a ``padded_matrix`` (``im2col.cols``).
    """
    batch, channels, *spatial = x.shape
    plan = _flat_plan(tuple(spatial), tuple(kernel), tuple(padding), tuple(dilation))
    size, positions = math.prod(spatial), math.prod(plan.out)
    source = x.reshape(batch, channels, size).swapaxes(0, 1)  # (C, batch, S)
    if plan.lead or plan.trail:  # zero margins around each example
        buf = _empty(xp, work, "im2col.padded", (channels, batch, plan.lead + size + plan.trail),
                     x.dtype)
        buf[:, :, :plan.lead] = 0
        buf[:, :, plan.lead + size:] = 0
        buf[:, :, plan.lead:plan.lead + size] = source
        source = buf  # (C, batch, lead + S + trail)
    first = source[:, :, plan.lead + plan.start:]  # where offset 0 reads output position 0
    view = _shifted_view(xp, first, kernel, plan.offset_steps, positions)  # (C, *kernel, batch, P)
    cols = padded_matrix(xp, work, "im2col.cols", channels * math.prod(kernel),
                         batch * positions, x.dtype)  # (C*K, batch*out)
    slabs = cols.reshape(channels, *kernel, batch, *plan.out)  # a view, written through
    slabs.reshape(view.shape)[...] = view  # (C, *kernel, batch, P)
    for index in plan.wraps:
        slabs[index] = 0
    return cols  # (C*K, batch*out)


def dim0_offsets(xp, cols, count, groups, k0, shift, length):
    """Kernel offsets of dim 0 as shifted columns (a view, no copy): ``cols (groups * R, count
    * L)``, ``L`` columns per example, -> ``(count, k0, groups, R, length)`` whose entry ``(b, a,
    g, r, p)`` is ``cols[g * R + r, b * L + a * shift + p]``."""
    rows, columns = cols.shape
    row_step, step = cols.strides  # bytes
    return xp.lib.stride_tricks.as_strided(
        cols, (count, k0, groups, rows // groups, length),
        (columns // count * step, shift * step, rows // groups * row_step, row_step, step))


def _shifted_view(xp, first, kernel, offset_steps, length):
    """``(C, *kernel, *first.shape[1:-1], length)``, a view of ``first (C, ..., L)`` (no copy):
    entry ``(c, *offset, ..., p)`` is ``first[c, ..., p + sum_i offset_i * offset_steps[i]]``,
    read past ``L`` where the offsets reach (the caller's buffer holds those elements)."""
    c_step, *outer, step = first.strides  # bytes
    return xp.lib.stride_tricks.as_strided(
        first, (first.shape[0], *kernel, *first.shape[1:-1], length),
        (c_step, *(s * step for s in offset_steps), *outer, step))


class Layout(typing.NamedTuple):
    """A flattened stride-1 layout (``_flat_plan``, ``grid_plan``); sizes in elements.

    Each example's data lies in ``grid``, ``zeros[i]`` slots in front of it in every dim; the
    window at position ``p`` of an example's flattened grid reads (``col2im``: adds to) its
    kernel offset ``k`` at element ``p + shifts[k]`` of that flattened grid, which may lie in
    the margins or in the grid of the example before or after."""
    kernel: tuple
    out: tuple  # output sizes
    grid: tuple  # an example's laid-out spatial shape
    zeros: tuple  # z_i: zero slots in front of the data, per dim
    inner: tuple  # slices of ``grid`` where the data lies: z_i .. z_i + n_i
    offset_steps: tuple  # flat step of each kernel dim: d_i * step_i
    start: int  # flat shift from a position to the element kernel offset 0 reads there
    shifts: tuple  # the same for every kernel offset, row-major: start + sum_i k_i * d_i * step_i
    lead: int  # elements before the first position that its reads reach: max(0, -start)
    trail: int  # im2col_flat: elements after each example that its last outputs read
    span: int  # grid_plan: elements after the batch's grids that their reads reach, + lead
    wraps: tuple  # index of every slab of (C, *kernel, batch, *grid or out) reaching another row


def _layout(spatial, kernel, padding, dilation, zeros, grid, positions):
    """The ``Layout`` of data in rows ``grid`` after ``zeros`` slots per dim, whose windows
    start at the positions ``positions`` of each example (the leading corner of ``grid``)."""
    n = len(spatial)
    out = conv_out_spatial(spatial, kernel, (1,) * n, padding, dilation)
    steps = row_major_steps(grid)
    offset_steps = tuple(d * step for d, step in zip(dilation, steps))
    start = sum((z - lo) * step for z, (lo, _), step in zip(zeros, padding, steps))
    shifts = tuple(start + sum(k * s for k, s in zip(offset, offset_steps))
                   for offset in kernel_offsets(kernel))
    lead = max(0, -start)
    trail = max(0, shifts[-1] + math.prod(positions) - math.prod(grid))
    wraps = []
    for i in range(1, n):  # dim 0 never wraps: margins (im2col_flat) or shared zero rows
        z, (lo, hi) = zeros[i], padding[i]
        if z >= lo and grid[i] >= spatial[i] + hi:
            continue  # every read lands in its row or in the zeros in front of the next one
        for j in range(kernel[i]):  # output o reads (adds to) row index o + shift: wraps
            shift = j * dilation[i] - lo + z  # outside [0, grid_i), where the padded input is 0
            bands = (slice(0, min(-shift, out[i])), slice(max(grid[i] - shift, 0), out[i]))
            for band in bands:
                if band.start < band.stop:
                    index = [slice(None)] * (2 * n + 2)
                    index[1 + i], index[n + 2 + i] = j, band
                    wraps.append(tuple(index))
    inner = tuple(slice(z, z + s) for z, s in zip(zeros, spatial))
    return Layout(tuple(kernel), out, tuple(grid), tuple(zeros), inner, offset_steps, start,
                  shifts, lead, trail, max(shifts) + lead, tuple(wraps))


@functools.lru_cache(maxsize=256)
def _flat_plan(spatial, kernel, padding, dilation):
    """The ``Layout`` of ``im2col_flat`` (pure in int tuples, cached): each example's input as
    it is (no zero slots), windows at its output positions, zero margins ``lead`` and ``trail``
    around it."""
    out = conv_out_spatial(spatial, kernel, (1,) * len(spatial), padding, dilation)
    return _layout(spatial, kernel, padding, dilation, (0,) * len(spatial), spatial, out)


def compact_grid_applies(spatial, out):
    """Whether ``grid_plan(..., compact=True)`` applies: no output row shorter than the input
    row in the dims after the first (stride 1 with 'same' or wider padding; any 1-d conv)."""
    return all(o >= s for s, o in zip(spatial[1:], out[1:]))


@functools.lru_cache(maxsize=256)
def grid_plan(spatial, kernel, padding, dilation, compact=False):
    """The flattened grid of the stride-1 routes (pure in int tuples, cached): a ``Layout``
    whose ``grid`` is one example's, the input at ``inner``, zeros around it, the window that
    starts at position ``p`` of the grid in its column ``p`` (``im2col_grid``, ``rows_on_grid``,
    ``col2im_stride1_add``): outputs in the leading corner ``[:out_i]``, the other columns
    cropped (forward) or zero (input gradient).

    Rows share their zeros: ``z_i = max(lo_i, hi_i, out_i - n_i)`` slots in front of each row's
    data are also the right padding of the row before, and ``z_0`` rows in front of each
    example's the bottom padding of the example before. So the grid is ``n_i + z_i`` wide, 33
    instead of the padded input's 34 for a 32-wide row with padding 1, and every read that an
    output needs lands on its element or on a zero. With ``compact`` (needs
    ``compact_grid_applies``) the dims after the first are ``out_i`` wide instead, so that
    ``gy[b]``'s rows are the grid's (``z_i = min(lo_i, out_i - n_i)``); then the entries that
    would be added past a row, onto data (they belong to padding), are zeroed first
    (``wraps``).
    """
    n = len(spatial)
    out = conv_out_spatial(spatial, kernel, (1,) * n, padding, dilation)
    zeros, grid = [], []
    for i, (s, o, (lo, hi)) in enumerate(zip(spatial, out, padding)):
        z = min(lo, o - s) if compact and i else max(lo, hi, o - s)
        zeros.append(z)
        grid.append(o if compact and i else s + z)
    return _layout(spatial, kernel, padding, dilation, zeros, grid, grid)


def im2col_grid(xp, x, kernel, padding, dilation, work=None):
    """Stride-1 ``im2col`` on the grid of ``grid_plan``: ``x (batch, C, *spatial)`` -> ``cols
    (C * prod(kernel), batch * prod(grid))``.

    Column ``(b, p)`` holds the window that starts at position ``p`` of example ``b``'s grid.
    On the flattened grid a kernel offset is a constant shift, linear in the offset, so one
    strided view holds every offset's rows and one copy of long contiguous runs unfolds them
    (about 1.6 times faster than the strided copies of ``im2col``; one copy instead of one per
    offset saved another 20 % on a 32x32 input). Columns at positions that start no output
    window hold whatever the shifted reads find (the next row or example, or the zero tail):
    the GEMM's results there are cropped (``from_grid_rows``), never used. ``cols`` is a
    ``padded_matrix``; with ``work`` it and the grid are the work arrays ``im2col.cols`` and
    ``im2col.padded``.
    """
    batch, channels, *spatial = x.shape
    plan = grid_plan(tuple(spatial), tuple(kernel), tuple(padding), tuple(dilation))
    size = batch * math.prod(plan.grid)
    flat = _empty(xp, work, "im2col.padded", (channels, size + plan.span), x.dtype)
    flat[:, :plan.lead] = 0
    flat[:, plan.lead + size:] = 0  # the tail read past the last example
    grids = flat[:, plan.lead:plan.lead + size].reshape(channels, batch, *plan.grid)  # a view
    for i, z in enumerate(plan.zeros):  # (C, batch, *grid): the zeros in front of every row
        if z:
            grids[ALL2 + (slice(None),) * i + (slice(0, z),)] = 0
    grids[ALL2 + plan.inner] = x.swapaxes(0, 1)  # (C, batch, *spatial)
    view = _shifted_view(xp, flat[:, plan.lead + plan.start:], kernel, plan.offset_steps,
                         size)  # (C, *kernel, batch*grid)
    cols = padded_matrix(xp, work, "im2col.cols", channels * len(plan.shifts), size, x.dtype)
    cols.reshape(view.shape)[...] = view  # a view of cols, written through
    return cols  # (C*K, batch*grid)


def from_grid_rows(xp, rows, batch, grid, out_spatial):
    """``(C, batch * prod(grid))`` -> ``(batch, C, *out)``: the outputs in the leading corner
    of each example's grid, a strided view (no copy)."""
    rows = rows.reshape(rows.shape[0], batch, *grid)  # (C, batch, *grid)
    return rows[ALL2 + tuple(slice(0, o) for o in out_spatial)].swapaxes(0, 1)


def padded_spatial(spatial, padding):
    return tuple(lo + n + hi for n, (lo, hi) in zip(spatial, padding))


def crop_channels_first(xp, padded, spatial, padding):
    """``(C, batch, *padded)`` -> ``(batch, C, *spatial)``, a view without the padding."""
    inner = tuple(slice(lo, lo + n) for n, (lo, _) in zip(spatial, padding))
    return padded[ALL2 + inner].swapaxes(0, 1)  # (batch, C, *spatial)


def col2im_add(xp, cols, buf, kernel, stride, dilation):
    """Adjoint of ``im2col``: add every entry of ``cols (C * prod(kernel), batch * prod(out))``
    onto the element of ``buf (C, batch, *padded)`` it was copied from, in place.

    One strided in-place add per kernel offset: deterministic, and as fast as a scatter-add.
    """
    channels, batch, *padded = buf.shape
    out = conv_out_spatial(padded, kernel, stride, ((0, 0),) * len(kernel), dilation)
    cols = cols.reshape(channels, math.prod(kernel), batch, *out)  # (C, K, batch, *out)
    for k, window in enumerate(_all_window_slices(kernel, stride, dilation, out)):
        buf[window] += cols[:, k]


def col2im(xp, cols, input_shape, kernel, stride, padding, dilation):
    """``col2im_add`` into a new zero buffer: ``cols`` -> ``(batch, C, *spatial)``."""
    batch, channels, *spatial = input_shape
    buf = xp.zeros((channels, batch, *padded_spatial(spatial, padding)), dtype=cols.dtype)
    col2im_add(xp, cols, buf, kernel, stride, dilation)
    return crop_channels_first(xp, buf, spatial, padding)


def col2im_stride1_add(xp, cols, flat, plan):
    """``col2im_add`` for stride 1, with ``cols`` laid out on the grid of ``plan``
    (``grid_plan``), several examples' grids one after the other.

    ``cols: (C * prod(kernel), count * prod(grid))`` holds, for every position ``p`` of an
    example's grid, the entry of the window that starts at ``p``; positions that start no
    window must hold zeros (``rows_on_grid`` of the output gradient gives that). On the
    flattened grid a kernel offset is then a constant shift, so each offset is one contiguous
    add per channel instead of many short strided rows: about 4 times faster than
    ``col2im_add``. Zero columns that reach the next row or example add nothing; the entries of
    ``plan.wraps`` (compact grids: they would be added past a row, onto data) are set to zero
    first, in ``cols`` (they belong to padding). ``flat: (C, count * prod(grid) + plan.span)``
    is the flattened ``(C, count, *grid)`` buffer from ``plan.lead`` on, updated in place.
    """
    channels, length = flat.shape[0], flat.shape[1] - plan.span  # count * prod(grid)
    if plan.wraps:
        count = length // math.prod(plan.grid)
        slabs = cols.reshape(channels, *plan.kernel, count, *plan.grid)  # a view
        for index in plan.wraps:
            slabs[index] = 0
    cols = cols.reshape(channels, len(plan.shifts), length)  # (C, K, count*grid)
    for k, shift in enumerate(plan.shifts):
        base = plan.lead + shift
        flat[:, base:base + length] += cols[:, k]


def from_col2im_grid(xp, flat, plan, batch):
    """``col2im_stride1_add``'s whole buffer ``(C, batch * prod(grid) + plan.span)`` -> the
    input gradient ``(batch, C, *spatial)``, a strided view (no copy)."""
    size = math.prod(plan.grid)
    grid = flat[:, plan.lead:plan.lead + batch * size].reshape(
        flat.shape[0], batch, *plan.grid)  # (C, batch, *grid)
    return grid[ALL2 + plan.inner].swapaxes(0, 1)  # (batch, C, *spatial)


def col2im_stride1(xp, cols, input_shape, kernel, padding, dilation, compact=False):
    """``col2im_stride1_add`` into a new zero buffer: ``cols`` on the grid of ``grid_plan``
    -> ``(batch, C, *spatial)``."""
    batch, channels, *spatial = input_shape
    plan = grid_plan(tuple(spatial), tuple(kernel), tuple(padding), tuple(dilation), compact)
    flat = xp.zeros((channels, batch * math.prod(plan.grid) + plan.span), dtype=cols.dtype)
    col2im_stride1_add(xp, cols, flat, plan)
    return from_col2im_grid(xp, flat, plan, batch)


def to_rows(xp, y, work=None):
    """``(batch, C, *out)`` -> ``(C, batch * prod(out))``: a view when ``y`` is already laid out
    so, else a copy (into the work array ``to_rows`` with ``work``)."""
    if y.shape[0] == 1:  # one example: (1, C, *out) is already laid out so
        return y.reshape(y.shape[1], -1)  # (C, out)
    rows = y.swapaxes(0, 1)  # (C, batch, *out)
    if work is None or rows.flags.c_contiguous:
        return rows.reshape(y.shape[1], -1)  # (C, batch*out)
    buf = work("to_rows", rows.shape, y.dtype)
    buf[...] = rows
    return buf.reshape(y.shape[1], -1)  # (C, batch*out)


def from_rows(xp, rows, batch, out_spatial):
    """``(C, batch * prod(out))`` -> ``(batch, C, *out)``, a transposed view (no copy)."""
    return rows.reshape(rows.shape[0], batch, *out_spatial).swapaxes(0, 1)  # (batch, C, *out)


def rows_on_grid(xp, y, grid, work=None):
    """``(batch, C, *out)`` -> ``(C, batch * prod(grid))``: ``y`` in the leading corner of each
    example's ``grid`` (``grid >= out`` per dim), zeros elsewhere; the layout of
    ``col2im_stride1``. With ``work``, in the work array ``rows_on_grid``."""
    batch, channels, *out = y.shape
    buf = _empty(xp, work, "rows_on_grid", (channels, batch, *grid), y.dtype)
    buf[...] = 0
    buf[ALL2 + tuple(slice(0, n) for n in out)] = y.swapaxes(0, 1)  # (C, batch, *out)
    return buf.reshape(channels, -1)  # (C, batch*grid)


def offset_dtype(xp, count):
    return xp.int8 if count <= 127 else xp.int16 if count <= 32767 else xp.int64


# ----------------------------------------------------------------------------- small inputs
# On a few hundred elements every numpy call costs about a microsecond whatever its size, so
# the loops above over kernel offsets (several calls per offset) dominate. Up to a limit of
# gathered elements, one fancy-indexing gather through a cached index array replaces each loop;
# larger inputs keep the strided loops, which move each element several times faster. Measured
# crossovers (one thread): a conv forward about 60000 columns, max pooling 2x2 about 5000
# elements (``_windows.SMALL_ELEMENTS``); the limits stay below them and bound the cached index
# arrays (256 KiB at most per geometry). ``window_index`` serves both.
SMALL_COLUMNS = 16384  # convolution: entries of the column matrix


def is_small(batch, channels, out_spatial, kernel, limit=None):
    """Whether ``batch * channels * prod(out) * prod(kernel)`` gathered elements are few enough
    for the one-gather route (at most ``limit``, by default ``SMALL_COLUMNS``)."""
    limit = SMALL_COLUMNS if limit is None else limit
    return batch * channels * math.prod(out_spatial) * math.prod(kernel) <= limit


@functools.lru_cache(maxsize=64)  # small arrays (at most SMALL_COLUMNS entries) per geometry
def window_index(xp, device, shape, kernel, stride, dilation, out_spatial):
    """``index (batch * C * prod(out), prod(kernel))``: the flat position in an array of ``shape
    (batch, C, *spatial)`` of every window element (offsets in row-major order), and ``base
    (batch * C * prod(out),)``, ``arange * prod(kernel)``, the start of each window's row;
    ``ranks (batch * C * prod(out), prod(kernel))``, ``1 + offset`` in every row.
    Built with ``xp`` on ``device`` (cached per device; never written to)."""
    n = len(kernel)
    steps = row_major_steps(shape)
    with backend.on_device(xp, device):
        index = xp.arange(shape[0] * shape[1], dtype=xp.int64) * steps[1]  # (batch*C,)
        index = index.reshape((-1,) + (1,) * (2 * n))  # (batch*C, 1.., 1..)
        for i, (k, s, d, o, step) in enumerate(zip(kernel, stride, dilation, out_spatial,
                                                   steps[2:])):
            at_out, at_kernel = [1] * (1 + 2 * n), [1] * (1 + 2 * n)
            at_out[1 + i], at_kernel[1 + n + i] = o, k
            index = index + (xp.arange(o, dtype=xp.int64) * (s * step)).reshape(at_out) \
                + (xp.arange(k, dtype=xp.int64) * (d * step)).reshape(at_kernel)
        size, count = math.prod(out_spatial), math.prod(kernel)
        index = index.reshape(-1, count)  # (batch*C*out, K)
        base = xp.arange(shape[0] * shape[1] * size, dtype=xp.int64) * count  # (batch*C*out,)
        # (batch*C*out, K): 1 + each offset, repeated per window (a same-shape multiply costs
        # a third of a broadcasting one on a few elements)
        ranks = xp.tile(xp.arange(1, count + 1, dtype=offset_dtype(xp, count)), (base.size, 1))
    return index, base, ranks


@functools.lru_cache(maxsize=64)
def column_index(xp, device, shape, kernel, stride, padding, dilation, out_spatial):
    """The gather of ``im2col_small`` for an input of ``shape (batch, C, *spatial)``: ``index
    (C * prod(kernel), batch * prod(out))`` into the flattened zero-padded input, and the padded
    shape (None without padding). Built with ``xp`` on ``device``, cached, never written to."""
    padded = None
    if any(lo or hi for lo, hi in padding):
        padded = shape[:2] + padded_spatial(shape[2:], padding)
    source = padded or shape
    index = window_index(xp, device, source, kernel, stride, dilation, out_spatial)[0]
    with backend.on_device(xp, device):
        index = index.reshape(source[0], source[1], math.prod(out_spatial), -1)  # (batch, C, out, K)
        index = index.transpose(1, 3, 0, 2)  # (C, K, batch, out)
        return index.reshape(source[1] * index.shape[1], -1).copy(), padded  # (C*K, batch*out)


def gather_columns(xp, x, index, padded, padding):
    """``im2col`` of ``x`` through ``column_index``'s ``(index, padded)``: one gather, from a
    zero-padded copy when ``padded``."""
    if padded is not None:
        source = xp.zeros(padded, dtype=x.dtype)
        source[ALL2 + tuple(slice(lo, lo + n) for n, (lo, _) in zip(x.shape[2:], padding))] = x
        x = source
    return x.reshape(-1)[index]  # (C*K, batch*out)


def im2col_small(xp, x, kernel, stride, padding, dilation, out_spatial):
    """``im2col`` by one gather (for ``is_small`` inputs): the same result, the same layout.
    The geometry arguments are tuples (the index array is cached on them)."""
    index, padded = column_index(xp, backend.device_of(x), x.shape, kernel, stride, padding,
                                 dilation, out_spatial)
    return gather_columns(xp, x, index, padded, padding)

