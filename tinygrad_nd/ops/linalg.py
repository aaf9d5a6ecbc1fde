"""Matrix product: one batched, broadcasting primitive; 1-d operands are handled by the wrapper."""
from __future__ import annotations

from .. import backend
from ..autograd import Function
from ..tensor import Tensor
from . import shape as S
from .reduce import sum_to
from .registry import register


# a node's parameters for each (transpose_x, transpose_y): only the set flags (the defaults are
# class attributes), shared by the nodes and never modified
MATMUL_FLAGS = {
    (tx, ty): {name: True for name, on in (("transpose_x", tx), ("transpose_y", ty)) if on}
    for tx in (False, True) for ty in (False, True)}


@register("matmul")
class MatMul(Function):
    """z = op(x) @ op(y) for op(x) (..., n, k) and op(y) (..., k, m), batch axes broadcast, where
    op transposes the last two axes when ``transpose_x`` / ``transpose_y`` is set (as BLAS's
    transa/transb: ``linear`` multiplies by w^T without a transpose node). An optional third
    input ``b`` is added to z with broadcasting (``linear``'s bias: one node, as torch's addmm).
    VJP: g_op(x) = gz @ op(y)^T, g_op(y) = op(x)^T @ gz, each transposed back when its flag is set
    and summed to the input's shape; both are matmuls with flags, so the family closes;
    gb = sum_to(gz, b.shape)."""

    transpose_x = transpose_y = False  # the defaults; set flags are node parameters (shown)

    def forward(self, xp, x, y, b=None):
        if self.params:  # a flag is set (read on the node: cheaper than two class defaults)
            if self.transpose_x:
                x = x.swapaxes(-1, -2)  # a view: BLAS reads it transposed
            if self.transpose_y:
                y = y.swapaxes(-1, -2)
        # two matrices: ``dot`` is the same GEMM at a third of matmul's call overhead (0.5 vs
        # 1.2 us on tiny operands), which dominates per-example steps
        z = x.dot(y) if x.ndim == 2 == y.ndim else xp.matmul(x, y)
        if b is not None:
            z += b  # z is a new array of the common dtype; b broadcasts over its rows
        return z

    def backward(self, gz):
        inputs, needs_grad = self.inputs, self.needs_grad
        x, y = inputs[0], inputs[1]
        tx, ty = self.transpose_x, self.transpose_y
        gx = gy = gb = None
        if needs_grad[0]:  # d op(x) = gz @ op(y)^T; if tx, dx = (gz @ op(y)^T)^T = op(y) @ gz^T
            gx = MatMul.apply_checked(MATMUL_FLAGS[ty, True], y, gz) if tx else \
                MatMul.apply_checked(MATMUL_FLAGS[False, not ty], gz, y)
            if gx.data.shape != x.data.shape:  # x was broadcast over batch axes
                gx = sum_to(gx, x.shape)
        if needs_grad[1]:  # d op(y) = op(x)^T @ gz; if ty, dy = gz^T @ op(x)
            gy = MatMul.apply_checked(MATMUL_FLAGS[True, tx], gz, x) if ty else \
                MatMul.apply_checked(MATMUL_FLAGS[not tx, False], x, gz)
            if gy.data.shape != y.data.shape:
                gy = sum_to(gy, y.shape)
        if len(inputs) == 2:
            return gx, gy
        if needs_grad[2]:
            gb = sum_to(gz, inputs[2].shape)  # b broadcast over z's rows
        return gx, gy, gb


def matmul(x, y, *, transpose_y: bool = False) -> Tensor:
    """Matrix product with numpy's rules.

    1-d x is treated as a row (n,) -> (1, n) and 1-d y as a column, the added axis removed from
    the result; batch axes (all but the last two) broadcast. ``transpose_y=True`` multiplies by
    y with its last two axes swapped (y at least 2-d), without a transpose in the graph.

    Raises
    ------
    ValueError
        When an operand is 0-d, the inner dimensions differ or the batch axes do not broadcast.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> (tnd.ones(2, 3) @ tnd.ones(3)).tolist()
    [3.0, 3.0]
    """
    if not isinstance(x, Tensor):
        x = Tensor(x, device=y.device)
    if not isinstance(y, Tensor):
        y = Tensor(y, device=x.device)
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes {x.shape} and {y.shape}")
    if x.dtype != y.dtype:
        dtype = backend.result_dtype(x.dtype, y.dtype)
        x, y = x.to(dtype=dtype), y.to(dtype=dtype)
    if transpose_y and y.ndim < 2:
        raise ValueError(f"matmul: transpose_y needs y with at least 2 dimensions, got shape {y.shape}")
    x2 = S.unsqueeze(x, 0) if x.ndim == 1 else x  # (1, k)
    y2 = S.unsqueeze(y, -1) if y.ndim == 1 else y  # (k, 1)
    inner = y2.shape[-1] if transpose_y else y2.shape[-2]
    if x2.shape[-1] != inner:
        shown = f"{y.shape} (transposed)" if transpose_y else f"{y.shape}"
        raise ValueError(f"matmul: shapes {x.shape} and {shown} do not match: the inner "
                         f"dimensions are {x2.shape[-1]} and {inner}")
    backend.broadcast_shape("matmul (batch dimensions)", x2.shape[:-2], y2.shape[:-2])
    z = MatMul.apply_checked(MATMUL_FLAGS[False, bool(transpose_y)], x2, y2)
    if y.ndim == 1:
        z = S.squeeze(z, -1)
    if x.ndim == 1:
        z = S.squeeze(z, -2 if y.ndim > 1 else -1)
    return z
