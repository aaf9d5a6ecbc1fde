"""Static guards (AST, no GPU needed) for the one-code-path rule of docs/gpu.md:

1. No module of the package but ``backend.py`` imports numpy or cupy.
2. Ops (``ops/``, ``nn/functional*.py``, ``optim/``) and the engine (``autograd.py``) make no
   host round trips: no ``.item()``, ``.tolist()``, ``.numpy()``, argument-less ``.get()``,
   ``float()``/``int()``/``bool()``/``complex()`` of array data, ``if``/``while``/``assert``/
   ``and``/``or``/``not`` on array data, ``np.``/``numpy.``/``cupy.`` references,
   ``backend.to_host`` or ``backend.all_finite``.

"Array data" is recognised syntactically: an expression that reads ``.data`` (other than its
metadata: ``.data.shape``, ``.size``, ...), calls an ``xp`` function other than a dtype helper,
calls a reducing method (``.any()``, ``.sum()``, ...), or names a parameter of a ``forward``
(raw arrays) or ``backward`` (gradient Tensors) method. The dynamic guard is the strict CuPy
stand-in (tests/test_device_portability.py); this one also sees code paths no test reaches.

Legitimate exceptions are listed in ``ALLOWED`` with the reason.
"""
from __future__ import annotations

import ast
from pathlib import Path


PACKAGE = Path(__file__).resolve().parent.parent / "tinygrad_nd"
ARRAY_LIBRARIES = {"numpy", "cupy", "cupyx"}
HOST_NAMES = {"np", "numpy", "cp", "cupy", "cupyx"}
CONVERSIONS = {"float", "int", "bool", "complex"}
HOST_METHODS = {"item", "tolist", "numpy"}
SYNC_HELPERS = {"to_host", "all_finite"}
REDUCING_METHODS = {"any", "all", "sum", "max", "min", "mean", "prod", "argmax", "argmin", "std",
                    "var", "dot", "nonzero", "count_nonzero"}
METADATA = {"shape", "ndim", "dtype", "size", "device", "strides", "itemsize", "nbytes", "flags"}
XP_HOST_HELPERS = {"dtype", "finfo", "iinfo", "result_type", "promote_types", "issubdtype",
                   "can_cast", "float16", "float32", "float64", "int8", "int16", "int32", "int64",
                   "uint8", "bool_", "intp"}

# (file, function, rule) -> why it is fine
ALLOWED = {
    ("autograd.py", "_check_finite", "backend.all_finite"):
        "anomaly mode is opt-in and documented as one host sync per op",
    ("optim/optimizer.py", "Optimizer._convert_state", ".item()"):
        "load_state_dict reads a checkpoint's step count once, at load time, not per step",
    ("nn/functional.py", "cross_entropy", "truth value of array data"):
        "the target range is checked only for host (numpy) targets, where it costs no device sync; "
        "device targets get NaN losses instead",
}


def _scanned_files():
    files = sorted((PACKAGE / "ops").glob("*.py")) + sorted((PACKAGE / "nn").glob("functional*.py"))
    files += sorted((PACKAGE / "optim").glob("*.py")) + [PACKAGE / "autograd.py"]
    return [f for f in files if f.exists()]


def _relative(path):
    return path.relative_to(PACKAGE).as_posix()


def _parse(path):
    return ast.parse(path.read_text(), filename=str(path))


class _Scanner(ast.NodeVisitor):
    """Collects ``(line, function, rule, source)`` for each host round trip in one module."""

    def __init__(self, source):
        self.lines = source.splitlines()
        self.scope = []  # enclosing class/function names
        self.array_names = [set()]  # names that hold raw arrays or gradient Tensors
        self.found = []

    # -- bookkeeping ---------------------------------------------------------------------
    def _qualname(self):
        return ".".join(self.scope) or "<module>"

    def _report(self, node, rule):
        self.found.append((node.lineno, self._qualname(), rule, self.lines[node.lineno - 1].strip()))

    def visit_ClassDef(self, node):
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_FunctionDef(self, node):
        params = [a.arg for a in node.args.posonlyargs + node.args.args]
        if node.args.vararg:
            params.append(node.args.vararg.arg)
        names = set()
        if node.name == "forward" and params[:2] == ["self", "xp"]:
            names = set(params[2:])  # raw arrays
        elif node.name == "backward" and params[:1] == ["self"]:
            names = set(params[1:])  # gradient Tensors
        self.scope.append(node.name)
        self.array_names.append(names)
        self.generic_visit(node)
        self.array_names.pop()
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    # -- what counts as array data -------------------------------------------------------
    def _touches_array(self, expr, names_count=True):
        parents = {}
        for parent in ast.walk(expr):
            for child in ast.iter_child_nodes(parent):
                parents[child] = parent

        def metadata_only(node):  # x.shape, t.data.size, x.data.shape[0]: no element is read
            parent = parents.get(node)
            while isinstance(parent, ast.Attribute):
                if parent.attr in METADATA:
                    return True
                parent = parents.get(parent)
            return False

        for node in ast.walk(expr):
            if isinstance(node, ast.Attribute) and node.attr == "data" and not metadata_only(node):
                return True
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                func = node.func
                if isinstance(func.value, ast.Name) and func.value.id == "xp" \
                        and func.attr not in XP_HOST_HELPERS:
                    return True
                if func.attr in REDUCING_METHODS and not (isinstance(func.value, ast.Name)
                                                         and func.value.id in ("builtins", "math")):
                    return True
            if names_count and isinstance(node, ast.Name) and node.id in self.array_names[-1] \
                    and not metadata_only(node):
                return True
        return False

    # -- rules -----------------------------------------------------------------------------
    def visit_Call(self, node):
        func = node.func
        if isinstance(func, ast.Attribute):
            if func.attr in HOST_METHODS and not node.args:
                self._report(node, f".{func.attr}()")
            elif func.attr == "get" and not node.args:
                self._report(node, ".get()")
            elif func.attr in SYNC_HELPERS and isinstance(func.value, ast.Name) \
                    and func.value.id == "backend":
                self._report(node, f"backend.{func.attr}")
        elif isinstance(func, ast.Name):
            if func.id in CONVERSIONS and node.args and self._touches_array(node.args[0]):
                self._report(node, f"{func.id}()")
            elif func.id in SYNC_HELPERS:
                self._report(node, func.id)
        self.generic_visit(node)

    def visit_Attribute(self, node):
        if isinstance(node.value, ast.Name) and node.value.id in HOST_NAMES:
            self._report(node, f"{node.value.id}.")
        self.generic_visit(node)

    def _truth_test(self, node, test):
        if isinstance(test, ast.Compare) and all(isinstance(op, (ast.Is, ast.IsNot)) for op in test.ops):
            return  # identity, never an element read
        if isinstance(test, ast.BoolOp):
            return  # each operand is tested by visit_BoolOp
        if isinstance(test, ast.Call) and isinstance(test.func, ast.Name) \
                and test.func.id in CONVERSIONS | {"len", "isinstance", "hasattr", "callable"}:
            return  # a Python value already (conversions are reported by visit_Call)
        if self._touches_array(test, names_count=False):
            self._report(node, "truth value of array data")

    def visit_If(self, node):
        self._truth_test(node, node.test)
        self.generic_visit(node)

    visit_While = visit_If
    visit_IfExp = visit_If

    def visit_Assert(self, node):
        self._truth_test(node, node.test)
        self.generic_visit(node)

    def visit_BoolOp(self, node):
        for value in node.values:
            self._truth_test(node, value)
        self.generic_visit(node)

    def visit_UnaryOp(self, node):
        if isinstance(node.op, ast.Not):
            self._truth_test(node, node.operand)
        self.generic_visit(node)


def _host_round_trips():
    """{(file, function, rule): [(line, source), ...]} over every scanned file."""
    found = {}
    for path in _scanned_files():
        scanner = _Scanner(path.read_text())
        scanner.visit(_parse(path))
        for line, function, rule, source in scanner.found:
            found.setdefault((_relative(path), function, rule), []).append((line, source))
    return found


def _format(violations):
    return "\n".join(f"  tinygrad_nd/{file}:{line} in {function}: {rule}: {source}"
                     for (file, function, rule), hits in sorted(violations.items())
                     for line, source in hits)


# ----------------------------------------------------------------------------- tests
def test_only_backend_imports_numpy_or_cupy():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "backend.py":
            continue
        for node in ast.walk(_parse(path)):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)) \
                    and getattr(node.func, "id", getattr(node.func, "attr", None)) in \
                    ("import_module", "__import__") and node.args \
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
            for name in names:
                if name.split(".")[0] in ARRAY_LIBRARIES:
                    offenders.append(f"tinygrad_nd/{_relative(path)}:{node.lineno} imports {name}")
    assert not offenders, ("only tinygrad_nd/backend.py may import numpy or cupy; move the call "
                           "behind a backend helper:\n" + "\n".join(offenders))


def test_ops_make_no_host_round_trips():
    found = _host_round_trips()
    unexpected = {key: hits for key, hits in found.items()
                  if key not in ALLOWED}
    assert not unexpected, (
        "host round trips in ops (each is a device sync or a numpy-only call on a GPU): use xp "
        "and backend helpers, or add the line to ALLOWED with the reason:\n" + _format(unexpected))


def test_allowlist_entries_still_match_something():
    found = _host_round_trips()
    stale = sorted(key for key in ALLOWED if key not in found)
    assert not stale, f"ALLOWED entries that match nothing any more (remove them): {stale}"


# ----------------------------------------------------------------------------- the guard itself
BAD_OP = '''
class Bad(Function):
    def forward(self, xp, x, y):
        scale = float(x.max())          # float() of a reduction
        if (x > 0).any():               # truth value of array data
            x = x * 2
        n = int(y)                      # int() of a raw array parameter
        return x * scale + np.ones(3)   # np. reference

    def backward(self, gy):
        host = gy.numpy()               # .numpy()
        total = gy.data.sum().item()    # .item()
        size = int(gy.data.size)        # fine: metadata
        return backend.to_host(gy.data) # backend.to_host

def wrapper(t):
    if t.data.shape[0] > 1 and bool(t.data.all()):   # bool() of array data
        return t.data.get()                           # .get()
    return t
'''


def test_the_scanner_catches_each_kind_of_round_trip():
    scanner = _Scanner(BAD_OP)
    scanner.visit(ast.parse(BAD_OP))
    rules = sorted({(function, rule) for _, function, rule, _ in scanner.found})
    assert rules == sorted({
        ("Bad.forward", "float()"), ("Bad.forward", "truth value of array data"),
        ("Bad.forward", "int()"), ("Bad.forward", "np."), ("Bad.backward", ".numpy()"),
        ("Bad.backward", ".item()"), ("Bad.backward", "backend.to_host"),
        ("wrapper", "bool()"), ("wrapper", ".get()"),
    }), rules
    metadata_line = BAD_OP.splitlines().index(
        "        size = int(gy.data.size)        # fine: metadata") + 1
    assert metadata_line not in {line for line, _, _, _ in scanner.found}
