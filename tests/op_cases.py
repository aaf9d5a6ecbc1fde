"""The op-case table: one or more cases for every registered primitive.

Each ``OpCase`` names the primitive (its registry name), a function of Tensors that exercises
it, a numpy reference, and the shapes of its inputs. ``test_ops.py`` checks every case forward
(float32 and float64) and with gradcheck / gradgradcheck (float64); ``test_torch_ops.py`` compares
forward, gradients and a second-order product with PyTorch; ``test_registry.py`` fails when a
registered op has no case here. Inputs stay off kinks and ties (see the ``make`` functions);
kinks and ties are tested separately with exact expected gradients.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import tinygrad_nd as tnd
from tinygrad_nd.ops import elementwise as E
from tinygrad_nd.ops import loss as L
from tinygrad_nd.ops import shape as S

# ----------------------------------------------------------------------------- input makers
# Each maker takes (rng, shape) and returns a float64 array; tests cast to the dtype under test.


def randn(rng, shape):
    return rng.standard_normal(shape)


def positive(rng, shape):
    """In [0.5, 2]: safe for log, sqrt, pow bases and divisors."""
    return rng.uniform(0.5, 2.0, shape)


def off_zero(rng, shape):
    """|x| in [0.2, 1.5] with random signs: away from the kinks of relu, abs and clamp."""
    return rng.uniform(0.2, 1.5, shape) * rng.choice([-1.0, 1.0], shape)


def distinct(rng, shape):
    """Distinct values spaced by at least 0.1: no ties for max."""
    n = int(np.prod(shape, dtype=np.int64))
    return (rng.permutation(n) * 0.1 - n * 0.05 + 0.013).reshape(shape)


def mask(rng, shape):
    return rng.random(shape) > 0.5


@dataclass
class OpCase:
    op: str  # registry name of the primitive under test
    name: str  # readable id suffix
    fn: Callable  # fn(*tensors) -> Tensor, exercising the primitive through its public wrapper
    ref: Callable  # ref(*arrays) -> array, numpy reference (arrays in the dtype under test)
    shapes: tuple  # input shapes
    make: tuple = ()  # one maker per input (default randn)
    grad: tuple = ()  # which inputs are differentiable (default: all float inputs)
    torch_fn: Callable | None = None  # torch_fn(torch, *tensors), when it differs from fn's names
    dtypes: tuple = ("float32", "float64")
    rtol32: float = 1e-5
    second_order: bool = True  # gradgradcheck applies (False only for non-float outputs)
    extra: dict = field(default_factory=dict)

    @property
    def id(self):
        return f"{self.op}-{self.name}"

    def makers(self):
        return self.make or (randn,) * len(self.shapes)

    def differentiable(self):
        if self.grad:
            return self.grad
        return tuple(m is not mask for m in self.makers())

    def arrays(self, seed=0):
        rng = np.random.default_rng(seed)
        return [m(rng, s) for m, s in zip(self.makers(), self.shapes)]


def _cases(op, fn, ref, shape_sets, **kw):
    """One OpCase per entry of ``shape_sets`` ({name: shapes})."""
    return [OpCase(op, name, fn, ref, shapes, **kw) for name, shapes in shape_sets.items()]


BINARY_SHAPES = {
    "same": ((3, 4), (3, 4)),
    "broadcast": ((2, 3, 4), (3, 1)),
    "size1": ((1, 4), (5, 1)),
    "scalar": ((), (2, 3)),
    "0d": ((), ()),
}
UNARY_SHAPES = {"2d": ((3, 4),), "3d": ((2, 1, 3),), "size1": ((1,),), "0d": ((),)}

CASES: list[OpCase] = []

# ----------------------------------------------------------------------------- elementwise
CASES += _cases("add", lambda x, y: x + y, np.add, BINARY_SHAPES)
CASES += _cases("sub", lambda x, y: x - y, np.subtract, BINARY_SHAPES)
CASES += _cases("mul", lambda x, y: x * y, np.multiply, BINARY_SHAPES)
CASES += _cases("div", lambda x, y: x / y, np.divide, BINARY_SHAPES, make=(randn, positive))
CASES += _cases("pow", lambda x, y: x ** y, np.power, BINARY_SHAPES, make=(positive, randn))
CASES += _cases("pow", lambda x: x ** 3.0, lambda x: x ** 3.0,
                {"scalar-exponent": ((3, 4),), "scalar-exponent-0d": ((),)})
CASES += _cases("neg", lambda x: -x, np.negative, UNARY_SHAPES)
CASES += _cases("exp", lambda x: x.exp(), np.exp, UNARY_SHAPES)
CASES += _cases("log", lambda x: x.log(), np.log, UNARY_SHAPES, make=(positive,))
CASES += _cases("sqrt", lambda x: x.sqrt(), np.sqrt, UNARY_SHAPES, make=(positive,))
CASES += _cases("abs", lambda x: x.abs(), np.abs, UNARY_SHAPES, make=(off_zero,))
CASES += _cases("sigmoid", lambda x: x.sigmoid(), lambda x: 1 / (1 + np.exp(-x)), UNARY_SHAPES)
CASES += _cases("tanh", lambda x: x.tanh(), np.tanh, UNARY_SHAPES)
CASES += _cases("sigmoid_backward", lambda g, y: E.SigmoidBackward.apply(g, y), lambda g, y: g * y * (1 - y),
                {"same": ((3, 4), (3, 4)), "size1": ((1,), (1,)), "0d": ((), ())},
                torch_fn=lambda torch, g, y: torch.ops.aten.sigmoid_backward(g, y))
CASES += _cases("tanh_backward", lambda g, y: E.TanhBackward.apply(g, y), lambda g, y: g * (1 - y * y),
                {"same": ((3, 4), (3, 4)), "size1": ((1,), (1,)), "0d": ((), ())},
                torch_fn=lambda torch, g, y: torch.ops.aten.tanh_backward(g, y))
CASES += _cases("relu", lambda x: x.relu(), lambda x: np.maximum(x, 0), UNARY_SHAPES, make=(off_zero,))
CASES += _cases("clamp", lambda x: x.clamp(-0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7),
                UNARY_SHAPES, make=(off_zero,))
CASES += _cases("clamp", lambda x: x.clamp(min=0.1), lambda x: np.maximum(x, 0.1),
                {"min-only": ((4, 3),)}, make=(off_zero,))
CASES += _cases("where", lambda c, x, y: tnd.where(c, x, y), np.where,
                {"same": ((3, 4), (3, 4), (3, 4)), "broadcast": ((3, 1), (1, 4), (3, 4)),
                 "0d": ((), (), ()), "size1": ((1,), (5, 1), (1,))},
                make=(mask, randn, randn), torch_fn=lambda torch, c, x, y: torch.where(c, x, y))

# ----------------------------------------------------------------------------- reductions
CASES += _cases("sum", lambda x: x.sum(), np.sum, UNARY_SHAPES)
CASES += _cases("sum", lambda x: x.sum(1), lambda x: x.sum(1), {"dim1": ((3, 4),), "dim1-size1": ((2, 1, 3),)})
CASES += _cases("sum", lambda x: x.sum((0, 2), keepdim=True), lambda x: x.sum((0, 2), keepdims=True),
                {"dims-keepdim": ((2, 3, 4),)})
CASES += _cases("expand", lambda x: x.expand(2, 3, 4), lambda x: np.broadcast_to(x, (2, 3, 4)),
                {"lead": ((3, 4),), "size1": ((3, 1),), "0d": ((),)})
CASES += _cases("max", lambda x: x.max(), np.max, UNARY_SHAPES, make=(distinct,))
CASES += _cases("max", lambda x: x.max(1).values, lambda x: x.max(1),
                {"dim1": ((3, 4),), "dim1-size1": ((2, 1, 3),)}, make=(distinct,))
CASES += _cases("max", lambda x: x.max(-1, keepdim=True).values, lambda x: x.max(-1, keepdims=True),
                {"keepdim": ((2, 3, 4),)}, make=(distinct,))
CASES += _cases("max", lambda x: x.min(0).values, lambda x: x.min(0), {"min-dim0": ((4, 3),)}, make=(distinct,))

# ----------------------------------------------------------------------------- shape
CASES += _cases("reshape", lambda x: x.reshape(4, -1), lambda x: x.reshape(4, -1),
                {"2d": ((2, 6),), "3d": ((2, 2, 3),), "size1": ((1, 4),)})
CASES += _cases("reshape", lambda x: x.reshape(1, 1), lambda x: x.reshape(1, 1), {"0d": ((),)})
CASES += _cases("permute", lambda x: x.permute(2, 0, 1), lambda x: x.transpose(2, 0, 1),
                {"3d": ((2, 3, 4),), "size1": ((1, 3, 1),)})
CASES += _cases("permute", lambda x: x.T, lambda x: x.T, {"T": ((3, 5),)})
CASES += _cases("getitem", lambda x: x[1:, ::2], lambda x: x[1:, ::2], {"slices": ((4, 5),)})
CASES += _cases("getitem", lambda x: x[1], lambda x: x[1], {"int": ((3, 4),), "int-1d": ((3,),)})
CASES += _cases("getitem", lambda x: x[[0, 2, 0, 0]], lambda x: x[[0, 2, 0, 0]],
                {"repeated-int-array": ((3, 4),)})
CASES += _cases("getitem", lambda x: x[None, ..., 1], lambda x: x[None, ..., 1], {"none-ellipsis": ((2, 3, 2),)})
CASES += _cases("getitem", lambda x: x[tnd.tensor([[1, 1], [0, 2]]), tnd.tensor([0, 0])],
                lambda x: x[np.array([[1, 1], [0, 2]]), np.array([0, 0])], {"2d-int-arrays": ((3, 4),)},
                torch_fn=lambda torch, x: x[torch.tensor([[1, 1], [0, 2]]), torch.tensor([0, 0])])
CASES += _cases("getitem", lambda x, m: x[m], lambda x, m: x[m], {"bool-mask": ((3, 4), (3, 4))},
                make=(randn, mask), grad=(True, False))
CASES += _cases("index_put_add",
                lambda x: S.IndexPutAdd.apply(x, index=(tnd.tensor([0, 2, 0], device=x.device).data,), shape=(4, 3)),
                lambda x: _np_index_add((4, 3), (np.array([0, 2, 0]),), x),
                {"repeated-rows": ((3, 3),)},
                torch_fn=lambda torch, x: torch.zeros(4, 3, dtype=x.dtype).index_put(
                    (torch.tensor([0, 2, 0]),), x, accumulate=True))
CASES += _cases("index_put_add",
                lambda x: S.IndexPutAdd.apply(x, index=(slice(1, 3), 0), shape=(4, 2)),
                lambda x: _np_index_add((4, 2), (slice(1, 3), 0), x), {"basic": ((2,),)},
                torch_fn=lambda torch, x: torch.nn.functional.pad(x.reshape(2, 1), (0, 1, 1, 1)))
CASES += _cases("index_put_add",
                lambda x: S.IndexPutAdd.apply(x, index=(1,), shape=(3,)),
                lambda x: _np_index_add((3,), (1,), x), {"0d": ((),)},
                torch_fn=lambda torch, x: torch.stack([x * 0, x, x * 0]))
CASES += _cases("cat", lambda x, y: tnd.cat([x, y], 1), lambda x, y: np.concatenate([x, y], 1),
                {"dim1": ((2, 3), (2, 1)), "size1": ((1, 1), (1, 2))},
                torch_fn=lambda torch, x, y: torch.cat([x, y], 1))
CASES += _cases("cat", lambda x, y, z: tnd.cat([x, y, z], 0), lambda x, y, z: np.concatenate([x, y, z]),
                {"three": ((1,), (3,), (2,))}, torch_fn=lambda torch, x, y, z: torch.cat([x, y, z], 0))
CASES += _cases("cat", lambda x, y: tnd.stack([x, y], 0), lambda x, y: np.stack([x, y]),
                {"stack-0d": ((), ()), "stack-2d": ((2, 3), (2, 3))},
                torch_fn=lambda torch, x, y: torch.stack([x, y], 0))
# To to float64: a real cast for float32 inputs, an identity copy for float64 ones (where
# gradcheck runs); the float32 -> float64 -> float32 gradient dtypes are tested in test_autograd.
CASES += _cases("to", lambda x: S.To.apply(x, device=None, dtype=np.dtype("float64")),
                lambda x: x.astype(np.float64), {"cast": ((3, 2),), "cast-0d": ((),), "cast-size1": ((1, 1),)},
                torch_fn=lambda torch, x: x.to(torch.float64))

# ----------------------------------------------------------------------------- linalg
CASES += _cases("matmul", lambda x, y: x @ y, np.matmul, {
    "2d": ((3, 4), (4, 2)),
    "batched-broadcast": ((2, 1, 3, 4), (3, 4, 5)),
    "vec-mat": ((4,), (4, 3)),
    "mat-vec": ((3, 4), (4,)),
    "vec-vec": ((4,), (4,)),
    "size1": ((1, 1), (1, 3)),
})
CASES += _cases("matmul", lambda x, y: tnd.ops.linalg.matmul(x, y, transpose_y=True),
                lambda x, y: x @ np.swapaxes(y, -1, -2),
                {"transpose-y": ((3, 4), (2, 4)), "transpose-y-batched": ((2, 3, 4), (1, 5, 4)),
                 "transpose-y-vec": ((4,), (3, 4))},
                torch_fn=lambda torch, x, y: x @ y.transpose(-1, -2))
CASES += _cases("matmul", lambda x, y: tnd.ops.linalg.MatMul.apply(x, y, transpose_x=True),
                lambda x, y: np.swapaxes(x, -1, -2) @ y,
                {"transpose-x": ((4, 3), (4, 2)), "transpose-x-batched": ((2, 4, 3), (4, 5))},
                torch_fn=lambda torch, x, y: x.transpose(-1, -2) @ y)
CASES += _cases("matmul", lambda x, y: tnd.ops.linalg.MatMul.apply(x, y, transpose_x=True, transpose_y=True),
                lambda x, y: np.swapaxes(x, -1, -2) @ np.swapaxes(y, -1, -2),
                {"transpose-both": ((4, 3), (2, 4))},
                torch_fn=lambda torch, x, y: x.transpose(-1, -2) @ y.transpose(-1, -2))

CASES += _cases("matmul", lambda x, w, b: tnd.nn.functional.linear(x, w, b), lambda x, w, b: x @ w.T + b,
                {"linear-bias": ((3, 4), (2, 4), (2,)), "linear-bias-batched": ((2, 3, 4), (5, 4), (5,)),
                 "linear-bias-size1": ((1, 1), (1, 1), (1,))},
                torch_fn=lambda torch, x, w, b: torch.nn.functional.linear(x, w, b))

# ----------------------------------------------------------------------------- losses
CASES += _cases("mse_loss", lambda x, t: tnd.nn.functional.mse_loss(x, t),
                lambda x, t: np.mean((x - t) ** 2),
                {"2d": ((3, 4), (3, 4)), "size1": ((1,), (1,)), "0d": ((), ())},
                torch_fn=lambda torch, x, t: torch.nn.functional.mse_loss(x, t))
CASES += _cases("mse_loss", lambda x, t: tnd.nn.functional.mse_loss(x, t, reduction="sum"),
                lambda x, t: np.sum((x - t) ** 2), {"sum-3d": ((2, 1, 3), (2, 1, 3))},
                torch_fn=lambda torch, x, t: torch.nn.functional.mse_loss(x, t, reduction="sum"))
CASES += _cases("mse_loss_backward",
                lambda g, x, t: L.MseLossBackward.apply(g, x, t, reduction="mean"),
                lambda g, x, t: 2 * g * (x - t) / x.size,
                {"2d": ((), (3, 4), (3, 4)), "size1": ((), (1,), (1,)), "0d": ((), (), ())},
                torch_fn=lambda torch, g, x, t: torch.ops.aten.mse_loss_backward(g, x, t, 1))
CASES += _cases("mse_loss_backward",
                lambda g, x, t: L.MseLossBackward.apply(g, x, t, reduction="sum"),
                lambda g, x, t: 2 * g * (x - t), {"sum-3d": ((), (2, 1, 3), (2, 1, 3))},
                torch_fn=lambda torch, g, x, t: torch.ops.aten.mse_loss_backward(g, x, t, 2))


def _np_index_add(shape, index, values):
    out = np.zeros(shape, dtype=values.dtype)
    np.add.at(out, index, values)
    return out


def all_cases():
    """Core cases plus the convolution/pooling family's, when present."""
    try:
        from op_cases_conv import CONV_CASES
    except ImportError:
        CONV_CASES = []
    return CASES + list(CONV_CASES)
