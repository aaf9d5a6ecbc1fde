"""Op cases for the convolution and pooling primitives (merged into ``op_cases.all_cases()``).

The numpy references here are written independently of ``ops/_im2col.py``: windows come from
``np.lib.stride_tricks.sliding_window_view`` and a convolution is one ``einsum``. The gradient
primitives are checked against the transpose of their forward op's Jacobian, built column by
column from these references (tiny shapes only).
"""
from __future__ import annotations

import math

import numpy as np

from op_cases import OpCase, distinct, randn
from tinygrad_nd import backend
from tinygrad_nd.nn import functional_conv as F
from tinygrad_nd.ops import _im2col as im
from tinygrad_nd.ops import _windows as pool_windows
from tinygrad_nd.ops.conv import ConvNdInputGrad, ConvNdWeightGrad
from tinygrad_nd.ops.pool import AvgPoolNdGrad, MaxPoolNdGather, MaxPoolNdScatter
from tinygrad_nd.tensor import Tensor


# ----------------------------------------------------------------------------- references
def _windows(x, kernel, stride, dilation, n_out):
    """``(B, C, *padded)`` -> ``(B, C, *out, *kernel)``: every window, dilated and strided."""
    n = len(kernel)
    extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    win = np.lib.stride_tricks.sliding_window_view(x, extent, axis=tuple(range(2, 2 + n)))
    index = (slice(None), slice(None)) + tuple(slice(0, s * (o - 1) + 1, s)
                                               for s, o in zip(stride, n_out))
    index += tuple(slice(None, None, d) for d in dilation)
    return win[index]


def _pairs(padding, n):
    if isinstance(padding, int):
        return ((padding, padding),) * n
    return tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)


def ref_conv(x, w, stride=1, padding=0, dilation=1, groups=1):
    """Cross-correlation by einsum over explicit windows (integer or per-dim padding)."""
    n = w.ndim - 2
    stride = (stride,) * n if isinstance(stride, int) else tuple(stride)
    dilation = (dilation,) * n if isinstance(dilation, int) else tuple(dilation)
    pads = _pairs(padding, n)
    xp_ = np.pad(x, [(0, 0), (0, 0)] + list(pads))
    out = [(p - d * (k - 1) - 1) // s + 1
           for p, k, s, d in zip(xp_.shape[2:], w.shape[2:], stride, dilation)]
    win = _windows(xp_, w.shape[2:], stride, dilation, out)  # (B, C, *out, *k)
    batch, channels = x.shape[:2]
    win = win.reshape(batch, groups, channels // groups, *win.shape[2:])  # (B, g, C/g, *out, *k)
    wg = w.reshape(groups, w.shape[0] // groups, *w.shape[1:])  # (g, O/g, C/g, *k)
    letters = "defhijkl"[:n]
    kernels = "mnpqrstu"[:n]
    y = np.einsum(f"bgc{letters}{kernels},goc{kernels}->bgo{letters}", win, wg)
    return y.reshape(batch, w.shape[0], *out).astype(x.dtype)


def _pool_pad(x, kernel, stride, padding, dilation, ceil_mode, value):
    """Pad ``x`` with ``value``: ``padding`` on the left, enough on the right for the last
    window (ceil mode may need more than ``padding``); returns the padded array and out size."""
    spatial = x.shape[2:]
    out = im.pool_out_spatial(spatial, kernel, stride, padding, dilation, ceil_mode)
    right = [max(p, (o - 1) * s + d * (k - 1) + 1 - p - n)
             for n, k, s, p, d, o in zip(spatial, kernel, stride, padding, dilation, out)]
    pads = [(0, 0), (0, 0)] + [(p, r) for p, r in zip(padding, right)]
    return np.pad(x, pads, constant_values=value), out


def ref_max_pool(x, kernel, stride, padding, dilation, ceil_mode):
    padded, out = _pool_pad(x, kernel, stride, padding, dilation, ceil_mode, -np.inf)
    win = _windows(padded, kernel, stride, dilation, out)
    return win.reshape(*win.shape[:2 + len(kernel)], -1).max(-1)


def ref_avg_pool(x, kernel, stride, padding, ceil_mode, count_include_pad):
    """Window sums over a zero-padded x, divided by the window sums of a 0/1 count array:
    ones over the padded input (count_include_pad) or over the input only; the ceil-mode
    overhang is zero in both."""
    ones = (1,) * len(kernel)
    padded, out = _pool_pad(x, kernel, stride, padding, ones, ceil_mode, 0.0)
    count = np.zeros(padded.shape[2:])
    inner = tuple(slice(0 if count_include_pad else p, p + n + (p if count_include_pad else 0))
                  for p, n in zip(padding, x.shape[2:]))
    count[inner] = 1.0
    total = _windows(padded, kernel, stride, ones, out)
    divisor = _windows(count[None, None], kernel, stride, ones, out)
    axes = tuple(range(-len(kernel), 0))
    return (total.sum(axes) / divisor.sum(axes)).astype(x.dtype)


def transpose_of(forward, in_shape, dtype):
    """``gy -> J^T gy`` for a function linear in its argument, column by column."""

    def apply(gy):
        out = np.zeros(math.prod(in_shape), dtype=np.float64)
        basis = np.zeros(math.prod(in_shape))
        for i in range(basis.size):
            basis[i] = 1.0
            out[i] = (forward(basis.reshape(in_shape)) * gy).sum()
            basis[i] = 0.0
        return out.reshape(in_shape).astype(dtype)

    return apply


# ----------------------------------------------------------------------------- torch oracles
def _torch_conv(torch, x, w, stride, padding, dilation, groups):
    n = w.ndim - 2
    pads = _pairs(padding, n)
    flat = [v for pair in reversed(pads) for v in pair]  # F.pad wants the last dim first
    x = torch.nn.functional.pad(x, flat)
    conv = getattr(torch.nn.functional, f"conv{n}d")
    return conv(x, w, stride=stride, dilation=dilation, groups=groups)


def _torch_vjp(torch, make_y, shape, like, gy):
    """``d<gy, make_y(z)>/dz`` at z = 0 (make_y linear in z), kept differentiable."""
    z = torch.zeros(shape, dtype=like.dtype, requires_grad=True)
    return torch.autograd.grad(make_y(z), z, gy, create_graph=True)[0]


def _argk(z, kernel, stride, padding, dilation, ceil_mode=False):
    """The window choice of max pooling on ``z`` as an integer Tensor (no gradient)."""
    xp = backend.array_module(z.data)
    _, argk = pool_windows.max_pool(xp, z.data, kernel, stride, padding, dilation, ceil_mode)
    return Tensor._make(argk, None)


def _torch_flat_gather(torch, z, source, kernel, stride, padding, dilation, ceil_mode):
    n = len(kernel)
    pool = getattr(torch.nn.functional, f"max_pool{n}d")
    _, index = pool(source, kernel, stride, padding, dilation, ceil_mode=ceil_mode,
                    return_indices=True)
    flat = z.flatten(2).gather(2, index.flatten(2))
    return flat.reshape(index.shape)


# ----------------------------------------------------------------------------- cases
CONV_CASES: list[OpCase] = []

CONV_GEOMETRIES = {
    # name: x shape, w shape, params (as F.conv_nd takes them)
    "1d": ((2, 2, 7), (3, 2, 3), {}),
    "1d-s2p1d2": ((2, 2, 9), (3, 2, 2), dict(stride=2, padding=1, dilation=2)),
    "2d": ((2, 3, 5, 4), (2, 3, 2, 2), {}),
    "2d-s2p1-groups2": ((1, 4, 5, 5), (4, 2, 3, 3), dict(stride=2, padding=1, groups=2)),
    "2d-same-even-kernel": ((1, 2, 5, 4), (2, 2, 2, 3), dict(padding="same", dilation=(2, 1))),
    "2d-asymmetric-pad": ((1, 2, 4, 4), (2, 2, 3, 2), dict(stride=(1, 2),
                                                             padding=((0, 2), (1, 0)))),
    "3d-s2p1d2": ((1, 2, 5, 4, 5), (2, 2, 2, 2, 2), dict(stride=(2, 1, 2), padding=1,
                                                          dilation=(1, 2, 1))),
}


def _conv_params(x_shape, w_shape, params):
    """The primitive's static parameters for ``F.conv_nd``'s arguments."""
    n = len(w_shape) - 2
    stride = params.get("stride", 1)
    stride = (stride,) * n if isinstance(stride, int) else tuple(stride)
    dilation = params.get("dilation", 1)
    dilation = (dilation,) * n if isinstance(dilation, int) else tuple(dilation)
    padding = params.get("padding", 0)
    if padding == "same":
        padding = tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)
                        for k, d in zip(w_shape[2:], dilation))
    return dict(stride=stride, padding=_pairs(padding, n), dilation=dilation,
                groups=params.get("groups", 1))


for _name, (_xs, _ws, _kw) in CONV_GEOMETRIES.items():
    _p = _conv_params(_xs, _ws, _kw)
    _ys = ref_conv(np.zeros(_xs), np.zeros(_ws), **_p).shape
    CONV_CASES.append(OpCase(
        "conv_nd", _name, lambda x, w, kw=_kw: F.conv_nd(x, w, **kw),
        lambda x, w, p=_p: ref_conv(x, w, **p), (_xs, _ws),
        torch_fn=lambda torch, x, w, p=_p: _torch_conv(torch, x, w, **p), rtol32=1e-4))
    CONV_CASES.append(OpCase(
        "conv_nd_input_grad", _name,
        lambda gy, w, xs=_xs, p=_p: ConvNdInputGrad.apply(gy, w, input_shape=xs, **p),
        lambda gy, w, xs=_xs, p=_p: transpose_of(lambda x: ref_conv(x, w, **p), xs, gy.dtype)(gy),
        (_ys, _ws),
        torch_fn=lambda torch, gy, w, xs=_xs, p=_p: _torch_vjp(
            torch, lambda z: _torch_conv(torch, z, w, **p), xs, gy, gy), rtol32=1e-4))
    CONV_CASES.append(OpCase(
        "conv_nd_weight_grad", _name,
        lambda x, gy, ws=_ws, p=_p: ConvNdWeightGrad.apply(x, gy, weight_shape=ws, **p),
        lambda x, gy, ws=_ws, p=_p: transpose_of(lambda w: ref_conv(x, w, **p), ws, gy.dtype)(gy),
        (_xs, _ys),
        torch_fn=lambda torch, x, gy, ws=_ws, p=_p: _torch_vjp(
            torch, lambda z: _torch_conv(torch, x, z, **p), ws, gy, gy), rtol32=1e-4))
CONV_CASES.append(OpCase(
    "conv_nd", "bias-unbatched", lambda x, w, b: F.conv_nd(x, w, b, padding=1),
    lambda x, w, b: ref_conv(x[None], w, padding=1)[0] + b[:, None, None], ((2, 4, 3), (3, 2, 3, 2), (3,)),
    torch_fn=lambda torch, x, w, b: torch.nn.functional.conv2d(x, w, b, padding=1), rtol32=1e-4))

CONV_CASES.append(OpCase(  # the bias as the primitive's third input, strided and grouped
    "conv_nd", "bias-s2p1-groups2", lambda x, w, b: F.conv_nd(x, w, b, stride=2, padding=1,
                                                              groups=2),
    lambda x, w, b: ref_conv(x, w, stride=2, padding=1, groups=2) + b[:, None, None],
    ((2, 4, 5, 4), (4, 2, 3, 2), (4,)),
    torch_fn=lambda torch, x, w, b: torch.nn.functional.conv2d(x, w, b, stride=2, padding=1,
                                                               groups=2), rtol32=1e-4))

POOL_GEOMETRIES = {
    # name: x shape, kernel, stride, padding, dilation, ceil_mode
    "1d-k2": ((2, 2, 6), (2,), (2,), (0,), (1,), False),
    "1d-k3s2p1-ceil": ((1, 2, 8), (3,), (2,), (1,), (1,), True),
    "2d-k2s2": ((2, 2, 4, 6), (2, 2), (2, 2), (0, 0), (1, 1), False),
    "2d-k3s1p1-overlap": ((1, 2, 4, 5), (3, 3), (1, 1), (1, 1), (1, 1), False),
    "2d-k3s2-ceil": ((1, 2, 5, 6), (3, 2), (2, 2), (1, 0), (1, 1), True),
    "2d-k2d2": ((1, 1, 5, 5), (2, 2), (1, 2), (1, 0), (2, 1), False),
    "3d-k2s2p1-ceil": ((1, 1, 4, 3, 5), (2, 3, 2), (2, 2, 2), (1, 1, 0), (1, 1, 1), True),
}

for _name, (_xs, _k, _s, _p, _d, _c) in POOL_GEOMETRIES.items():
    _ys = ref_max_pool(np.zeros(_xs), _k, _s, _p, _d, _c).shape
    _w = dict(kernel_size=_k, stride=_s, padding=_p, dilation=_d)
    _n = len(_k)
    CONV_CASES.append(OpCase(
        "max_pool_nd", _name,
        lambda x, w=_w, c=_c: F.max_pool_nd(x, ceil_mode=c, **w),
        lambda x, w=_w, c=_c: ref_max_pool(x, w["kernel_size"], w["stride"], w["padding"],
                                           w["dilation"], c),
        (_xs,), make=(distinct,),
        torch_fn=lambda torch, x, w=_w, c=_c, n=_n: getattr(torch.nn.functional, f"max_pool{n}d")(
            x, ceil_mode=c, **w)))
    # the scatter and the gather take the window choice made on an independent input z
    _win = (_k, _s, _p, _d)
    CONV_CASES.append(OpCase(
        "max_pool_nd_scatter", _name,
        lambda gy, z, xs=_xs, w=_w, win=_win, c=_c: MaxPoolNdScatter.apply(
            gy, _argk(z, *win, c), shape=xs, **w),
        lambda gy, z, xs=_xs, win=_win, c=_c: transpose_of(
            lambda x: _np_gather(x, z, win, c), xs, gy.dtype)(gy),
        (_ys, _xs), make=(randn, distinct), grad=(True, False),
        torch_fn=lambda torch, gy, z, xs=_xs, win=_win, c=_c: _torch_vjp(
            torch, lambda t: _torch_flat_gather(torch, t, z, *win, c), xs, gy, gy)))
    CONV_CASES.append(OpCase(
        "max_pool_nd_gather", _name,
        lambda x, z, w=_w, win=_win, c=_c: MaxPoolNdGather.apply(x, _argk(z, *win, c), **w),
        lambda x, z, win=_win, c=_c: _np_gather(x, z, win, c),
        (_xs, _xs), make=(randn, distinct), grad=(True, False),
        torch_fn=lambda torch, x, z, win=_win, c=_c: _torch_flat_gather(torch, x, z, *win, c)))
    if _d == (1,) * _n:
        for _cip in (True, False):
            _a = dict(kernel_size=_k, stride=_s, padding=_p, ceil_mode=_c, count_include_pad=_cip)
            _id = _name + ("" if _cip else "-exclude-pad")
            CONV_CASES.append(OpCase(
                "avg_pool_nd", _id, lambda x, a=_a: F.avg_pool_nd(x, **a),
                lambda x, a=_a: ref_avg_pool(x, a["kernel_size"], a["stride"], a["padding"],
                                             a["ceil_mode"], a["count_include_pad"]),
                (_xs,),
                torch_fn=lambda torch, x, a=_a, n=_n: getattr(
                    torch.nn.functional, f"avg_pool{n}d")(x, **a)))
            CONV_CASES.append(OpCase(
                "avg_pool_nd_grad", _id,
                lambda gy, xs=_xs, a=_a: _avg_grad(gy, xs, a),
                lambda gy, xs=_xs, a=_a: transpose_of(
                    lambda x: ref_avg_pool(x, a["kernel_size"], a["stride"], a["padding"],
                                           a["ceil_mode"], a["count_include_pad"]),
                    xs, gy.dtype)(gy),
                (_ys,),
                torch_fn=lambda torch, gy, xs=_xs, a=_a, n=_n: _torch_vjp(
                    torch, lambda t: getattr(torch.nn.functional, f"avg_pool{n}d")(t, **a),
                    xs, gy, gy)))


def _np_gather(x, z, window, ceil_mode):
    """x at the element of each window where z is largest (z has distinct values)."""
    kernel, stride, padding, dilation = window
    padded_x, out = _pool_pad(x, kernel, stride, padding, dilation, ceil_mode, 0.0)
    padded_z, _ = _pool_pad(z, kernel, stride, padding, dilation, ceil_mode, -np.inf)
    lead = 2 + len(kernel)
    wx = _windows(padded_x, kernel, stride, dilation, out)
    wz = _windows(padded_z, kernel, stride, dilation, out)
    wx = wx.reshape(*wx.shape[:lead], -1)
    choice = wz.reshape(*wz.shape[:lead], -1).argmax(-1)[..., None]
    return np.take_along_axis(wx, choice, -1)[..., 0]


def _avg_grad(gy, x_shape, params):
    return AvgPoolNdGrad.apply(gy, shape=x_shape, **params)
