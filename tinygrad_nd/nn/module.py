"""``Module`` and ``Parameter``: the bookkeeping under every layer (PyTorch's ``nn.Module``).

A Module registers what is assigned to it, in definition order: a ``Parameter`` goes to
``_parameters``, a sub-Module to ``_modules``, and a Tensor passed to ``register_buffer`` to
``_buffers``. Everything else (dotted names, ``state_dict``, ``to``, ``train``/``eval``, the
nested ``repr``) walks these three ordered dicts.
"""
from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping

from .. import autograd, backend
from ..autograd import no_grad
from ..ops import shape as S
from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable; ``requires_grad`` is True by default.

    ``Parameter(t)`` shares ``t``'s array. Ops on a Parameter return plain Tensors.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> w = nn.Parameter(tnd.zeros(2, 3))
    >>> isinstance(w, tnd.Tensor), w.requires_grad, w.shape
    (True, True, (2, 3))
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = backend.filled((0,), 0, backend.float32)
        Tensor.__init__(self, data.data if isinstance(data, Tensor) else data)
        self.requires_grad_(requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + Tensor.__repr__(self)


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns: the keys the state lacked and those the model lacked."""

    __slots__ = ()

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()


def _check_name(kind: str, name) -> None:
    if not isinstance(name, str):
        raise TypeError(f"{kind} name must be a string, got {type(name).__name__}")
    if name == "" or "." in name:
        raise KeyError(f"{kind} name {name!r} must be non-empty and contain no '.'")


def _indent(text: str, spaces: int) -> str:
    lines = text.split("\n")
    return "\n".join([lines[0]] + [" " * spaces + line for line in lines[1:]])


class Module:
    """Base class of layers and models; subclass it, assign layers and Parameters in
    ``__init__`` and write ``forward``.

    Calling the module runs ``forward`` inside ``autograd.module_scope(self)``, so graph
    diagrams can group the recorded ops by module.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.hidden = nn.Linear(4, 8)
    ...         self.out = nn.Linear(8, 2)
    ...     def forward(self, x):
    ...         return self.out(self.hidden(x).relu())
    >>> net = Net()
    >>> [name for name, _ in net.named_parameters()]
    ['hidden.weight', 'hidden.bias', 'out.weight', 'out.bias']
    >>> net(tnd.ones(3, 4)).shape
    (3, 2)
    >>> net
    Net(
      (hidden): Linear(in_features=4, out_features=8, bias=True)
      (out): Linear(in_features=8, out_features=2, bias=True)
    )
    """

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", {})

    # ------------------------------------------------------------------ forward
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward(): define "
                                  "forward(self, ...) in your Module subclass")

    def __call__(self, *args, **kwargs):
        with autograd.module_scope(self):
            return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ registration
    def _registry(self, what: str) -> dict:
        registry = self.__dict__.get(what)
        if registry is None:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() in __init__ "
                                 "before assigning parameters, buffers or sub-modules")
        return registry

    def _forget(self, name: str, keep: str) -> None:
        """Remove ``name`` from the instance dict and the registries other than ``keep``, before
        registering it in ``keep`` (where a re-assigned name keeps its place, as PyTorch)."""
        self.__dict__.pop(name, None)
        for what in ("_parameters", "_buffers", "_modules"):
            if what != keep:
                self.__dict__[what].pop(name, None)
        if keep != "_buffers":
            self._non_persistent.discard(name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (a Parameter or None) as ``self.<name>``."""
        params = self._registry("_parameters")
        _check_name("parameter", name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot register a {type(param).__name__} as parameter {name!r}: "
                            "wrap it in nn.Parameter (or register it as a buffer)")
        if name not in params and hasattr(self, name):
            raise KeyError(f"attribute {name!r} already exists on {type(self).__name__}")
        self._forget(name, "_parameters")
        params[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register a Tensor that is state but not trained (BatchNorm's running statistics).

        Persistent buffers appear in ``state_dict``; ``to()`` moves every buffer.
        """
        buffers = self._registry("_buffers")
        _check_name("buffer", name)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot register a {type(tensor).__name__} as buffer {name!r}: "
                            "expected a Tensor or None")
        if name not in buffers and hasattr(self, name):
            raise KeyError(f"attribute {name!r} already exists on {type(self).__name__}")
        self._forget(name, "_buffers")
        buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` as the child ``self.<name>``."""
        modules = self._registry("_modules")
        _check_name("module", name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        if name not in modules and hasattr(self, name):
            raise KeyError(f"attribute {name!r} already exists on {type(self).__name__}")
        self._forget(name, "_modules")
        modules[name] = module

    register_module = add_module

    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            self._registry("_parameters")
            self._forget(name, "_parameters")
            params[name] = value
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign a {type(value).__name__} to parameter {name!r} "
                                f"of {type(self).__name__}: expected nn.Parameter or None")
            params[name] = None
        elif isinstance(value, Module):
            self._registry("_modules")
            self._forget(name, "_modules")
            self._modules[name] = value
        elif name in self.__dict__.get("_modules", ()):
            if value is not None:
                raise TypeError(f"cannot assign a {type(value).__name__} to child module {name!r} "
                                f"of {type(self).__name__}: expected a Module or None")
            self._modules[name] = None
        elif name in self.__dict__.get("_buffers", ()):
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign a {type(value).__name__} to buffer {name!r} of "
                                f"{type(self).__name__}: expected a Tensor or None")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # only called when normal lookup fails: look in the registries
        for what in ("_parameters", "_buffers", "_modules"):
            registry = self.__dict__.get(what)
            if registry is not None and name in registry:
                return registry[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for what in ("_parameters", "_buffers", "_modules"):
            registry = self.__dict__.get(what)
            if registry is not None and name in registry:
                del registry[name]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    # ------------------------------------------------------------------ traversal
    def named_children(self):
        """Yield ``(name, module)`` for each direct child, in definition order."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self):
        """Yield each direct child module."""
        for _, module in self.named_children():
            yield module

    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        """Yield ``(dotted_name, module)`` for this module (name ``prefix``) and all descendants,
        parents before children; a module reached twice is yielded once."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                yield from module.named_modules(memo, f"{prefix}.{name}" if prefix else name,
                                                remove_duplicate)

    def modules(self):
        """Yield this module and all its descendants."""
        for _, module in self.named_modules():
            yield module

    def _named_members(self, what: str, prefix: str, recurse: bool, remove_duplicate: bool):
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        seen = set()
        for module_prefix, module in modules:
            for name, member in module.__dict__[what].items():
                if member is None or (remove_duplicate and id(member) in seen):
                    continue
                seen.add(id(member))
                yield (f"{module_prefix}.{name}" if module_prefix else name), member

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """Yield ``(dotted_name, Parameter)`` in definition order (``"features.0.weight"``);
        a parameter shared by two modules is yielded once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True):
        """Yield every Parameter once, in definition order (what an optimizer takes)."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """Yield ``(dotted_name, Tensor)`` for every buffer."""
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True):
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def apply(self, fn):
        """Call ``fn(module)`` on every child (recursively), then on self; return self.

        Examples
        --------
        >>> from tinygrad_nd import nn
        >>> def init(m):
        ...     if isinstance(m, nn.Linear):
        ...         nn.init.zeros_(m.bias)
        >>> net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1)).apply(init)
        >>> net[1].bias.tolist()
        [0.0]
        """
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ modes and gradients
    def train(self, mode: bool = True) -> Module:
        """Set training mode (Dropout drops, BatchNorm uses batch statistics) here and below."""
        if not isinstance(mode, bool):
            raise TypeError(f"train(mode): mode must be a bool, got {type(mode).__name__}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        """Set evaluation mode: the same as ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Set ``requires_grad`` of every parameter (False freezes them)."""
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of all parameters: set them to None (the default, as PyTorch 2)
        or, with ``set_to_none=False``, to zeros."""
        for param in self.parameters():
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                with backend.device_scope(param.grad.data):
                    xp = backend.array_module(param.grad.data)
                    param.grad = Tensor._make(xp.zeros_like(param.grad.data), None)

    # ------------------------------------------------------------------ state
    def state_dict(self, destination=None, prefix: str = "", keep_vars: bool = False) -> dict:
        """Parameters and persistent buffers by dotted name, in definition order.

        Each value is a detached copy (a snapshot that later training does not change); with
        ``keep_vars=True`` the live Parameters and buffers themselves.

        Examples
        --------
        >>> from tinygrad_nd import nn
        >>> list(nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)).state_dict())
        ['0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean', '1.running_var', '1.num_batches_tracked']
        """
        out = {} if destination is None else destination
        for name, param in self._parameters.items():
            if param is not None:
                out[prefix + name] = param if keep_vars else _snapshot(param)
        for name, buffer in self._buffers.items():
            if buffer is not None and name not in self._non_persistent:
                out[prefix + name] = buffer if keep_vars else _snapshot(buffer)
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(out, f"{prefix}{name}.", keep_vars)
        return out

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy parameters and buffers from ``state_dict`` (as made by ``state_dict()``).

        Every key, shape and dtype is checked before anything is assigned: on any error the
        model is left untouched and one RuntimeError lists every problem. Values move to the
        device of the tensor they replace.

        Parameters
        ----------
        state_dict : mapping of str to Tensor (or numpy/cupy array)
        strict : bool
            When True, keys the state lacks (missing) or the model lacks (unexpected) are
            errors; when False they are only reported in the result.

        Returns
        -------
        namedtuple ``(missing_keys, unexpected_keys)``

        Raises
        ------
        RuntimeError
            A shape or dtype mismatch, a value that is not a tensor, or (strict) missing or
            unexpected keys.

        Examples
        --------
        >>> from tinygrad_nd import nn
        >>> a, b = nn.Linear(2, 3), nn.Linear(2, 3)
        >>> b.load_state_dict(a.state_dict())
        <All keys matched successfully>
        >>> b.load_state_dict({"weight": a.weight}, strict=False)
        _IncompatibleKeys(missing_keys=['bias'], unexpected_keys=[])
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict: expected a mapping of names to tensors, got "
                            f"{type(state_dict).__name__}")
        targets = self.state_dict(keep_vars=True)
        missing = [key for key in targets if key not in state_dict]
        unexpected = [key for key in state_dict if key not in targets]
        errors, updates = [], []
        if strict and unexpected:
            errors.append("Unexpected key(s) in state_dict: " + ", ".join(map(repr, unexpected)))
        if strict and missing:
            errors.append("Missing key(s) in state_dict: " + ", ".join(map(repr, missing)))
        for key, target in targets.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            array = value.data if isinstance(value, Tensor) else value
            try:
                backend.array_module(array)
            except TypeError:
                errors.append(f"value for {key!r} is a {type(value).__name__}, expected a Tensor")
                continue
            if tuple(array.shape) != target.shape:
                errors.append(f"size mismatch for {key!r}: the state has shape "
                              f"{tuple(array.shape)}, the model has shape {target.shape}")
            elif array.dtype != target.dtype:
                errors.append(f"dtype mismatch for {key!r}: the state has {array.dtype}, the "
                              f"model has {target.dtype}")
            else:
                updates.append((target, array))
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__} "
                               "(nothing was loaded):\n\t" + "\n\t".join(errors))
        moved = [(target, _copy(backend.to_device(array, target.device))) for target, array in updates]
        for target, array in moved:  # all conversions done: now nothing can fail half-way
            target.data = array
        return _IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ devices and dtypes
    def _apply_to_arrays(self, convert) -> Module:
        """Replace the array of every parameter, gradient and buffer by ``convert(array)``,
        keeping the Tensor objects (optimizers keep working); all-or-nothing."""
        tensors = {}
        for module in self.modules():
            for t in list(module._parameters.values()) + list(module._buffers.values()):
                if t is not None:
                    tensors[id(t)] = t
                    if t.grad is not None:
                        tensors[id(t.grad)] = t.grad
        new = [(t, convert(t.data)) for t in tensors.values()]
        for t, array in new:
            t.data = array
        return self

    def to(self, device=None, dtype=None) -> Module:
        """Move parameters and buffers to ``device`` and/or cast the floating point ones to
        ``dtype`` (integer buffers such as ``num_batches_tracked`` keep their dtype), in place;
        returns self. ``to(tnd.float64)`` works as in PyTorch.

        Examples
        --------
        >>> import tinygrad_nd as tnd
        >>> from tinygrad_nd import nn
        >>> nn.Linear(2, 3).to(dtype=tnd.float64).weight.dtype
        dtype('float64')
        """
        if device is not None and not isinstance(device, str):  # to(dtype) positionally
            device, dtype = None, device
        elif isinstance(device, str) and device.lower() in ("float32", "float64"):
            device, dtype = None, device
        device = None if device is None else backend.parse_device(device)
        if dtype is not None:
            dtype = backend.as_dtype(dtype)
            if not backend.is_float_dtype(dtype):
                raise TypeError(f"{type(self).__name__}.to: dtype must be floating point, got {dtype}")

        def convert(array):
            cast = dtype if dtype is not None and backend.is_float_dtype(array.dtype) else None
            with no_grad():
                return S.to(Tensor._make(array, None), device=device, dtype=cast).data

        return self._apply_to_arrays(convert)

    def float(self) -> Module:
        """Cast floating point parameters and buffers to float32."""
        return self.to(dtype=backend.float32)

    def double(self) -> Module:
        """Cast floating point parameters and buffers to float64."""
        return self.to(dtype=backend.float64)

    def cuda(self, device=None) -> Module:
        """Move to ``cuda`` (or ``cuda:N`` for an int ``device``)."""
        return self.to("cuda" if device is None else (f"cuda:{device}" if isinstance(device, int) else device))

    def cpu(self) -> Module:
        return self.to("cpu")

    # ------------------------------------------------------------------ repr
    def extra_repr(self) -> str:
        """The text inside the parentheses of this module's repr (layers override it)."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): {_indent(repr(module), 2)}"
                       for name, module in self._modules.items()]
        lines = extra_lines + child_lines
        body = ""
        if len(extra_lines) == 1 and not child_lines:
            body = extra_lines[0]
        elif lines:
            body = "\n  " + "\n  ".join(lines) + "\n"
        return f"{type(self).__name__}({body})"

    def __dir__(self):
        names = set(super().__dir__())
        for what in ("_parameters", "_buffers", "_modules"):
            names.update(self.__dict__.get(what, ()))
        return sorted(names)


def _copy(array):
    """A copy of ``array`` on its own device (CuPy copies onto the *current* device)."""
    with backend.device_scope(array):
        return array.copy()


def _snapshot(t: Tensor) -> Tensor:
    """A detached copy of ``t`` on its device."""
    return Tensor._make(_copy(t.data), None)
