"""Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019): per-coordinate steps scaled by
running estimates of the gradient's first and second moments."""
from __future__ import annotations

from .. import backend
from ..tensor import Tensor
from .optimizer import Optimizer, check_number, zeros_like


def lerp_(a, b, weight: float):
    """``a += weight * (b - a)`` in place, in the same two forms as PyTorch's CPU ``lerp`` so the
    rounding agrees: from ``a`` for weight < 0.5, from ``b`` otherwise."""
    if weight < 0.5:
        a += weight * (b - a)
    else:
        a[...] = b - (b - a) * (1 - weight)


class Adam(Optimizer):
    """Adam, PyTorch's update step for step (``decoupled=False``) or AdamW's (``True``).

    With gradient ``g`` of parameter ``p`` at step ``t = 1, 2, ...``::

        g = g + weight_decay * p             (Adam: L2 penalty in the gradient)
        p = p * (1 - lr * weight_decay)      (AdamW: decay decoupled from the gradient)
        m = beta1 * m + (1 - beta1) * g                  (first moment, starts at 0)
        v = beta2 * v + (1 - beta2) * g * g              (second moment, starts at 0)
        v_max = max(v_max, v)                             (amsgrad only)
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    The bias corrections ``1 - beta**t`` undo the moments' start at zero. The step per
    coordinate is about ``lr`` whatever the gradient's scale, which is why Adam does not blow up
    when the loss is summed instead of averaged (docs/optim.md).

    Parameters
    ----------
    params : iterable of Tensor or of dict (parameter groups)
    lr : float
        >= 0.
    betas : (float, float)
        Decay rates of the moments, each in [0, 1).
    eps : float
        >= 0; keeps the denominator away from zero.
    weight_decay : float
        >= 0.
    amsgrad : bool
        Divide by the running maximum of ``v`` (Reddi et al., 2018).

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import optim
    >>> w = tnd.tensor([1.0, -200.0], requires_grad=True)
    >>> opt = optim.Adam([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()                         # first step: lr * sign(g), whatever |g|
    >>> [round(v, 4) for v in w.tolist()]
    [0.9, -199.9]
    """

    _buffer_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad))

    def _check_group(self, group):
        name = type(self).__name__
        check_number(name, "learning rate lr", group["lr"], low=0)
        check_number(name, "eps", group["eps"], low=0)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        check_number(name, "beta1 (betas[0])", betas[0], low=0, high=1, high_open=True)
        check_number(name, "beta2 (betas[1])", betas[1], low=0, high=1, high_open=True)
        check_number(name, "weight_decay", group["weight_decay"], low=0)

    def _update(self, p, grad, group, state):
        xp = backend.array_module(p.data)
        lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = Tensor._make(zeros_like(p.data), None)
            state["exp_avg_sq"] = Tensor._make(zeros_like(p.data), None)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = Tensor._make(zeros_like(p.data), None)
        state["step"] += 1
        step = state["step"]
        if weight_decay != 0:
            if self._decoupled:
                p.data *= 1 - lr * weight_decay
            else:
                grad = grad + weight_decay * p.data
        exp_avg, exp_avg_sq = state["exp_avg"].data, state["exp_avg_sq"].data
        lerp_(exp_avg, grad, 1 - beta1)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * (grad * grad)
        bias_correction1 = 1 - beta1 ** step
        bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
        if group["amsgrad"]:
            if "max_exp_avg_sq" not in state:  # amsgrad switched on after a state load
                state["max_exp_avg_sq"] = Tensor._make(exp_avg_sq.copy(), None)
            max_sq = state["max_exp_avg_sq"].data
            xp.maximum(max_sq, exp_avg_sq, out=max_sq)
            denom = xp.sqrt(max_sq) / bias_correction2_sqrt + eps
        else:
            denom = xp.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps
        p.data -= (lr / bias_correction1) * (exp_avg / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay: each step first shrinks the parameter by
    ``1 - lr * weight_decay``, then takes Adam's step on the plain gradient (see ``Adam``).

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import optim
    >>> w = tnd.tensor([1.0], requires_grad=True)
    >>> opt = optim.AdamW([w], lr=0.1, weight_decay=0.5)
    >>> w.grad = tnd.tensor([0.0])         # no gradient: only the decay acts
    >>> opt.step()
    >>> w.tolist()
    [0.949999988079071]
    """

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad)
