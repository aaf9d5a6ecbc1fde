"""Elementwise primitives (numpy broadcasting; gradients are summed back to each input's shape).

Masks in backward rules (relu, abs, clamp, max) are constants: the functions are piecewise
linear there, so their second derivative is zero almost everywhere.
"""
from __future__ import annotations

import math
import operator

from .. import backend
from ..autograd import Function, array_module_of
from ..tensor import Tensor
from .reduce import sum_to
from .registry import register


# ----------------------------------------------------------------------------- arithmetic
@register("add")
class Add(Function):
    """z = x + y. VJP: gx = sum_to(gz, x.shape), gy = sum_to(gz, y.shape)."""

    def forward(self, xp, x, y):
        return x + y

    def backward(self, gz):
        x, y = self.inputs
        return (sum_to(gz, x.shape) if self.needs_grad[0] else None,
                sum_to(gz, y.shape) if self.needs_grad[1] else None)


@register("sub")
class Sub(Function):
    """z = x - y. VJP: gx = sum_to(gz), gy = -sum_to(gz)."""

    def forward(self, xp, x, y):
        return x - y

    def backward(self, gz):
        x, y = self.inputs
        return (sum_to(gz, x.shape) if self.needs_grad[0] else None,
                -sum_to(gz, y.shape) if self.needs_grad[1] else None)


@register("mul")
class Mul(Function):
    """z = x * y. VJP: gx = sum_to(gz * y), gy = sum_to(gz * x)."""

    def forward(self, xp, x, y):
        return x * y

    def backward(self, gz):
        x, y = self.inputs
        return (sum_to(gz * y, x.shape) if self.needs_grad[0] else None,
                sum_to(gz * x, y.shape) if self.needs_grad[1] else None)


@register("div")
class Div(Function):
    """z = x / y. VJP: gx = sum_to(gz / y), gy = sum_to(-gz * z / y)."""

    uses_output = True

    def forward(self, xp, x, y):
        return x / y

    def backward(self, gz):
        x, y = self.inputs
        gx = sum_to(gz / y, x.shape) if self.needs_grad[0] else None
        gy = sum_to(-gz * self.output() / y, y.shape) if self.needs_grad[1] else None
        return gx, gy


@register("neg")
class Neg(Function):
    """y = -x. VJP: gx = -gy."""

    def forward(self, xp, x):
        return -x

    def backward(self, gy):
        return -gy


@register("pow")
class Pow(Function):
    """z = x ** y. VJP: gx = sum_to(gz * y * x ** (y - 1)), gy = sum_to(gz * z * log(x)),
    with gy = 0 where x == 0 and y >= 0 (PyTorch's convention; log(0) would give NaN)."""

    uses_output = True

    def forward(self, xp, x, y):
        return x ** y

    def backward(self, gz):
        x, y = self.inputs
        gx = sum_to(gz * y * x ** (y - 1.0), x.shape) if self.needs_grad[0] else None
        gy = None
        if self.needs_grad[1]:
            zero_base = Tensor._make((x.data == 0) & (y.data >= 0), None)
            safe_x = where(zero_base, 1.0, x)  # log(1) = 0 there, and no warning
            gy = sum_to(where(zero_base, 0.0, gz * self.output() * safe_x.log()), y.shape)
        return gx, gy


# ----------------------------------------------------------------------------- unary
@register("exp")
class Exp(Function):
    """y = exp(x). VJP: gx = gy * y."""

    uses_output = True

    def forward(self, xp, x):
        return xp.exp(x)

    def backward(self, gy):
        return gy * self.output()


@register("log")
class Log(Function):
    """y = log(x) (natural). VJP: gx = gy / x."""

    def forward(self, xp, x):
        return xp.log(x)

    def backward(self, gy):
        return gy / self.inputs[0]


@register("sqrt")
class Sqrt(Function):
    """y = sqrt(x). VJP: gx = gy / (2 y)."""

    uses_output = True

    def forward(self, xp, x):
        return xp.sqrt(x)

    def backward(self, gy):
        return gy / (2.0 * self.output())


@register("abs")
class Abs(Function):
    """y = |x|. VJP: gx = gy * sign(x), with sign(0) = 0 as PyTorch."""

    def forward(self, xp, x):
        return xp.abs(x)

    def backward(self, gy):
        x = self.inputs[0]
        xp = backend.array_module(x.data)
        return gy * Tensor._make(xp.sign(x.data), None)


@register("sigmoid")
class Sigmoid(Function):
    """y = 1 / (1 + exp(-x)); exp(-x) overflowing to inf (x < -88 in float32) gives the right
    limit 0, so that overflow is expected and silenced. VJP: gx = gy * y * (1 - y).

    Arrays of at most ``SMALL`` elements take y = exp(x - log(1 + exp(x))) instead (``logaddexp``,
    which never overflows): no warning to silence, and silencing one (``errstate``) costs more
    than the arithmetic on a few elements. Its relative error is about max(x, 0) * eps (7e-7 in
    float32 against torch over [-120, 120]); ``logaddexp`` is slower per element, hence the
    cut-off.
    """

    uses_output = True
    SMALL = 64

    def forward(self, xp, x):
        if x.size <= self.SMALL:
            return xp.exp(x - xp.logaddexp(0, x))
        with backend.quiet_overflow(xp):
            return 1 / (1 + xp.exp(-x))

    def backward(self, gy):
        return SigmoidBackward.apply(gy, self.output())


@register("sigmoid_backward")
class SigmoidBackward(Function):
    """gx = gy * y * (1 - y) for the sigmoid output y: sigmoid's VJP as one primitive.
    VJP: g_gy = g * y * (1 - y) (the same op), g_y = g * gy * (1 - 2 y)."""

    def forward(self, xp, gy, y):
        return gy * (y - y * y)

    def backward(self, g):
        gy, y = self.inputs
        g_gy = SigmoidBackward.apply(g, y) if self.needs_grad[0] else None
        g_y = g * gy * (1.0 - 2.0 * y) if self.needs_grad[1] else None
        return g_gy, g_y


@register("tanh")
class Tanh(Function):
    """y = tanh(x). VJP: gx = gy * (1 - y^2)."""

    uses_output = True

    def forward(self, xp, x):
        return xp.tanh(x)

    def backward(self, gy):
        return TanhBackward.apply(gy, self.output())


@register("tanh_backward")
class TanhBackward(Function):
    """gx = gy * (1 - y^2) for the tanh output y: tanh's VJP as one primitive.
    VJP: g_gy = g * (1 - y^2) (the same op), g_y = -2 g gy y."""

    def forward(self, xp, gy, y):
        return gy - gy * y * y

    def backward(self, g):
        gy, y = self.inputs
        g_gy = TanhBackward.apply(g, y) if self.needs_grad[0] else None
        g_y = -2.0 * g * gy * y if self.needs_grad[1] else None
        return g_gy, g_y


@register("relu")
class Relu(Function):
    """y = max(x, 0). VJP: gx = gy where x > 0, else 0 (the gradient at 0 is 0, as PyTorch)."""

    def forward(self, xp, x):
        return xp.maximum(x, 0)

    def backward(self, gy):
        x = self.inputs[0]
        return where(Tensor._make(x.data > 0, None), gy, 0.0)


@register("clamp")
class Clamp(Function):
    """y = min(max(x, min), max). VJP: gx = gy where min <= x <= max (bounds included, as
    PyTorch), else 0."""

    def forward(self, xp, x):
        y = x
        if self.min is not None:
            y = xp.maximum(y, xp.asarray(self.min, dtype=x.dtype))
        if self.max is not None:
            y = xp.minimum(y, xp.asarray(self.max, dtype=x.dtype))
        return y

    def backward(self, gy):
        x = self.inputs[0].data
        inside = x == x  # all True (False at NaN)
        if self.min is not None:
            inside = inside & (x >= self.min)
        if self.max is not None:
            inside = inside & (x <= self.max)
        return where(Tensor._make(inside, None), gy, 0.0)


@register("where")
class Where(Function):
    """z = x where cond else y (cond is a bool tensor, not differentiable).
    VJP: gx = sum_to(where(cond, gz, 0)), gy = sum_to(where(cond, 0, gz))."""

    def forward(self, xp, cond, x, y):
        return xp.where(cond, x, y)

    def backward(self, gz):
        cond, x, y = self.inputs
        gx = sum_to(where(cond, gz, 0.0), x.shape) if self.needs_grad[1] else None
        gy = sum_to(where(cond, 0.0, gz), y.shape) if self.needs_grad[2] else None
        return None, gx, gy


# ----------------------------------------------------------------------------- wrappers
_constants = {}  # (value, type, dtype) -> a constant host Tensor, reused across ops (read-only)


def lift(value, like: Tensor) -> Tensor:
    """A Python number or array as a constant Tensor on ``like``'s device.

    Numbers take ``like``'s dtype when it is floating point (float32 stays float32, as
    PyTorch); a float with an integer tensor gives float32. Host constants of ordinary numbers
    are cached: ``x * 2.0`` in a loop builds the constant once.
    """
    if isinstance(value, Tensor):
        return value
    if type(value) is float and value:  # the hot case, a cached float (0.0 and -0.0 go below)
        constant = _constants.get((value, float, like.data.dtype))
        if constant is not None and type(like.data) is backend.host_array_type:
            return constant
    if isinstance(value, (bool, int, float)):
        dtype = like.dtype
        if dtype.kind != "f":
            if isinstance(value, float):
                dtype = backend.float32
            elif dtype == backend.bool_ and not isinstance(value, bool):
                dtype = backend.int64
        if type(like.data) is not backend.host_array_type or value != value or \
                (value == 0 and math.copysign(1.0, value) < 0):  # device, NaN or -0.0: not cached
            return Tensor._make(backend.scalar_like(like.data, value, dtype), None)
        key = (value, type(value), dtype)
        constant = _constants.get(key)
        if constant is None:
            if len(_constants) >= 512:
                _constants.clear()
            array = backend.scalar_like(like.data, value, dtype)
            array.flags.writeable = False
            constant = _constants[key] = Tensor._make(array, None)
        return constant
    return Tensor(value, device=like.device)


def _binary(cls, x, y) -> Tensor:
    if not isinstance(x, Tensor):
        x = lift(x, y)
    elif not isinstance(y, Tensor):
        y = lift(y, x)
    xd, yd = x.data, y.data
    if xd.shape != yd.shape:
        backend.broadcast_shape(cls.name, xd.shape, yd.shape)
    if xd.dtype is not yd.dtype and (xd.dtype.kind == "f") != (yd.dtype.kind == "f"):
        # int with float: the integer side takes the float dtype (as PyTorch)
        if xd.dtype.kind == "f":
            y = y.to(dtype=xd.dtype)
        else:
            x = x.to(dtype=yd.dtype)
    return cls.apply(x, y)


def add(x, y) -> Tensor:
    """x + y with numpy broadcasting."""
    return _binary(Add, x, y)


def sub(x, y) -> Tensor:
    """x - y with numpy broadcasting."""
    return _binary(Sub, x, y)


def mul(x, y) -> Tensor:
    """x * y with numpy broadcasting."""
    return _binary(Mul, x, y)


def div(x, y) -> Tensor:
    """x / y (true division) with numpy broadcasting; integer tensors divide to float32."""
    if not isinstance(x, Tensor):
        x = lift(x, y)
    if not backend.is_float_dtype(x.dtype) and not (isinstance(y, Tensor) and backend.is_float_dtype(y.dtype)) \
            and not isinstance(y, float):
        x = x.to(dtype=backend.float32)
    return _binary(Div, x, y)


def pow(x, y) -> Tensor:
    """x ** y with numpy broadcasting (x or y may be a number)."""
    return _binary(Pow, x, y)


def neg(x: Tensor) -> Tensor:
    return Neg.apply(x)


def exp(x: Tensor) -> Tensor:
    return Exp.apply(_as_float(x))


def log(x: Tensor) -> Tensor:
    return Log.apply(_as_float(x))


def sqrt(x: Tensor) -> Tensor:
    return Sqrt.apply(_as_float(x))


def abs(x: Tensor) -> Tensor:
    return Abs.apply(x)


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x)) without overflow for any x."""
    return Sigmoid.apply(_as_float(x))


def _as_float(x: Tensor) -> Tensor:
    """Integer and bool tensors as float32 for the float-valued unary ops (PyTorch's rule:
    ``torch.tensor([1, 2]).exp()`` is float32), float tensors unchanged."""
    return x if x.data.dtype.kind in "fc" else x.to(dtype=backend.float32)


def tanh(x: Tensor) -> Tensor:
    return Tanh.apply(_as_float(x))


def relu(x: Tensor) -> Tensor:
    """max(x, 0); the gradient at 0 is 0."""
    return Relu.apply(x)


def clamp(x: Tensor, min=None, max=None) -> Tensor:
    """Limit x to [min, max] (either bound may be None); the gradient passes where min <= x <= max."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    return Clamp.apply(x, min=min, max=max)


def where(cond, x, y) -> Tensor:
    """Elementwise ``x if cond else y`` with broadcasting; ``cond`` is a bool tensor."""
    like = x if isinstance(x, Tensor) else y if isinstance(y, Tensor) else None
    if not isinstance(cond, Tensor):
        cond = Tensor(cond, device=like.device if like is not None else None)
    if cond.dtype != backend.bool_:
        raise TypeError(f"where: cond must be a bool tensor, got dtype {cond.dtype}")
    like = like if like is not None else cond
    if not isinstance(x, Tensor):
        x = lift(x, y if isinstance(y, Tensor) else like)
    if not isinstance(y, Tensor):
        y = lift(y, x)
    backend.broadcast_shape("where", cond.shape, x.shape, y.shape)
    if x.dtype != y.dtype:
        dtype = backend.result_dtype(x.dtype, y.dtype)
        x, y = x.to(dtype=dtype), y.to(dtype=dtype)
    return Where.apply(cond, x, y)


_COMPARE = {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le,
            "gt": operator.gt, "ge": operator.ge, "and": operator.and_, "or": operator.or_,
            "xor": operator.xor}


def compare(kind: str, x, y) -> Tensor:
    """Elementwise comparison (``kind`` in eq, ne, lt, le, gt, ge) or logical/bitwise op (and, or,
    xor) of bool or integer tensors: not differentiable."""
    if not isinstance(x, Tensor):
        x = lift(x, y)
    if not isinstance(y, Tensor):
        y = lift(y, x)
    backend.broadcast_shape(kind, x.shape, y.shape)
    array_module_of(kind, (x, y))  # refuses mixed devices, naming each input's
    with backend.device_scope(x.data):  # a raw kernel: run it on the inputs' device
        return Tensor._make(_COMPARE[kind](x.data, y.data), None)


def invert(x: Tensor) -> Tensor:
    """Logical not of a bool tensor (bitwise not of an integer one); not differentiable."""
    if x.dtype.kind not in "biu":
        raise TypeError(f"invert: needs a bool or integer tensor, got dtype {x.dtype}")
    return Tensor._make(~x.data, None)
