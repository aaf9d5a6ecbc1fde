"""Loss primitives: the mean (or summed) squared error and its gradient, one node each.

``mse_loss`` could be built from sub, mul and sum (``nn.functional`` does so for
``reduction="none"``), but a loss is on every training step: as one primitive it records one
node instead of four, and its backward is one node too. The pair closes under
differentiation, so gradients of any order exist::

    loss = mse_loss(x, t)                  (MseLoss)
    gx   = mse_loss_backward(g, x, t)      (MseLossBackward: c * g * (x - t), gt = -gx)
"""
from __future__ import annotations

from ..autograd import Function
from .registry import register


def _scale(reduction, size):
    """d loss / d (x - t)^2 per element: 1 / size for "mean" (NaN when empty, as PyTorch's
    mean of nothing), 1 for "sum"."""
    if reduction != "mean":
        return 1.0
    return 1.0 / size if size else float("nan")


@register("mse_loss")
class MseLoss(Function):
    """loss = sum((x - t)^2) * c, c = 1 / x.size ("mean") or 1 ("sum"); x and t of one shape.
    VJP: gx = mse_loss_backward(g, x, t) = 2 c g (x - t), gt = -gx."""

    def forward(self, xp, x, t):
        d = (x - t).reshape(-1)
        return d.dot(d) * _scale(self.reduction, d.size)  # one BLAS dot (the method: no dispatcher)

    def backward(self, g):
        x, t = self.inputs
        gx = MseLossBackward.apply_checked(self.params, g, x, t)  # the same reduction
        return gx if self.needs_grad[0] else None, -gx if self.needs_grad[1] else None


@register("mse_loss_backward")
class MseLossBackward(Function):
    """gx = 2 c g (x - t) for the 0-d upstream gradient g of ``mse_loss`` (c as there).
    Linear in g and in (x - t). VJP: g_g = 2 c sum(h (x - t)), g_x = 2 c g h, g_t = -g_x."""

    def forward(self, xp, g, x, t):
        return (x - t) * (g * (2.0 * _scale(self.reduction, x.size)))

    def backward(self, h):
        g, x, t = self.inputs
        c = 2.0 * _scale(self.reduction, x.data.size)
        g_g = (h * (x - t)).sum() * c if self.needs_grad[0] else None
        g_x = h * (g * c) if self.needs_grad[1] or self.needs_grad[2] else None
        return g_g, g_x if self.needs_grad[1] else None, -g_x if self.needs_grad[2] else None
