"""RMSprop (Hinton, lecture 6e of "Neural Networks for Machine Learning", 2012), PyTorch's form."""
from __future__ import annotations

from .. import backend
from ..tensor import Tensor
from .adam import lerp_
from .optimizer import Optimizer, check_number, zeros_like


class RMSprop(Optimizer):
    """Divide the gradient by a running root mean square of recent gradients.

    With gradient ``g`` of parameter ``p`` (all state starts at zero)::

        g = g + weight_decay * p                          (if weight_decay != 0)
        v = alpha * v + (1 - alpha) * g * g               (square_avg)
        a = alpha * a + (1 - alpha) * g                   (grad_avg, centered only)
        d = sqrt(v - a * a) + eps   if centered  else  sqrt(v) + eps
        b = momentum * b + g / d;   p = p - lr * b        (if momentum > 0)
        p = p - lr * g / d                                (otherwise)

    Parameters
    ----------
    params : iterable of Tensor or of dict (parameter groups)
    lr : float
        >= 0.
    alpha : float
        Smoothing constant of the squared-gradient average, >= 0.
    eps : float
        >= 0.
    weight_decay, momentum : float
        >= 0.
    centered : bool
        Normalise by an estimate of the gradient's variance instead of its second moment.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import optim
    >>> w = tnd.tensor([1.0], requires_grad=True)
    >>> opt = optim.RMSprop([w], lr=0.01)
    >>> (w * 3.0).sum().backward()         # g = 3: v = 0.01 * 9, step = 0.01 * 3 / 0.3
    >>> opt.step()
    >>> [round(v, 6) for v in w.tolist()]
    [0.9]
    """

    _buffer_names = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def _check_group(self, group):
        check_number("RMSprop", "learning rate lr", group["lr"], low=0)
        check_number("RMSprop", "alpha", group["alpha"], low=0)
        check_number("RMSprop", "eps", group["eps"], low=0)
        check_number("RMSprop", "weight_decay", group["weight_decay"], low=0)
        check_number("RMSprop", "momentum", group["momentum"], low=0)

    def _update(self, p, grad, group, state):
        xp = backend.array_module(p.data)
        alpha, momentum = group["alpha"], group["momentum"]
        if "step" not in state:
            state["step"] = 0
            state["square_avg"] = Tensor._make(zeros_like(p.data), None)
        for name, wanted in (("momentum_buffer", momentum > 0), ("grad_avg", group["centered"])):
            if wanted and name not in state:
                state[name] = Tensor._make(zeros_like(p.data), None)
        state["step"] += 1
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * p.data
        square_avg = state["square_avg"].data
        square_avg *= alpha
        square_avg += (1 - alpha) * grad * grad
        if group["centered"]:
            grad_avg = state["grad_avg"].data
            lerp_(grad_avg, grad, 1 - alpha)
            avg = xp.sqrt(square_avg + (-1) * grad_avg * grad_avg)
        else:
            avg = xp.sqrt(square_avg)
        avg += group["eps"]
        if momentum > 0:
            buf = state["momentum_buffer"].data
            buf *= momentum
            buf += grad / avg
            p.data -= group["lr"] * buf
        else:
            p.data -= group["lr"] * grad / avg
