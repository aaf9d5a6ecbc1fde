"""Finite-difference checks of analytic gradients: ``gradcheck`` and ``gradgradcheck``.

For each input x_j and each element k, the numerical derivative of every output element is the
central difference (f(x + eps e_k) - f(x - eps e_k)) / (2 eps). It is compared with the analytic
vector-Jacobian products, one row of the Jacobian at a time, which checks the full Jacobian.
Use float64 inputs: in float32 the rounding error of f swamps eps.
"""
from __future__ import annotations

import warnings

from . import autograd, backend
from .tensor import Tensor


class GradcheckError(RuntimeError):
    """Analytic and numerical gradients disagree (the message names the input and element)."""


def _as_tuple(x):
    return (x,) if isinstance(x, Tensor) else tuple(x)


def _outputs(fn, inputs):
    return _as_tuple(fn(*inputs))


def _flat_outputs(fn, inputs, index, host_values, like):
    probe = list(inputs)
    probe[index] = Tensor(host_values.copy(), dtype=like.dtype, device=like.device,
                          requires_grad=like.requires_grad)  # fn may itself differentiate
    outs = _outputs(fn, probe)
    return backend.host_concat([backend.to_host(o.data).reshape(-1) for o in outs])


def _numerical_jacobian(fn, inputs, index, eps, n_out):
    """(n_out, x.numel()) matrix: column k is d(outputs)/d(x_k) by central differences."""
    x = inputs[index]
    host = backend.to_host(x.data).astype(backend.float64)
    flat = host.reshape(-1)  # a view: writing flat[k] perturbs host
    jacobian = backend.host_zeros((n_out, flat.size))
    for k in range(flat.size):
        original = flat[k]
        flat[k] = original + eps
        plus = _flat_outputs(fn, inputs, index, host, x)
        flat[k] = original - eps
        minus = _flat_outputs(fn, inputs, index, host, x)
        flat[k] = original
        jacobian[:, k] = (plus - minus) / (2 * eps)
    return jacobian


def _analytic_jacobian(outs, inputs, index, n_out):
    """(n_out, x.numel()) matrix: row r is the VJP of the one-hot seed of output element r."""
    x = inputs[index]
    jacobian = backend.host_zeros((n_out, x.numel()))
    row = 0
    for o_pos, out in enumerate(outs):
        for k in range(out.numel()):
            seeds = []
            for j, o in enumerate(outs):
                seed = backend.host_zeros((o.numel(),))
                if j == o_pos:
                    seed[k] = 1.0
                seeds.append(Tensor(seed.reshape(o.shape), dtype=o.dtype, device=o.device))
            (g,) = autograd.grad(outs, (x,), grad_outputs=seeds, retain_graph=True, allow_unused=True)
            if g is not None:
                jacobian[row] = backend.to_host(g.data).reshape(-1)
            row += 1
    return jacobian


def gradcheck(fn, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True) -> bool:
    """Compare the gradients of ``fn`` at ``inputs`` with central finite differences.

    Parameters
    ----------
    fn : callable
        Takes the inputs as positional Tensors, returns a Tensor or a tuple of Tensors.
    inputs : Tensor or tuple of Tensor
        The inputs with ``requires_grad=True`` are checked; use float64.
    eps : float
        Finite-difference step.
    atol, rtol : float
        An element passes when ``|analytic - numeric| <= atol + rtol * |numeric|``.
    raise_exception : bool
        Raise ``GradcheckError`` on failure (default) instead of returning False.

    Returns
    -------
    bool
        True when every input passes.

    Raises
    ------
    GradcheckError
        Naming the input, the worst (output, input) element, and both values.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> x = tnd.randn(3, dtype=tnd.float64, requires_grad=True)
    >>> tnd.gradcheck(lambda t: (t * t.sigmoid()).sum(), (x,))
    True
    """
    inputs = _as_tuple(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    for i in checked:
        if inputs[i].dtype != backend.float64:
            warnings.warn(f"gradcheck: input {i} is {inputs[i].dtype}; finite differences need "
                          "float64 to be reliable", stacklevel=2)
    outs = tuple(o for o in _outputs(fn, inputs))
    outs = tuple(o for o in outs if o.requires_grad)
    if not outs:
        raise ValueError("gradcheck: fn returned no output that requires grad")
    n_out = sum(o.numel() for o in outs)
    for i in checked:
        numeric = _numerical_jacobian(fn, inputs, i, eps, n_out)
        analytic = _analytic_jacobian(outs, inputs, i, n_out)
        failure = backend.worst_mismatch(analytic, numeric, atol, rtol)
        if failure is not None:
            (row, col), a, n = failure
            message = (f"gradcheck: gradient mismatch for input {i} (shape {inputs[i].shape}): at "
                       f"output element {row}, input element {backend.unravel(col, inputs[i].shape)}: "
                       f"analytic {a:.10g} vs numeric {n:.10g} (atol={atol}, rtol={rtol})")
            if raise_exception:
                raise GradcheckError(message)
            return False
    return True


def gradgradcheck(fn, inputs, grad_outputs=None, *, eps=1e-6, atol=1e-5, rtol=1e-3,
                  raise_exception=True) -> bool:
    """Check second derivatives: gradcheck of the map ``inputs -> VJP(fn, inputs, v)``.

    ``v`` (``grad_outputs``) defaults to fixed random tensors; the backward pass is recorded
    with ``create_graph=True`` and itself differentiated, so every backward rule involved must be
    written with differentiable ops. Same parameters and errors as ``gradcheck``.
    """
    inputs = _as_tuple(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    outs = tuple(o for o in _outputs(fn, inputs) if o.requires_grad)
    if grad_outputs is None:
        rng = backend.host_rng(1234)
        grad_outputs = tuple(Tensor(rng.standard_normal(o.shape), dtype=o.dtype, device=o.device,
                                    requires_grad=True) for o in outs)
    grad_outputs = _as_tuple(grad_outputs)

    def first_derivative(*args):
        xs, vs = args[:len(inputs)], args[len(inputs):]
        ys = tuple(o for o in _outputs(fn, xs) if o.requires_grad)
        wrt = tuple(xs[i] for i in checked)
        grads = autograd.grad(ys, wrt, grad_outputs=vs, create_graph=True, allow_unused=True)
        return tuple(g for g in grads if g is not None and g.requires_grad)

    return gradcheck(first_derivative, inputs + grad_outputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception)
