"""Functional API (PyTorch names): composites of the primitives, which get gradients for free.

Convolution and pooling live in ``functional_conv`` and are re-exported here.
"""
from __future__ import annotations

from .. import backend
from ..autograd import is_grad_enabled  # noqa: F401  (re-exported for convenience)
from ..factories import generator
from ..ops import elementwise as E
from ..ops import reduce as R
from ..ops import shape as S
from ..ops.linalg import MATMUL_FLAGS, MatMul, matmul
from ..ops.loss import MseLoss
from ..tensor import Tensor
from .functional_conv import (  # noqa: F401  (re-exported: F.conv2d, F.max_pool2d, ...)
    avg_pool1d, avg_pool2d, avg_pool3d, avg_pool_nd, conv1d, conv2d, conv3d, conv_nd, max_pool1d,
    max_pool2d, max_pool3d, max_pool_nd,
)

sigmoid = E.sigmoid
relu = E.relu
tanh = E.tanh
softmax = R.softmax
log_softmax = R.log_softmax


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias`` for input ``(*, in_features)`` and weight ``(out_features, in_features)``.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> import tinygrad_nd.nn.functional as F
    >>> F.linear(tnd.ones(2, 3), tnd.ones(4, 3), tnd.zeros(4)).shape
    (2, 4)
    """
    x, w = input.data, weight.data  # the arrays' metadata: read on every step, so read once
    if w.ndim != 2:
        raise ValueError(f"linear: weight must be (out_features, in_features), got shape {w.shape}")
    if x.ndim == 0 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"linear: input of shape {x.shape} does not end in in_features = "
                         f"{w.shape[1]} (weight shape {w.shape})")
    if bias is not None and x.ndim >= 2 and bias.data.shape == w.shape[:1] \
            and x.dtype == w.dtype == bias.data.dtype:  # the usual case: one node (addmm)
        return MatMul.apply_checked(MATMUL_FLAGS[False, True], input, weight, bias)  # x @ w^T
    y = matmul(input, weight, transpose_y=True)  # input @ weight^T, no transpose node
    return y if bias is None else y + bias


_REDUCTION = {name: {"reduction": name} for name in ("mean", "sum")}  # MseLoss parameters (shared)


def _check_reduction(reduction: str, op: str):
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _reduce(loss: Tensor, reduction: str, op: str) -> Tensor:
    _check_reduction(reduction, op)
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Squared error ``(input - target) ** 2``, averaged over all elements by default (as PyTorch).

    With ``reduction="sum"`` the gradient grows with the batch size: that is why summed updates
    explode with a fixed learning rate (see docs/optim.md).

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> import tinygrad_nd.nn.functional as F
    >>> F.mse_loss(tnd.tensor([1.0, 2.0]), tnd.tensor([0.0, 0.0])).item()
    2.5
    """
    if not isinstance(target, Tensor):
        target = Tensor(target, dtype=input.dtype, device=input.device)
    x, t = input.data, target.data
    if x.shape != t.shape:
        raise ValueError(f"mse_loss: input shape {x.shape} and target shape {t.shape} differ")
    _check_reduction(reduction, "mse_loss")
    if reduction == "none":
        diff = input - target
        return diff * diff
    if x.dtype.kind != "f" or t.dtype.kind != "f":
        raise TypeError(f"mse_loss: needs floating point input and target, got {x.dtype} "
                        f"and {t.dtype}")
    if x.dtype != t.dtype:  # as PyTorch: the wider float type
        dtype = backend.result_dtype(input.dtype, target.dtype)
        input, target = input.to(dtype=dtype), target.to(dtype=dtype)
    return MseLoss.apply_checked(_REDUCTION[reduction], input, target)  # one node, its backward one more


def cross_entropy(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of integer class ``target`` under ``softmax(input, dim=1)``.

    ``input`` is ``(N, C)`` or ``(N, C, d1, ..., dk)`` logits; ``target`` holds class indices,
    shape ``(N,)`` or ``(N, d1, ..., dk)``, values in ``[0, C)``.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> import tinygrad_nd.nn.functional as F
    >>> round(F.cross_entropy(tnd.zeros(2, 4), tnd.tensor([0, 3])).item(), 4)
    1.3863
    """
    if not isinstance(target, Tensor):
        target = Tensor(target, device=input.device)
    if target.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class indices, got dtype {target.dtype}")
    if input.ndim < 2 or target.shape != (input.shape[0],) + input.shape[2:]:
        raise ValueError(f"cross_entropy: input of shape {input.shape} (N, C, ...) needs a target of "
                         f"shape {(input.shape[0],) + input.shape[2:] if input.ndim >= 2 else '(N,)'}, "
                         f"got {target.shape}")
    classes = input.shape[1]
    flat_target = S.reshape(target, -1)
    if backend.is_host_array(target.data):
        if target.data.size and ((target.data < 0) | (target.data >= classes)).any():
            raise IndexError(f"cross_entropy: target values must lie in [0, {classes}), got "
                             f"min {target.data.min()}, max {target.data.max()}")
        valid = None
    else:  # checking on a GPU would sync every step: out-of-range targets give a NaN loss instead
        valid = (flat_target >= 0) & (flat_target < classes)
        flat_target = E.where(valid, flat_target, 0)
    logp = R.log_softmax(input, 1)
    if input.ndim > 2:  # (N, C, *d) -> (N * prod(d), C)
        logp = S.flatten(S.permute(logp, 0, *range(2, input.ndim), 1), 0, -2)
    xp = backend.array_module(target.data)
    with backend.device_scope(target.data):
        rows = Tensor._make(xp.arange(logp.shape[0]), None)
    picked = -S.getitem(logp, (rows, flat_target))  # (N * prod(d),)
    if valid is not None:
        picked = E.where(valid, picked, float("nan"))
    loss = S.reshape(picked, *target.shape)
    return _reduce(loss, reduction, "cross_entropy")


def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)`` (training only)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    keep = generator().random(input.shape) >= p  # drawn on the host, like every random number
    mask = Tensor(keep, device=input.device)
    return E.where(mask, input * (1.0 / (1.0 - p)), 0.0)
