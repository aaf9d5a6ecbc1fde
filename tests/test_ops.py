"""Every op case: forward against numpy (float32, float64), gradcheck and gradgradcheck (float64)."""
import numpy as np
import pytest

import tinygrad_nd as tnd
from op_cases import all_cases

CASES = all_cases()


def _inputs(case, dtype, requires_grad=False):
    tensors = []
    for array, diff in zip(case.arrays(), case.differentiable()):
        if array.dtype == bool:
            tensors.append(tnd.tensor(array))
        else:
            tensors.append(tnd.tensor(array.astype(dtype), requires_grad=requires_grad and diff))
    return tensors


FORWARD = [(c, d) for c in CASES for d in c.dtypes]


@pytest.mark.parametrize("case,dtype", FORWARD, ids=[f"{c.id}-{d}" for c, d in FORWARD])
def test_forward_matches_numpy(case, dtype):
    arrays = [a if a.dtype == bool else a.astype(dtype) for a in case.arrays()]
    expected = np.asarray(case.ref(*arrays))
    out = case.fn(*_inputs(case, dtype))
    assert out.shape == expected.shape
    assert out.dtype == expected.dtype
    rtol = case.rtol32 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(out.numpy(), expected, rtol=rtol, atol=rtol * 1e-2)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_gradcheck(case):
    inputs = _inputs(case, "float64", requires_grad=True)
    assert tnd.gradcheck(case.fn, inputs)


@pytest.mark.parametrize("case", [c for c in CASES if c.second_order],
                         ids=[c.id for c in CASES if c.second_order])
def test_gradgradcheck(case):
    inputs = _inputs(case, "float64", requires_grad=True)
    assert tnd.gradgradcheck(case.fn, inputs)
