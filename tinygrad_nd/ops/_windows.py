"""Raw-array window work for pooling, in any number of spatial dims N: max pooling with the
chosen element of every window (``argk``), its gather and scatter adjoints, PyTorch's flat
indices, and the window sums and divisors of average pooling.

As in ``_im2col`` (whose sizes, offsets and cached window index this module uses), every
function takes ``xp`` first, so numpy and cupy run the same code, and Python loops run over
kernel offsets only. Inputs of at most ``SMALL_ELEMENTS`` window elements whose windows lie
inside the input take one gather instead (last section). Pooling ``padding`` is an N-tuple of
ints, the same on both sides.
"""
from __future__ import annotations

import functools
import math

from .. import backend
from ._im2col import (
    ALL2, is_small, kernel_offsets, offset_dtype, pool_out_spatial, row_major_steps, window_index,
)


def window_boxes(spatial, kernel, stride, padding, dilation, out_spatial):
    """For each kernel offset, in row-major order: ``(k, in_slices, out_slices)``.

    ``out_slices`` selects the output positions whose window element at that offset lies inside
    the (unpadded) input, and ``in_slices`` those elements: input coordinate
    ``o * s - p + offset * d``. Padding and ceil-mode overhang are thus never materialised;
    offsets that fall outside for every output position are skipped.
    """
    return _window_boxes(*(tuple(int(v) for v in a)
                           for a in (spatial, kernel, stride, padding, dilation, out_spatial)))


@functools.lru_cache(maxsize=256)  # pure in its int-tuple arguments: saves per-call overhead
def _window_boxes(spatial, kernel, stride, padding, dilation, out_spatial):
    boxes = []
    for k, offset in enumerate(kernel_offsets(kernel)):
        in_slices, out_slices = [], []
        for n, j, s, p, d, out in zip(spatial, offset, stride, padding, dilation, out_spatial):
            shift = j * d - p  # input coordinate of output 0
            lo = -(shift // s) if shift < 0 else 0  # first o with o*s + shift >= 0
            hi = min(out, (n - 1 - shift) // s + 1)  # one past the last o with o*s + shift < n
            if lo >= hi:
                break
            start = lo * s + shift
            in_slices.append(slice(start, start + (hi - lo - 1) * s + 1, s))
            out_slices.append(slice(lo, hi))
        else:
            boxes.append((k, ALL2 + tuple(in_slices), ALL2 + tuple(out_slices)))
    return tuple(boxes)


def _covers(out_slices, out_spatial):
    return all(sl.start == 0 and sl.stop == o for sl, o in zip(out_slices[2:], out_spatial))


def _lowest(xp, dtype):
    """The identity of max: -inf for floats, the smallest integer for integer dtypes."""
    return -xp.inf if xp.dtype(dtype).kind == "f" else xp.iinfo(dtype).min


def _first_inside(xp, kernel, stride, padding, dilation, out_spatial):
    """Row-major offset index of the first in-bounds element of each window, ``(*out)``."""
    steps = row_major_steps(kernel)
    index = 0
    for i, (s, p, d, out) in enumerate(zip(stride, padding, dilation, out_spatial)):
        start = xp.arange(out) * s - p  # input coordinate of offset 0
        first = xp.maximum(-(start // d), 0)  # smallest j with start + j*d >= 0
        shape = [1] * len(kernel)
        shape[i] = out
        index = index + (first * steps[i]).reshape(shape)  # (1, .., out_i, .., 1)
    return xp.broadcast_to(index, out_spatial)


def _bits(xp, a):
    """``a`` viewed as signed integers of its itemsize (no copy)."""
    return a.view(xp.dtype(f"i{a.dtype.itemsize}"))


def _select_bits(xp, mask, values):
    """The bits of ``values`` where ``mask``, else all-zero bits (0.0), as integers.

    Branch-free and exact: the bits AND an integer mask of -1 (all ones) or 0, so NaN where the
    mask is False still gives 0, unlike ``values * mask``; ``xp.where`` with a random mask
    was about 10 times slower on numpy (branch mispredictions)."""
    bits = _bits(xp, values)
    return bits & -mask.astype(bits.dtype)


def _tuples(*values):
    """Each of ``values`` as a tuple (the cached helpers need hashable arguments)."""
    if all(type(v) is tuple for v in values):
        return values
    return tuple(tuple(v) for v in values)


@functools.lru_cache(maxsize=256)
def _disjoint(kernel, stride, dilation):
    """True when no two windows share an element: the stride covers the dilated kernel."""
    return all(s >= d * (k - 1) + 1 for k, s, d in zip(kernel, stride, dilation))


def max_pool(xp, x, kernel, stride, padding, dilation, ceil_mode):
    """Window maxima of ``x (batch, C, *spatial)`` and, for each, the row-major offset of the
    chosen element in its window (``argk``, a small integer dtype).

    PyTorch's CPU rule: start from -inf at the first in-bounds element, then take a later
    element when it is greater or is NaN. So ties go to the first maximal element, a window
    with NaN outputs NaN (its last NaN), and padding never wins. Offsets come in increasing
    order, so the last taker is the largest offset that took: ``argk = max(argk, take * k)``,
    and ``best = maximum(best, value)`` propagates NaN; both are branch-free.
    """
    kernel, stride, padding, dilation = _tuples(kernel, stride, padding, dilation)
    out, small = pool_plan(x.shape, kernel, stride, padding, dilation, ceil_mode, SMALL_ELEMENTS)
    if small:
        return max_pool_small(xp, x, kernel, stride, dilation, out)
    batch, channels, *spatial = x.shape
    boxes = window_boxes(spatial, kernel, stride, padding, dilation, out)
    dtype = offset_dtype(xp, math.prod(kernel))
    floating = xp.dtype(x.dtype).kind == "f"
    if boxes[0][0] == 0 and _covers(boxes[0][2], out):  # offset 0 is inside every window
        best = x[boxes[0][1]].copy()
        argk = xp.zeros(best.shape, dtype=dtype)
        boxes = boxes[1:]
    else:
        best = xp.full((batch, channels, *out), _lowest(xp, x.dtype), dtype=x.dtype)
        first = _first_inside(xp, kernel, stride, padding, dilation, out)
        argk = xp.broadcast_to(first.astype(dtype), best.shape).copy()
    for k, in_slices, out_slices in boxes:
        value, current, chosen = x[in_slices], best[out_slices], argk[out_slices]  # views
        take = value > current
        if floating:
            take |= xp.isnan(value)
        xp.maximum(value, current, out=current)  # ties give the 2nd operand: the earlier
        # element's bits (a window of +0.0 and -0.0 outputs its first zero, as PyTorch)
        xp.maximum(chosen, take.astype(dtype) * k, out=chosen)
    return best, argk


def window_gather(xp, x, argk, kernel, stride, padding, dilation):
    """``y[b, c, *o] = x[b, c, *(o * s - p + offset(argk) * d)]``: the chosen element of every
    window, bit for bit (one offset per window contributes non-zero bits, OR-ed in).
    ``argk (batch, C, *out)`` -> ``(batch, C, *out)``."""
    if _small_inside(x.shape, *_tuples(kernel, stride, padding, dilation), argk.shape[2:],
                     SMALL_ELEMENTS):
        return window_gather_small(xp, x, argk, *_tuples(kernel, stride, dilation))
    y = xp.zeros(argk.shape, dtype=x.dtype)
    y_bits = _bits(xp, y)
    for k, in_slices, out_slices in window_boxes(x.shape[2:], kernel, stride, padding, dilation,
                                                 argk.shape[2:]):
        y_bits[out_slices] |= _select_bits(xp, argk[out_slices] == k, x[in_slices])
    return y


def window_scatter(xp, gy, argk, input_shape, kernel, stride, padding, dilation):
    """Adjoint of ``window_gather``: add ``gy[b, c, *o]`` onto the chosen element of window
    ``o``; overlapping windows accumulate (disjoint ones are simply assigned).
    -> ``(batch, C, *spatial)``."""
    input_shape, kernel, stride, padding, dilation = _tuples(input_shape, kernel, stride,
                                                            padding, dilation)
    windows = scatter_index(xp, backend.device_of(gy), input_shape, kernel, stride, padding,
                            dilation, gy.shape[2:], SMALL_ELEMENTS)
    if windows is not None:
        return window_scatter_small(xp, gy, argk, input_shape, kernel, stride, dilation, windows)
    disjoint = _disjoint(kernel, stride, dilation)
    gx = xp.zeros(input_shape, dtype=gy.dtype)
    gx_bits = _bits(xp, gx)
    for k, in_slices, out_slices in window_boxes(input_shape[2:], kernel, stride, padding,
                                                 dilation, gy.shape[2:]):
        picked = _select_bits(xp, argk[out_slices] == k, gy[out_slices])
        if disjoint:
            gx_bits[in_slices] = picked
        else:
            gx[in_slices] += picked.view(gy.dtype)
    return gx


def flat_indices(xp, argk, spatial, kernel, stride, padding, dilation):
    """PyTorch's ``return_indices``: the chosen element's flat index in its ``(batch, channel)``
    plane of the input, ``sum_i coord_i * prod(spatial[i+1:])``, as int64."""
    out = argk.shape[2:]
    kernel_steps = row_major_steps(kernel)
    plane_steps = row_major_steps(spatial)
    argk = argk.astype(xp.int64)
    index = 0
    for i, (k, s, p, d, o) in enumerate(zip(kernel, stride, padding, dilation, out)):
        shape = [1] * len(out)
        shape[i] = o
        start = (xp.arange(o, dtype=xp.int64) * s - p).reshape(shape)  # (1, .., o_i, .., 1)
        coord = start + (argk // kernel_steps[i]) % k * d
        index = index + coord * plane_steps[i]
    return index


def window_sum(xp, x, kernel, stride, padding, out_spatial):
    """Sum of every (zero-padded) window of ``x (batch, C, *spatial)`` -> ``(batch, C, *out)``."""
    batch, channels, *spatial = x.shape
    dilation = (1,) * len(kernel)
    boxes = window_boxes(spatial, kernel, stride, padding, dilation, out_spatial)
    if boxes[0][0] == 0 and _covers(boxes[0][2], out_spatial):
        y = x[boxes[0][1]].copy()
        boxes = boxes[1:]
    else:
        y = xp.zeros((batch, channels, *out_spatial), dtype=x.dtype)
    for _, in_slices, out_slices in boxes:
        y[out_slices] += x[in_slices]
    return y


def window_sum_adjoint(xp, gy, input_shape, kernel, stride, padding):
    """Adjoint of ``window_sum``: ``gx[b, c, i] = sum of gy over the windows containing i``."""
    dilation = (1,) * len(kernel)
    gx = xp.zeros(input_shape, dtype=gy.dtype)
    for _, in_slices, out_slices in window_boxes(input_shape[2:], kernel, stride, padding,
                                                 dilation, gy.shape[2:]):
        gx[in_slices] += gy[out_slices]
    return gx


def avg_pool_divisor(xp, spatial, kernel, stride, padding, out_spatial, count_include_pad, dtype):
    """PyTorch's divisor of every window, ``(*out)``, a product of per-dim counts.

    A window spans ``[o*s - p, min(o*s - p + k, n + p))``: its length counts the padding
    (``count_include_pad``) but not the ceil-mode overhang past it; without
    ``count_include_pad`` only the part inside ``[0, n)`` counts.
    """
    divisor = xp.ones(out_spatial, dtype=dtype)
    for i, (n, k, s, p, out) in enumerate(zip(spatial, kernel, stride, padding, out_spatial)):
        start = xp.arange(out) * s - p
        end = xp.minimum(start + k, n + p)
        if not count_include_pad:
            start, end = xp.maximum(start, 0), xp.minimum(end, n)
        shape = [1] * len(spatial)
        shape[i] = out
        divisor = divisor * (end - start).astype(dtype).reshape(shape)  # (1, .., out_i, .., 1)
    return divisor



# ----------------------------------------------------------------------------- small inputs
# One gather through ``_im2col.window_index`` instead of the loops above, up to this many window
# elements (measured crossover for 2x2 windows: about 5000; see ``_im2col``'s small inputs).
SMALL_ELEMENTS = 4096  # max pooling: windows' elements


@functools.lru_cache(maxsize=256)  # pure in int tuples; saves per-call overhead
def pool_plan(shape, kernel, stride, padding, dilation, ceil_mode, limit):
    """``(out_spatial, small)`` of max pooling on ``shape (batch, C, *spatial)``: ``small``
    when the one-gather route applies (``is_small`` with ``limit``, and ``windows_inside``)."""
    out = pool_out_spatial(shape[2:], kernel, stride, padding, dilation, ceil_mode)
    return out, _small_inside(shape, kernel, stride, padding, dilation, out, limit)


@functools.lru_cache(maxsize=256)
def _small_inside(shape, kernel, stride, padding, dilation, out_spatial, limit):
    return is_small(shape[0], shape[1], out_spatial, kernel, limit) and windows_inside(
        shape[2:], kernel, stride, padding, dilation, out_spatial)


def windows_inside(spatial, kernel, stride, padding, dilation, out_spatial):
    """True when every window lies inside the input: no padding, no ceil-mode overhang."""
    return not any(padding) and all((o - 1) * s + d * (k - 1) < n for n, k, s, d, o in zip(
        spatial, kernel, stride, dilation, out_spatial))


def max_pool_small(xp, x, kernel, stride, dilation, out_spatial, windows=None):
    """``max_pool`` by one gather, for ``is_small`` inputs whose windows lie inside the input
    (``windows_inside``): the same values and ``argk``, bit for bit. The geometry arguments
    are tuples (the index arrays are cached on them); ``windows`` is ``window_index``'s result
    when the caller has looked it up already.

    ``argmax`` gives the first maximum (the tie rule); a window holding NaN takes its last NaN
    instead (PyTorch's CPU rule): the NaN with the largest ``1 + offset``; numpy's and CuPy's
    ``argmax`` both pick a window's first NaN, which is never after its last. The value is
    then gathered at the chosen element, so signed zeros come out as the loops give them.
    """
    count = math.prod(kernel)
    index, base, ranks = windows or window_index(xp, backend.device_of(x), x.shape, kernel,
                                                 stride, dilation, out_spatial)
    windows = x.reshape(-1)[index]  # (batch*C*out, K)
    argk = windows.argmax(-1)  # (batch*C*out,)
    if windows.dtype.kind == "f":
        # the last NaN's offset, 0 if none (bool viewed as int8: a multiply without a cast)
        last = (xp.isnan(windows).view(xp.int8) * ranks).argmax(-1)
        argk = xp.maximum(argk, last)  # argmax picked the first NaN, if any (never later)
    shape = x.shape[:2] + out_spatial  # (batch, C, *out)
    best = windows.reshape(-1)[argk + base]
    return best.reshape(shape), argk.astype(offset_dtype(xp, count)).reshape(shape)


@functools.lru_cache(maxsize=256)
def scatter_index(xp, device, input_shape, kernel, stride, padding, dilation, out_spatial, limit):
    """``window_index``'s arrays when ``window_scatter_small`` applies (disjoint windows, all
    inside the input, at most ``limit`` elements: ``SMALL_ELEMENTS``), else None."""
    if not (_disjoint(kernel, stride, dilation) and _small_inside(
            input_shape, kernel, stride, padding, dilation, out_spatial, limit)):
        return None
    return window_index(xp, device, input_shape, kernel, stride, dilation, out_spatial)


def chosen_positions(xp, argk, shape, kernel, stride, dilation, windows=None):
    """Flat position in an array of ``shape`` of every window's chosen element, for windows
    inside the input (``windows_inside``): ``(batch * C * prod(out),)`` int64. The geometry
    arguments are tuples; ``windows`` is ``window_index``'s result if already looked up."""
    index, base, _ = windows or window_index(xp, backend.device_of(argk), shape, kernel,
                                             stride, dilation, argk.shape[2:])
    return index.reshape(-1)[argk.reshape(-1) + base]


def window_gather_small(xp, x, argk, kernel, stride, dilation):
    """``window_gather`` for windows inside ``x``: one gather."""
    positions = chosen_positions(xp, argk, x.shape, kernel, stride, dilation)
    return x.reshape(-1)[positions].reshape(argk.shape)


def window_scatter_small(xp, gy, argk, input_shape, kernel, stride, dilation, windows=None):
    """``window_scatter`` for disjoint windows inside the input: one assignment (each element
    is chosen at most once, so nothing accumulates). ``windows`` as in ``chosen_positions``."""
    gx = xp.zeros(math.prod(input_shape), dtype=gy.dtype)
    positions = chosen_positions(xp, argk, input_shape, kernel, stride, dilation, windows)
    gx.put(positions, gy)  # gy read in C order
    return gx.reshape(input_shape)
