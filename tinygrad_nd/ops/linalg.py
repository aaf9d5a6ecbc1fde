"""Matrix product: one batched, broadcasting primitive; 1-d operands are handled by the wrapper."""
from __future__ import annotations

from .. import backend
from ..autograd import Function
from ..tensor import Tensor
from . import shape as S
from .reduce import sum_to
from .registry import register


@register("matmul")
class MatMul(Function):
    """z = x @ y for x (..., n, k) and y (..., k, m), batch axes broadcast.
    VJP: gx = sum_to(gz @ y^T, x.shape), gy = sum_to(x^T @ gz, y.shape) (^T swaps the last two axes)."""

    def forward(self, xp, x, y):
        return xp.matmul(x, y)

    def backward(self, gz):
        x, y = self.inputs
        gx = sum_to(MatMul.apply(gz, S.transpose(y, -1, -2)), x.shape) if self.needs_grad[0] else None
        gy = sum_to(MatMul.apply(S.transpose(x, -1, -2), gz), y.shape) if self.needs_grad[1] else None
        return gx, gy


def matmul(x, y) -> Tensor:
    """Matrix product with numpy's rules.

    1-d x is treated as a row (n,) -> (1, n) and 1-d y as a column, the added axis removed from
    the result; batch axes (all but the last two) broadcast.

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
    x2 = S.unsqueeze(x, 0) if x.ndim == 1 else x  # (1, k)
    y2 = S.unsqueeze(y, -1) if y.ndim == 1 else y  # (k, 1)
    if x2.shape[-1] != y2.shape[-2]:
        raise ValueError(f"matmul: shapes {x.shape} and {y.shape} do not match: the inner "
                         f"dimensions are {x2.shape[-1]} and {y2.shape[-2]}")
    backend.broadcast_shape("matmul (batch dimensions)", x2.shape[:-2], y2.shape[:-2])
    z = MatMul.apply(x2, y2)
    if y.ndim == 1:
        z = S.squeeze(z, -1)
    if x.ndim == 1:
        z = S.squeeze(z, -2 if y.ndim > 1 else -1)
    return z
