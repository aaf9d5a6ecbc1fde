"""PyTorch as oracle for every op case: forward, first gradients and a second-order product.

For random inputs x, a random cotangent v and a random direction u (float64), compare
  y = f(x),   g = VJP(v) = d<v, f(x)>/dx,   h = d<u, g>/dx  (a Hessian-vector style product)
between tinygrad_nd and torch.
"""
import numpy as np
import pytest

import tinygrad_nd as tnd
from op_cases import all_cases

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

CASES = all_cases()


def _run_tnd(case, arrays, v, u):
    diff = case.differentiable()
    xs = [tnd.tensor(a) if a.dtype == bool else tnd.tensor(a, requires_grad=d) for a, d in zip(arrays, diff)]
    y = case.fn(*xs)
    wrt = [x for x, d in zip(xs, diff) if d]
    gs = tnd.autograd.grad(y, wrt, grad_outputs=tnd.tensor(v), create_graph=True, allow_unused=True)
    inner = sum((g * tnd.tensor(ui)).sum() for g, ui in zip(gs, u) if g is not None and g.requires_grad)
    if isinstance(inner, tnd.Tensor):
        hs = tnd.autograd.grad(inner, wrt, allow_unused=True)
    else:
        hs = (None,) * len(wrt)
    return y.numpy(), [g.numpy() if g is not None else None for g in gs], \
        [h.numpy() if h is not None else None for h in hs]


def _run_torch(case, arrays, v, u):
    diff = case.differentiable()
    xs = [torch.tensor(a) if a.dtype == bool else torch.tensor(a, requires_grad=d) for a, d in zip(arrays, diff)]
    y = case.torch_fn(torch, *xs) if case.torch_fn else case.fn(*xs)
    wrt = [x for x, d in zip(xs, diff) if d]
    gs = torch.autograd.grad(y, wrt, grad_outputs=torch.tensor(v), create_graph=True, allow_unused=True)
    terms = [(g * torch.tensor(ui)).sum() for g, ui in zip(gs, u) if g is not None and g.requires_grad]
    if terms:
        hs = torch.autograd.grad(sum(terms), wrt, allow_unused=True)
    else:
        hs = (None,) * len(wrt)
    return y.detach().numpy(), [g.detach().numpy(force=True) if g is not None else None for g in gs], \
        [h.detach().numpy(force=True) if h is not None else None for h in hs]


def _same(ours, theirs, shape, what):
    ours = np.zeros(shape) if ours is None else ours
    theirs = np.zeros(shape) if theirs is None else theirs
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12, err_msg=what)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_matches_torch(case):
    arrays = case.arrays(seed=7)
    rng = np.random.default_rng(11)
    y_ref = np.asarray(case.ref(*arrays))
    v = rng.standard_normal(y_ref.shape)
    u = [rng.standard_normal(a.shape) for a, d in zip(arrays, case.differentiable()) if d]
    y1, g1, h1 = _run_tnd(case, arrays, v, u)
    y2, g2, h2 = _run_torch(case, arrays, v, u)
    np.testing.assert_allclose(y1, y2, rtol=1e-12, atol=1e-14, err_msg="forward")
    shapes = [a.shape for a, d in zip(arrays, case.differentiable()) if d]
    for i, shape in enumerate(shapes):
        _same(g1[i], g2[i], shape, f"gradient of input {i}")
        _same(h1[i], h2[i], shape, f"second-order product for input {i}")
