"""N-dimensional convolution (cross-correlation, as PyTorch) and its two gradient primitives.

The three form a closed family, so gradients of any order exist::

    y  = conv_nd(x, w)                 (ConvNd)
    gx = conv_nd_input_grad(gy, w)     (ConvNdInputGrad: the adjoint of x -> conv_nd(x, w))
    gw = conv_nd_weight_grad(x, gy)    (ConvNdWeightGrad: the adjoint of w -> conv_nd(x, w))

All three are bilinear, so the backward of each is the other two (see each ``backward``).
Each is one GEMM on the column matrix of ``_im2col``: ``y = W @ cols``, ``gw = gy @ cols^T``,
``gx = col2im(W^T @ gy)``, with ``W`` of shape ``(C_out, C_in/groups * prod(kernel))``, one
block per group.

Static parameters, already normalised by the functional wrapper (``nn.functional_conv``):
``stride`` and ``dilation`` are N-tuples of positive ints, ``padding`` an N-tuple of
``(lo, hi)`` pairs of non-negative ints, ``groups`` a positive int.
"""
from __future__ import annotations

import functools
import math

from .. import backend
from ..autograd import Function
from . import _im2col as im
from .reduce import Sum
from .registry import register


_STATIC_NAMES = ("stride", "padding", "dilation", "groups")


def conv_static(op, stride, padding, dilation, groups):
    """Check and freeze the static parameters of the conv primitives (ValueError naming ``op``)."""
    try:  # already tuples (the wrappers' and the backward rules' case): one cached lookup
        frozen = _conv_static(op, stride, padding, dilation, groups)
    except TypeError:  # lists somewhere: unhashable
        frozen = _conv_static(op, tuple(stride), tuple(tuple(pair) for pair in padding),
                              tuple(dilation), groups)
    return dict(zip(_STATIC_NAMES, frozen))


@functools.lru_cache(maxsize=512)  # pure; called for every node, so cached (errors are not)
def _conv_static(op, stride, padding, dilation, groups):
    padding = tuple((int(lo), int(hi)) for lo, hi in padding)
    if not (len(stride) == len(padding) == len(dilation)):
        raise ValueError(f"{op}: stride {stride}, padding {padding} and dilation {dilation} "
                         "must have one entry per spatial dim")
    if any(s < 1 for s in stride):
        raise ValueError(f"{op}: stride must be positive, got {stride}")
    if any(d < 1 for d in dilation):
        raise ValueError(f"{op}: dilation must be positive, got {dilation}")
    if any(lo < 0 or hi < 0 for lo, hi in padding):
        raise ValueError(f"{op}: padding must be non-negative, got {padding}")
    if groups < 1:
        raise ValueError(f"{op}: groups must be positive, got {groups}")
    return stride, padding, dilation, int(groups)


@functools.lru_cache(maxsize=512)
def check_conv_shapes(op, x_shape, w_shape, stride, padding, dilation, groups):
    """Raise ValueError naming ``op`` and the shapes unless ``x (batch, C_in, *spatial)`` and
    ``w (C_out, C_in / groups, *kernel)`` fit; return the output spatial size."""
    n = len(w_shape) - 2
    if n < 1:
        raise ValueError(f"{op}: weight must be (C_out, C_in / groups, *kernel) with at least "
                         f"one spatial dim, got shape {tuple(w_shape)}")
    if len(x_shape) != n + 2:
        dims = ", ".join(f"D{i + 1}" for i in range(n))
        raise ValueError(f"{op}: a weight of shape {tuple(w_shape)} ({n} spatial dims) needs an "
                         f"input (batch, C_in, {dims}), got shape {tuple(x_shape)}")
    if len(stride) != n:
        raise ValueError(f"{op}: {len(stride)}-d stride {stride} for {n} spatial dims")
    if w_shape[0] % groups:
        raise ValueError(f"{op}: groups={groups} must divide the {w_shape[0]} output channels "
                         f"(weight shape {tuple(w_shape)})")
    if x_shape[1] % groups:
        raise ValueError(f"{op}: groups={groups} must divide the {x_shape[1]} input channels "
                         f"(input shape {tuple(x_shape)})")
    if x_shape[1] != w_shape[1] * groups:
        raise ValueError(f"{op}: input of shape {tuple(x_shape)} has {x_shape[1]} channels but "
                         f"the weight of shape {tuple(w_shape)} expects {w_shape[1] * groups} "
                         f"(C_in / groups = {w_shape[1]}, groups = {groups})")
    kernel = w_shape[2:]
    out = im.conv_out_spatial(x_shape[2:], kernel, stride, padding, dilation)
    if min(out) < 1:
        effective = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
        padded = im.padded_spatial(x_shape[2:], padding)
        raise ValueError(f"{op}: the (dilated) kernel {effective} is larger than the padded "
                         f"input {padded} (input shape {tuple(x_shape)}, weight shape "
                         f"{tuple(w_shape)}, padding {padding})")
    return out


@functools.lru_cache(maxsize=512)
def _route(op, xp, device, x_shape, w_shape, stride, padding, dilation, groups, limit):
    out = check_conv_shapes(op, x_shape, w_shape, stride, padding, dilation, groups)
    if not im.is_small(x_shape[0], x_shape[1], out, w_shape[2:], limit):
        return out, None
    return out, im.column_index(xp, device, x_shape, w_shape[2:], stride, padding, dilation, out)


@functools.lru_cache(maxsize=8)
def _bias_sum(ndim):
    """The ``Sum`` parameters of the bias gradient for ``ndim``-d outputs: all axes but the
    channels (a dict shared by the nodes, never modified)."""
    return {"dim": (0, *range(2, ndim)), "keepdim": False}


def _weight_blocks(w, groups):
    """``(C_out, C_in/g, *kernel)`` -> ``(groups, C_out/g, C_in/g * prod(kernel))``."""
    return w.reshape(groups, w.shape[0] // groups, -1)  # (groups, C_out/g, C_in/g*K)


def _grouped_matmul(xp, a, b, out=None):
    """``a (groups, m, k) @ b (groups, k, n)`` per group -> ``(groups * m, n)``, into ``out``
    when given (a 2-d array, row-strided views allowed: BLAS takes a leading dimension)."""
    if a.shape[0] == 1:  # a plain 2-d GEMM (``dot`` has a third of matmul's call overhead)
        return a[0].dot(b[0]) if out is None else xp.matmul(a[0], b[0], out=out)
    blocks = None if out is None else out.reshape(a.shape[0], -1, out.shape[-1])  # a view
    y = xp.matmul(a, b, out=blocks)  # (groups, m, n)
    return y.reshape(-1, y.shape[-1])  # (groups*m, n)


def _col_blocks(cols, groups):
    """``(C * prod(kernel), L)`` -> ``(groups, C/g * prod(kernel), L)``: rows are channel-major."""
    return cols.reshape(groups, -1, cols.shape[-1])  # (groups, C/g*K, L)


def _chunks(xp, x_shape, kernel, out, dtype):
    """Slices of whole examples whose column matrix fits ``backend.im2col_chunk_bytes``:
    memory stays near the activations' size and each chunk's columns stay in cache."""
    per_example = x_shape[1] * math.prod(kernel) * math.prod(out) * dtype.itemsize
    step = max(1, backend.im2col_chunk_bytes(xp) // max(per_example, 1))
    return [slice(b, min(b + step, x_shape[0])) for b in range(0, x_shape[0], step)]


def _products_on_grid(xp, blocks, gy, cols):
    """``cols[:, b, :P] = W^T @ gy[b]`` for every example ``b`` of ``gy (count, C_out, *out)``,
    ``P = prod(out)``, the rest of each example's grid (``cols: (C_in * K, count * grid)``,
    rows of the grid as long as ``out``'s) zeroed. ``blocks: (groups, C_in/g * K, C_out/g)``.
    One GEMM per example, straight from ``gy`` (no copy of it): on workload b 0.6 to 0.8 ms
    less than ``rows_on_grid`` and one GEMM on the padded grid."""
    count, groups, n_cols = gy.shape[0], blocks.shape[0], blocks.shape[1]
    positions = math.prod(gy.shape[2:])
    grid = cols.reshape(cols.shape[0], count, -1)  # (C_in*K, count, grid), a view
    products = grid[:, :, :positions].reshape(groups, n_cols, count, positions)  # a view
    xp.matmul(blocks, gy.reshape(count, groups, -1, positions),  # (count, g, C_out/g, P)
              out=products.transpose(2, 0, 1, 3))  # (count, g, C_in/g*K, P)
    grid[:, :, positions:] = 0  # the grid's rows past out_0


def _check_dtypes(op, a, b):
    if a.dtype != b.dtype:
        raise TypeError(f"{op}: the two inputs have different dtypes ({a.dtype} and {b.dtype}); "
                        "convert one with .to(dtype=...)")


def _check_bias(op, w, b):
    if b.shape != (w.shape[0],):
        raise ValueError(f"{op}: bias must have shape ({w.shape[0]},) for a weight of shape "
                         f"{tuple(w.shape)}, got {tuple(b.shape)}")
    if b.dtype != w.dtype:
        raise TypeError(f"{op}: bias ({b.dtype}) and weight ({w.dtype}) dtypes differ; convert "
                        "one with .to(dtype=...)")


@functools.lru_cache(maxsize=512)  # errors are not cached
def _node_params(op, stride, padding, dilation, groups, shape):
    """A conv node's checked parameters as ``(name, value)`` pairs; ``shape`` holds the
    ``(name, shape)`` pairs of its shape parameters (``input_shape``, ``weight_shape``)."""
    shapes = tuple((name, tuple(int(n) for n in value)) for name, value in shape)
    return shapes + tuple(conv_static(op, stride, padding, dilation, groups).items())


class _ConvFunction(Function):
    """Shared ``__init__``: the four conv parameters, checked and frozen once."""

    def __init__(self, *, stride, padding, dilation, groups=1, **shape):
        shape = tuple(shape.items())
        try:  # a step creates nodes with the same arguments as the last: one cached lookup
            params = _node_params(self.name, stride, padding, dilation, groups, shape)
        except TypeError:  # a list argument (unhashable)
            params = _node_params.__wrapped__(self.name, stride, padding, dilation, groups, shape)
        self._set_params(dict(params))

    def check_shapes(self, x_shape, w_shape):
        """``check_conv_shapes`` with this node's parameters: the output spatial size."""
        return check_conv_shapes(self.name, x_shape, w_shape, self.stride, self.padding,
                                 self.dilation, self.groups)

    def route(self, xp, x, w_shape):
        """``(out_spatial, gather)``: ``check_shapes`` for ``x`` and a weight of ``w_shape``,
        and, when the one-gather route applies (``im.is_small``), ``im.column_index``'s
        ``(index, padded)`` for ``im.gather_columns`` (else None). One cached lookup."""
        return _route(self.name, xp, backend.device_of(x), x.shape, w_shape, self.stride,
                      self.padding, self.dilation, self.groups, im.SMALL_COLUMNS)

    def conv_params(self):
        """The checked parameters of a ``ConvNd`` node with this node's geometry."""
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups)

    def grad_params(self, name, shape):
        """The checked parameters of a gradient node: ``name`` (``input_shape`` or
        ``weight_shape``) is ``shape``, a Tensor's shape (a tuple of ints)."""
        return {name: shape, "stride": self.stride, "padding": self.padding,
                "dilation": self.dilation, "groups": self.groups}


@register("conv_nd")
class ConvNd(_ConvFunction):
    """y[b, o, *p] = bias[o] + sum_{c, k} w[o, c, *k] x_pad[b, g(o) * C_in/g + c, *(p*s + k*d)],
    the bias optional (a third input). VJP: gx = conv_nd_input_grad(gy, w),
    gw = conv_nd_weight_grad(x, gy), gbias = gy summed over batch and space.
    Cross-correlation (no kernel flip), as PyTorch; saves nothing (gw rebuilds the columns)."""

    def forward(self, xp, x, w, b=None):
        if x.dtype != w.dtype:
            _check_dtypes(self.name, x, w)
        out, gather = self.route(xp, x, w.shape)
        kernel, groups = w.shape[2:], self.groups
        if b is not None and (b.shape != w.shape[:1] or b.dtype != w.dtype):
            _check_bias(self.name, w, b)
        if gather is not None:  # one gather, no chunks: the per-example case, where each call counts
            cols = im.gather_columns(xp, x, *gather, self.padding)  # (C_in*K, batch*out)
            rows = w.reshape(w.shape[0], -1).dot(cols) if groups == 1 else _grouped_matmul(
                xp, _weight_blocks(w, groups), _col_blocks(cols, groups))  # (C_out, batch*out)
            if b is not None:
                rows += b[:, None]  # (C_out, 1) broadcasts over batch*positions
            if x.shape[0] == 1:  # one example: (C_out, out) is already (1, C_out, *out)'s order
                return rows.reshape((1, w.shape[0]) + out)
            return rows.reshape(w.shape[0], x.shape[0], *out).swapaxes(0, 1)  # (batch, C_out, *out)
        blocks = _weight_blocks(w, groups)
        positions = out  # per example: the output positions the columns cover
        if im.flat_im2col_applies(x.shape[2:], kernel, self.stride, self.padding,
                                  self.dilation):  # stride 1, 'same' rows: no extra columns
            rows = self._chunked_rows(xp, x, blocks, kernel, out, lambda part, work: (
                im.im2col_flat(xp, part, kernel, self.padding, self.dilation, work)))
        elif all(s == 1 for s in self.stride):  # on the whole grid, cropped below
            positions = im.grid_plan(x.shape[2:], kernel, self.padding, self.dilation).grid
            rows = self._chunked_rows(xp, x, blocks, kernel, positions, lambda part, work: (
                im.im2col_grid(xp, part, kernel, self.padding, self.dilation, work)))
        else:
            rows = self._chunked_rows(xp, x, blocks, kernel, out, lambda part, work: im.im2col(
                xp, part, kernel, self.stride, self.padding, self.dilation, work))
        if b is not None:
            rows += b.reshape(-1, 1)  # (C_out, 1) broadcasts over batch*positions
        if positions != out:
            return im.from_grid_rows(xp, rows, x.shape[0], positions, out)  # (batch, C_out, *out)
        return im.from_rows(xp, rows, x.shape[0], out)  # (batch, C_out, *out), a view

    def _chunked_rows(self, xp, x, blocks, kernel, positions, unfold):
        """``W @ unfold(x)`` a chunk of examples at a time -> ``(C_out, batch * prod(positions))``;
        ``unfold(part, work)`` gives a chunk's columns, ``prod(positions)`` per example."""
        size = math.prod(positions)
        work = functools.partial(backend.scratch, xp)
        rows = xp.empty((blocks.shape[0] * blocks.shape[1], x.shape[0] * size), dtype=x.dtype)
        for chunk in _chunks(xp, x.shape, kernel, positions, x.dtype):
            cols = unfold(x[chunk], work)  # (C_in*K, chunk*positions)
            _grouped_matmul(xp, blocks, _col_blocks(cols, self.groups),
                            out=rows[:, chunk.start * size:chunk.stop * size])
        return rows

    def backward(self, gy):
        x, w = self.inputs[:2]
        gx = ConvNdInputGrad.apply_checked(self.grad_params("input_shape", x.shape), gy, w) \
            if self.needs_grad[0] else None
        gw = ConvNdWeightGrad.apply_checked(self.grad_params("weight_shape", w.shape), x, gy) \
            if self.needs_grad[1] else None
        if len(self.inputs) == 2:
            return gx, gw
        gb = Sum.apply_checked(_bias_sum(len(x.shape)), gy) if self.needs_grad[2] else None
        return gx, gw, gb  # gb (C_out,): gy summed over batch and space


@register("conv_nd_input_grad")
class ConvNdInputGrad(_ConvFunction):
    """gx = col2im(W^T @ gy): the adjoint of x -> conv_nd(x, w), of shape ``input_shape``.
    Bilinear in (gy, w). VJP: g_gy = conv_nd(ggx, w), g_w = conv_nd_weight_grad(ggx, gy)."""

    def forward(self, xp, gy, w):
        _check_dtypes(self.name, gy, w)
        out = self.check_shapes(self.input_shape, w.shape)
        (batch, channels, *spatial), kernel = self.input_shape, w.shape[2:]
        blocks = _weight_blocks(w, self.groups).swapaxes(1, 2)  # (groups, C_in/g*K, C_out/g)
        work = functools.partial(backend.scratch, xp)  # gcols reuse im2col's work array
        n_cols = blocks.shape[0] * blocks.shape[1]  # C_in * prod(kernel)
        if all(s == 1 for s in self.stride):  # contiguous adds on a flattened grid
            # gy[b] is already a (C_out, out) matrix: on a grid whose rows are out's, one GEMM
            # per example writes it there (no rows_on_grid copy, no columns for the padding).
            # Below 64 output positions an example, the GEMMs' overhead lost (1-d, 16
            # positions: 0.98 against 0.73 ms; 64: equal; 2-d 8x8: 3.1 against 3.8 ms)
            positions = math.prod(out)  # per example
            compact = im.compact_grid_applies(spatial, out) and positions >= 64
            # dim 0's kernel offsets in the GEMMs' K (2-d and up: in 1-d the GEMMs would have
            # C_in rows, workload d 1.12x -> 1.23x)
            if compact and len(spatial) > 1:
                return self._dim0_in_k(xp, gy, w, work)
            plan = im.grid_plan(tuple(spatial), kernel, self.padding, self.dilation, compact)
            size = math.prod(plan.grid)
            flat = xp.zeros((channels, batch * size + plan.span), dtype=gy.dtype)
            for chunk in _chunks(xp, self.input_shape, kernel, plan.grid, gy.dtype):
                cols = im.padded_matrix(xp, work, "im2col.cols", n_cols,
                                        (chunk.stop - chunk.start) * size, gy.dtype)
                if compact:
                    _products_on_grid(xp, blocks, gy[chunk], cols)  # (C_in*K, chunk*grid)
                else:
                    rows = im.rows_on_grid(xp, gy[chunk], plan.grid, work)  # (C_out, chunk*grid)
                    _grouped_matmul(xp, blocks, _col_blocks(rows, self.groups), out=cols)
                im.col2im_stride1_add(xp, cols, flat[:, chunk.start * size:chunk.stop * size
                                                     + plan.span], plan)
            return im.from_col2im_grid(xp, flat, plan, batch)  # (batch, C_in, *spatial)
        else:
            grid = im.padded_spatial(spatial, self.padding)
            padded = xp.zeros((channels, batch, *grid), dtype=gy.dtype)  # (C_in, batch, *grid)
            for chunk in _chunks(xp, self.input_shape, kernel, out, gy.dtype):
                rows = im.to_rows(xp, gy[chunk], work)  # (C_out, chunk*out)
                cols = _grouped_matmul(xp, blocks, _col_blocks(rows, self.groups), out=work(
                    "im2col.cols", (n_cols, rows.shape[1]), gy.dtype))  # (C_in*K, chunk*out)
                im.col2im_add(xp, cols, padded[:, chunk], kernel, self.stride, self.dilation)
        return im.crop_channels_first(xp, padded, spatial, self.padding)  # (batch, C_in, *spatial)

    def _dim0_in_k(self, xp, gy, w, work):
        """The input gradient with dim 0's kernel offsets summed inside the GEMMs.

        ``gx = col2im(W^T @ gy)`` adds ``prod(kernel)`` shifted products. Stacking ``gy``
        shifted by each offset ``a`` of dim 0 (``G``: ``k_0 * C_out`` rows, ``gy``'s rows
        ``y + lo_0 - a * d_0`` at input row ``y``, zero where that row does not exist) gives
        ``P = W' @ G`` with ``W'[(c, r), (a, o)] = w[o, c, a, r]`` (``r`` an offset of the
        later dims): ``k_0`` times the GEMM's K, ``k_0`` times fewer rows, on the input's rows
        (no grid rows for dim 0's padding), and ``col2im`` with the kernel ``(1,
        *kernel[1:])`` adds ``k_0`` times fewer products. On workload b, a 4 MB chunk: the
        K = 96 GEMM 0.81 ms (82 GFLOP/s) against 0.94 for the K = 32 ones, plus 0.15 ms to
        build ``G``, ``col2im`` 0.06 against 0.21 ms, the wrapped entries 0.014 against 0.035.
        Needs ``compact_grid_applies`` (the later dims' grid rows are ``out``'s)."""
        (batch, channels, *spatial), groups = self.input_shape, self.groups
        (c_out, c_in_g, k0, *rest), (lo0, _), d0 = w.shape, self.padding[0], self.dilation[0]
        out0 = gy.shape[2]  # gy: (batch, C_out, out_0, *out[1:])
        plan = im.grid_plan(tuple(spatial), (1, *rest), ((0, 0), *self.padding[1:]),
                            self.dilation, True)  # rows (n_0, *out[1:]): the input's dim 0
        size, o_g = math.prod(plan.grid), c_out // groups
        blocks = w.reshape(groups, o_g, c_in_g, k0, -1).transpose(0, 2, 4, 3, 1).reshape(
            groups, -1, k0 * o_g)  # (groups, C_in/g * R, k0 * C_out/g), a copy
        source = gy.reshape(batch, groups, o_g, out0, -1).transpose(
            1, 2, 0, 3, 4)  # (g, C_out/g, batch, out_0, prod(later))
        flat = xp.zeros((channels, batch * size + plan.span), dtype=gy.dtype)
        for chunk in _chunks(xp, self.input_shape, w.shape[2:], plan.grid, gy.dtype):
            count = chunk.stop - chunk.start
            rows = im.padded_matrix(xp, work, "rows_on_grid", groups * k0 * o_g, count * size,
                                    gy.dtype)  # G: (g * k0 * C_out/g, chunk * n_0 * later)
            stacked = rows.reshape(groups, k0, o_g, count, spatial[0],
                                   -1)  # (g, k0, C_out/g, chunk, n_0, prod(later)), a view
            for a in range(k0):  # G[:, a, :, :, y] = gy row y - first (zero outside gy)
                first = a * d0 - lo0
                lo, hi = min(max(first, 0), spatial[0]), max(min(out0 + first, spatial[0]), 0)
                part = stacked[:, a]  # (g, C_out/g, chunk, n_0, prod(later))
                part[:, :, :, :lo] = 0
                part[:, :, :, max(lo, hi):] = 0
                if lo < hi:
                    part[:, :, :, lo:hi] = source[:, :, chunk, lo - first:hi - first]
            cols = im.padded_matrix(xp, work, "im2col.cols", blocks.shape[0] * blocks.shape[1],
                                    count * size, gy.dtype)  # (C_in * R, chunk * grid)
            _grouped_matmul(xp, blocks, rows.reshape(groups, k0 * o_g, -1),  # (g, k0*C_out/g, L)
                            out=cols)
            im.col2im_stride1_add(xp, cols, flat[:, chunk.start * size:chunk.stop * size
                                                 + plan.span], plan)
        return im.from_col2im_grid(xp, flat, plan, batch)  # (batch, C_in, *spatial)

    def backward(self, ggx):
        gy, w = self.inputs
        g_gy = ConvNd.apply_checked(self.conv_params(), ggx, w) if self.needs_grad[0] else None
        g_w = ConvNdWeightGrad.apply_checked(self.grad_params("weight_shape", w.shape), ggx, gy) \
            if self.needs_grad[1] else None
        return g_gy, g_w


@register("conv_nd_weight_grad")
class ConvNdWeightGrad(_ConvFunction):
    """gw = gy @ im2col(x)^T: the adjoint of w -> conv_nd(x, w), of shape ``weight_shape``.
    Bilinear in (x, gy). VJP: g_x = conv_nd_input_grad(gy, ggw), g_gy = conv_nd(x, ggw)."""

    def forward(self, xp, x, gy):
        groups, weight_shape = self.groups, self.weight_shape
        if x.dtype != gy.dtype:
            _check_dtypes(self.name, x, gy)
        out, gather = self.route(xp, x, weight_shape)
        kernel = weight_shape[2:]
        if gather is not None:  # one gather, no chunks
            cols = im.gather_columns(xp, x, *gather, self.padding)  # (C_in*K, batch*out)
            rows = im.to_rows(xp, gy)  # (C_out, batch*out)
            gw = rows.dot(cols.T) if groups == 1 else _grouped_matmul(
                xp, _col_blocks(rows, groups), _col_blocks(cols, groups).swapaxes(1, 2))
            return gw.reshape(weight_shape)  # (C_out, C_in/g, *kernel)
        # gw^T = cols @ rows^T: this orientation ran 10 % faster than rows @ cols^T (OpenBLAS)
        gw_t = xp.zeros((groups, math.prod(weight_shape[1:]), weight_shape[0] // groups), x.dtype)
        work = functools.partial(backend.scratch, xp)
        # stride 1 with rows that keep their size ('same' padding, 1-d): one strided copy
        flat = im.flat_im2col_applies(x.shape[2:], kernel, self.stride, self.padding,
                                      self.dilation)
        (_, n_cols, n_out), size = gw_t.shape, math.prod(out)  # C_in/g*K, C_out/g, positions
        # Each example's gy[b] is already a (C_out, out) matrix: one batched matmul per chunk, a
        # GEMM per example, skips to_rows' copy of gy but writes a (C_in/g*K, C_out/g) partial
        # sum per example. That paid where an example has at least 128 positions and twice as
        # many as C_in/g*K (2 % of workload b's step); smaller ones lost to the per-GEMM
        # overhead. Positions >= C_out/g keep the partial sums smaller than the columns.
        per_example = size >= max(128, 2 * n_cols, n_out)
        # ... and of those, with at least 16 rows (C_in/g * prod(kernel[1:])) left per GEMM,
        # only the offsets of the dims after the first are unfolded (see _dim0_shifted): b's
        # weight gradient 5.3 -> 5.0 ms, c's 2.0 -> 1.6; d's 8 rows lost (0.50 -> 0.63 ms)
        if flat and per_example and kernel[0] > 1 and n_cols // kernel[0] >= 16:
            return self._dim0_shifted(xp, x, gy, out, work)
        for chunk in _chunks(xp, x.shape, kernel, out, x.dtype):
            cols = im.im2col_flat(xp, x[chunk], kernel, self.padding, self.dilation, work) \
                if flat else \
                im.im2col(xp, x[chunk], kernel, self.stride, self.padding, self.dilation, work)
            if per_example:
                count = chunk.stop - chunk.start
                a = cols.reshape(groups, n_cols, count, size).transpose(2, 0, 1, 3)
                b = gy[chunk].reshape(count, groups, n_out, size).swapaxes(2, 3)
                gw_t += xp.matmul(a, b).sum(axis=0)  # (chunk, g, C_in/g*K, C_out/g) summed
            else:
                rows = _col_blocks(im.to_rows(xp, gy[chunk], work), groups)  # (g, C_out/g, chunk*out)
                gw_t += _grouped_matmul(xp, _col_blocks(cols, groups),
                                        rows.swapaxes(1, 2)).reshape(gw_t.shape)  # (g, C_in/g*K, C_out/g)
        return gw_t.swapaxes(1, 2).reshape(weight_shape)  # (C_out, C_in/g, *kernel), a copy

    def _dim0_shifted(self, xp, x, gy, out, work):
        """The per-example route with only the offsets of the dims after the first unfolded.

        ``im2col_flat`` with kernel ``(1, *kernel[1:])`` over the whole padded extent of dim 0
        holds every kernel offset ``(a, ...)``: its columns shifted by ``a * d_0 *
        prod(out[1:])`` (a view, ``im.dim0_offsets``). So the copy is ``k_0`` times smaller,
        for GEMMs of ``C_in/g * prod(kernel[1:])`` rows instead of ``C_in/g * prod(kernel)``,
        one per (example, offset of dim 0): ``R = C_in/g * prod(kernel[1:])`` rows each."""
        groups, (c_out, c_in_g, k0, *rest) = self.groups, self.weight_shape
        rest_kernel, size = (1, *rest), math.prod(out)
        extent = im.conv_out_spatial(x.shape[2:], rest_kernel, self.stride, self.padding,
                                     self.dilation)  # (n_0 + lo_0 + hi_0, *out[1:])
        gy = gy.reshape(gy.shape[0], 1, groups, c_out // groups, size)  # (batch, 1, g, C_out/g, P)
        part = 0
        for chunk in _chunks(xp, x.shape, rest_kernel, extent, x.dtype):
            cols = im.im2col_flat(xp, x[chunk], rest_kernel, self.padding, self.dilation,
                                  work)  # (C_in*K_rest, chunk*prod(extent))
            a = im.dim0_offsets(xp, cols, chunk.stop - chunk.start, groups, k0,
                                self.dilation[0] * math.prod(out[1:]), size)  # (chunk, k0, g, R, P)
            part = part + xp.matmul(a, gy[chunk].swapaxes(3, 4)).sum(axis=0)  # (k0, g, R, C_out/g)
        part = part.reshape(k0, groups, c_in_g, math.prod(rest), c_out // groups)
        gw = part.transpose(1, 4, 2, 0, 3)  # (g, C_out/g, C_in/g, k0, K_rest)
        return gw.reshape(self.weight_shape)  # (C_out, C_in/g, *kernel), a copy

    def backward(self, ggw):
        x, gy = self.inputs
        g_x = ConvNdInputGrad.apply_checked(self.grad_params("input_shape", x.shape), gy, ggw) \
            if self.needs_grad[0] else None
        g_gy = ConvNd.apply_checked(self.conv_params(), x, ggw) if self.needs_grad[1] else None
        return g_x, g_gy
