"""tinygrad_nd: a small reverse-mode autodiff framework with N-dimensional convolution and pooling.

Quick tour::

    import tinygrad_nd as tnd
    from tinygrad_nd import nn, optim
    import tinygrad_nd.nn.functional as F
"""
from . import backend
from .backend import bool_ as bool  # noqa: A001  (PyTorch's name, tnd.bool)
from .backend import float32, float64, int64
from .tensor import Tensor
from . import autograd
from .autograd import no_grad, enable_grad, set_grad_enabled, is_grad_enabled
from . import ops
from .ops.shape import cat, stack
from .ops.elementwise import where
from .factories import (
    tensor, zeros, ones, full, empty, arange, eye, rand, randn, randint, zeros_like, ones_like,
    full_like, rand_like, randn_like, manual_seed,
)
from . import nn
from .gradcheck import gradcheck, gradgradcheck, GradcheckError

__version__ = "0.1.0"

__all__ = [
    "Tensor", "tensor", "zeros", "ones", "full", "empty", "arange", "eye", "rand", "randn",
    "randint", "zeros_like", "ones_like", "full_like", "rand_like", "randn_like", "manual_seed",
    "float32", "float64", "int64", "bool", "no_grad", "enable_grad", "set_grad_enabled",
    "is_grad_enabled", "cat", "stack", "where", "gradcheck", "gradgradcheck", "GradcheckError",
    "autograd", "nn", "backend", "ops",
]

from . import optim  # noqa: E402
from . import data  # noqa: E402
from .serialization import save, load  # noqa: E402
from . import viz  # noqa: E402  (imports graphviz lazily, inside its functions)

__all__ += ["optim", "data", "save", "load", "viz"]
