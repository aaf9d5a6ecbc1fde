"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay."""
from __future__ import annotations

from ..tensor import Tensor
from .optimizer import Optimizer, check_number


class SGD(Optimizer):
    """Stochastic gradient descent, PyTorch's update step for step.

    With gradient ``g`` of parameter ``p`` at step ``t``::

        g = g + weight_decay * p                        (L2 penalty, if weight_decay != 0)
        b = g                               at t = 1    (momentum buffer, if momentum != 0)
        b = momentum * b + (1 - dampening) * g  after
        g = g + momentum * b   if nesterov  else  g = b
        p = p - lr * g

    Parameters
    ----------
    params : iterable of Tensor or of dict (parameter groups)
    lr : float
        Learning rate, >= 0.
    momentum : float
        >= 0; 0 turns momentum (and its state) off.
    dampening : float
        Scales the new gradient's share of the momentum buffer by ``1 - dampening``.
    weight_decay : float
        >= 0; L2 penalty added to the gradient.
    nesterov : bool
        Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import optim
    >>> w = tnd.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = optim.SGD([w], lr=0.1)
    >>> (w * w).sum().backward()          # gradient 2w = [2, -4]
    >>> opt.step()
    >>> w.tolist()
    [0.800000011920929, -1.600000023841858]
    """

    _buffer_names = ("momentum_buffer",)

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _check_group(self, group):
        check_number("SGD", "learning rate lr", group["lr"], low=0)
        check_number("SGD", "momentum", group["momentum"], low=0)
        check_number("SGD", "dampening", group["dampening"])
        check_number("SGD", "weight_decay", group["weight_decay"], low=0)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: Nesterov momentum needs momentum > 0 and dampening = 0, got "
                             f"momentum={group['momentum']}, dampening={group['dampening']}")

    def _update(self, p, grad, group, state):
        momentum, weight_decay = group["momentum"], group["weight_decay"]
        if weight_decay != 0:
            grad = grad + weight_decay * p.data
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = grad.copy()  # the first step takes the gradient as it is
                state["momentum_buffer"] = Tensor._make(buf, None)
            else:
                buf = buf.data
                buf *= momentum
                buf += (1 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        p.data -= group["lr"] * grad

