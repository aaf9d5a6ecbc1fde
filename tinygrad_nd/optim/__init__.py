"""Optimizers and learning-rate schedulers (PyTorch's ``torch.optim`` names and update rules).

Each optimizer updates ``p.data`` in place under ``no_grad`` from ``p.grad``; ``zero_grad()``
clears the gradients (to None) before the next backward.
"""
from . import lr_scheduler  # noqa: F401
from .optimizer import Optimizer
from .sgd import SGD
from .adam import Adam, AdamW
from .rmsprop import RMSprop

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "lr_scheduler"]
