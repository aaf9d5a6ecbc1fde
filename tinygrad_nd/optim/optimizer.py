"""``Optimizer``: parameter groups, ``zero_grad``, ``step`` and a validated ``state_dict`` round trip.

Subclasses declare their hyperparameters (``defaults``), check them in ``_check_group``, name the
per-parameter state they keep (``_buffer_names``: arrays shaped like the parameter, plus the
``step`` count) and write ``_update(p, grad, group, state)`` on raw arrays. Updates run under
``no_grad`` and change ``p.data`` in place, so the Parameters the model holds stay the same
objects.

``state_dict()`` uses PyTorch's layout::

    {"state": {0: {"step": 3, "exp_avg": Tensor, ...}, ...},      # keyed by parameter index
     "param_groups": [{"lr": 0.01, ..., "params": [0, 1, ...]}, ...]}

where parameters are numbered in the order of the groups.
"""
from __future__ import annotations

from collections.abc import Mapping

from .. import backend
from ..autograd import enable_grad, no_grad
from ..tensor import Tensor


def check_number(optimizer: str, name: str, value, low=None, high=None, low_open=False,
                 high_open=False) -> None:
    """ValueError naming the optimizer and hyperparameter unless ``value`` is a real number in
    the given range (``low_open``/``high_open`` exclude that end)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"{optimizer}: {name} must be a number, got {value!r}") from None
    if value != value:
        raise ValueError(f"{optimizer}: invalid {name}: {value}")
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if below or above:
        lo = "" if low is None else ("> " if low_open else ">= ") + str(low)
        hi = "" if high is None else ("< " if high_open else "<= ") + str(high)
        raise ValueError(f"{optimizer}: invalid {name}: {value} (must be {' and '.join(filter(None, (lo, hi)))})")


class Optimizer:
    """Base class of the optimizers.

    Parameters
    ----------
    params : iterable of Tensor, or iterable of dict
        The tensors to optimise, or parameter groups: dicts with a ``"params"`` list and any
        hyperparameters that override the defaults for that group.
    defaults : dict
        Hyperparameters of the optimizer.

    Raises
    ------
    ValueError
        No parameters, a parameter in two groups, or an invalid hyperparameter.
    TypeError
        Something that is not a leaf Tensor among the parameters.
    """

    _buffer_names = ()  # per-parameter state arrays, shaped like the parameter

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.state = {}  # Parameter -> dict of its state
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors or of "
                            "dicts, got a single Tensor: wrap it in a list")
        if isinstance(params, (set, frozenset)):
            raise TypeError(f"{type(self).__name__}: params must be an ordered collection (a set "
                            "has no order, so state_dict indices would change between runs)")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: optimizer got an empty parameter list (did "
                             "the model register any Parameters, and was the generator from "
                             "model.parameters() already used up?)")
        if not isinstance(groups[0], Mapping):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own hyperparameters (missing ones take the
        optimizer's defaults)."""
        name = type(self).__name__
        if not isinstance(param_group, Mapping):
            raise TypeError(f"{name}: a parameter group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        if "params" not in group:
            raise ValueError(f"{name}: a parameter group needs a 'params' entry")
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: a group's params must be an ordered collection, not a set")
        params = list(params)
        seen = set()
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: can only optimise Tensors, but parameter {i} of group "
                                f"{len(self.param_groups)} is a {type(p).__name__}")
            if not p.is_leaf:
                raise TypeError(f"{name}: can't optimise a non-leaf Tensor (parameter {i}, shape "
                                f"{p.shape}): optimise the leaf it was computed from")
            if id(p) in seen:
                raise ValueError(f"{name}: parameter {i} (shape {p.shape}) appears twice in one group")
            seen.add(id(p))
        for other in self.param_groups:
            if any(id(p) in seen for p in other["params"]):
                raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_group(group)
        group["params"] = params
        self.param_groups.append(group)

    def _check_group(self, group: dict) -> None:
        """Raise ValueError for invalid hyperparameters (subclasses override)."""

    # ------------------------------------------------------------------ training
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient: None by default, zeros with ``set_to_none=False``."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad = Tensor._make(zeros_like(p.grad.data), None)

    def step(self, closure=None):
        """Update every parameter that has a gradient; parameters without one are skipped.

        ``closure``, if given, re-evaluates the model (zero_grad, forward, backward) and returns
        the loss, which ``step`` returns.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    grad = p.grad.data
                    if grad.shape != p.data.shape:
                        raise RuntimeError(f"{type(self).__name__}: the gradient of a parameter of "
                                           f"shape {p.shape} has shape {tuple(grad.shape)}")
                    with backend.device_scope(p.data):  # CuPy works on the current device
                        self._update(p, grad, group, self.state.setdefault(p, {}))
        return loss

    def _update(self, p: Tensor, grad, group: dict, state: dict) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ state
    def _indexed_params(self):
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict:
        """The optimizer's state in PyTorch's layout (see the module docstring); tensors are
        detached copies, so the result is a snapshot."""
        index = {id(p): i for i, p in enumerate(self._indexed_params())}
        groups, start = [], 0
        for group in self.param_groups:
            packed = {key: value for key, value in group.items() if key != "params"}
            packed["params"] = list(range(start, start + len(group["params"])))
            start += len(group["params"])
            groups.append(packed)
        state = {}
        for p, entry in self.state.items():
            if entry:
                state[index[id(p)]] = {key: _copy(value) if isinstance(value, Tensor) else value
                                       for key, value in entry.items()}
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict) -> None:
        """Restore a state from ``state_dict()``: hyperparameters of each group and the state of
        each parameter (moved to the parameter's device, copied).

        Everything is validated first: the group count and sizes, the hyperparameter names and
        values, the parameter indices, the state names, shapes and dtypes. On any error a
        ValueError lists the problems and the optimizer is left unchanged.
        """
        name = type(self).__name__
        errors = []
        if not isinstance(state_dict, Mapping) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(f"{name}.load_state_dict: expected a dict with exactly the keys "
                             f"'state' and 'param_groups', got "
                             f"{sorted(state_dict) if isinstance(state_dict, Mapping) else type(state_dict).__name__}")
        saved_groups = state_dict["param_groups"]
        if not isinstance(saved_groups, (list, tuple)) or len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state has "
                             f"{len(saved_groups) if isinstance(saved_groups, (list, tuple)) else 'no list of'} "
                             f"parameter groups, this optimizer has {len(self.param_groups)}")
        by_index = {}
        new_groups = []
        for g, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if not isinstance(saved, Mapping) or "params" not in saved:
                errors.append(f"param_groups[{g}] is not a dict with a 'params' list")
                continue
            indices = list(saved["params"])
            if len(indices) != len(group["params"]):
                errors.append(f"param_groups[{g}] holds {len(indices)} parameters, this "
                              f"optimizer's group {g} holds {len(group['params'])}")
                continue
            for i, p in zip(indices, group["params"]):
                by_index[_as_index(i)] = p
            expected = set(group) - {"params", "initial_lr"}
            given = set(saved) - {"params", "initial_lr"}
            if expected - given:
                errors.append(f"param_groups[{g}] lacks {sorted(expected - given)}")
            if given - expected:
                errors.append(f"param_groups[{g}] has unknown hyperparameters {sorted(given - expected)}")
            merged = dict(group)
            merged.update({key: value for key, value in saved.items() if key != "params"})
            if isinstance(merged.get("betas"), list):
                merged["betas"] = tuple(merged["betas"])
            try:
                self._check_group(merged)
            except (TypeError, ValueError) as exc:
                errors.append(f"param_groups[{g}]: {exc}")
            new_groups.append(merged)
        new_state = {}
        saved_state = state_dict["state"]
        if not isinstance(saved_state, Mapping):
            errors.append(f"'state' must be a dict, got {type(saved_state).__name__}")
            saved_state = {}
        for key, entry in saved_state.items():
            p = by_index.get(_as_index(key))
            if p is None:
                errors.append(f"state[{key!r}] is for a parameter index no group lists")
                continue
            if not isinstance(entry, Mapping):
                errors.append(f"state[{key!r}] must be a dict, got {type(entry).__name__}")
                continue
            converted = {}
            for field, value in entry.items():
                problem, converted[field] = self._convert_state(field, value, p)
                if problem:
                    errors.append(f"state[{key!r}][{field!r}]: {problem}")
            new_state[p] = converted
        if errors:
            raise ValueError(f"{name}.load_state_dict: the state does not fit this optimizer "
                             "(nothing was loaded):\n\t" + "\n\t".join(errors))
        for group, merged in zip(self.param_groups, new_groups):
            group.update({key: value for key, value in merged.items() if key != "params"})
        self.state = new_state

    def _convert_state(self, field: str, value, p: Tensor):
        """``(problem or None, value to store)`` for one saved state entry of parameter ``p``."""
        if field == "step":
            if isinstance(value, Tensor):
                value = value.item() if value.numel() == 1 else value
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 \
                    or value != int(value):
                return f"must be a non-negative whole number, got {value!r}", None
            return None, int(value)
        if field not in self._buffer_names:
            return f"unknown state for {type(self).__name__} (expected step or one of " \
                   f"{', '.join(self._buffer_names)})", None
        array = value.data if isinstance(value, Tensor) else value
        try:
            backend.array_module(array)
        except TypeError:
            return f"must be a Tensor, got {type(value).__name__}", None
        if tuple(array.shape) != p.shape:
            return f"has shape {tuple(array.shape)}, the parameter has shape {p.shape}", None
        if array.dtype != p.dtype:
            return f"has dtype {array.dtype}, the parameter has dtype {p.dtype}", None
        return None, _copy(Tensor._make(backend.to_device(array, p.device), None))

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def _as_index(key):
    """Parameter indices may come back from a checkpoint as strings ("0"): accept both."""
    if isinstance(key, str) and key.isdigit():
        return int(key)
    return key


def zeros_like(array):
    """Fresh zeros shaped, typed and placed like ``array``."""
    with backend.device_scope(array):
        return backend.array_module(array).zeros_like(array)


def _copy(t: Tensor) -> Tensor:
    """A detached copy of ``t`` on its own device (CuPy copies onto the current device)."""
    with backend.device_scope(t.data):
        return Tensor._make(t.data.copy(), None)
