"""Every registered primitive has a case in the op-case table, and each case really runs its op."""
import pytest

import tinygrad_nd as tnd
from op_cases import all_cases
from tinygrad_nd.ops.registry import REGISTRY

CASES = all_cases()


def test_every_registered_op_has_a_case():
    covered = {case.op for case in CASES}
    missing = sorted(set(REGISTRY) - covered)
    assert not missing, f"registered ops without a case in tests/op_cases.py: {missing}"


def test_every_case_names_a_registered_op():
    unknown = sorted({case.op for case in CASES} - set(REGISTRY))
    assert not unknown, f"cases for ops that are not registered: {unknown}"


def test_case_ids_are_unique():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))


def _ops_in_graph(root):
    names, stack, seen = set(), [root.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        names.add(node.name)
        stack.extend(t.grad_fn for t in node.inputs)
    return names


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case_exercises_its_op(case):
    arrays = case.arrays()
    inputs = [tnd.tensor(a, dtype=None if a.dtype == bool else tnd.float64, requires_grad=d)
              for a, d in zip(arrays, case.differentiable())]
    out = case.fn(*inputs)
    assert case.op in _ops_in_graph(out), f"{case.id} does not record '{case.op}'"


def test_every_primitive_has_a_docstring_with_a_vjp():
    for name, cls in REGISTRY.items():
        doc = cls.__doc__ or ""
        assert "VJP" in doc or "vjp" in doc.lower(), f"{name}: docstring should state its VJP"
