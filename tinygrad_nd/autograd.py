"""The tape: ``Function`` nodes, grad mode, the reverse traversal, ``grad()`` and anomaly mode.

A ``Function`` subclass is one primitive. ``Cls.apply(*tensors, **params)`` runs its forward on
raw arrays and, when grad mode is on and some input requires grad, records the node as the
result's ``grad_fn``. A node holds its input Tensors and the raw arrays it saved, never its
output Tensor, so a graph is a tree of strong references from the root down and is freed by
reference counting alone.

The traversal is iterative (a heap of nodes ordered by creation, newest first), so a
chain of any length works without touching Python's recursion limit.
"""
from __future__ import annotations

import contextlib
import os
import traceback
from heapq import heappop, heappush

from . import backend
from .tensor import Tensor

_grad_enabled = True
_anomaly_enabled = False


# ----------------------------------------------------------------------------- grad mode
def is_grad_enabled() -> bool:
    return _grad_enabled


class _GradMode(contextlib.ContextDecorator):
    """Sets grad mode inside a ``with`` block or a decorated function, then restores it."""

    mode = True

    def __enter__(self):
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = self.mode

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False


class no_grad(_GradMode):
    """Context manager and decorator: ops inside record nothing."""

    mode = False


class enable_grad(_GradMode):
    """Context manager and decorator: turn recording back on (e.g. inside ``no_grad``)."""

    mode = True


class set_grad_enabled(_GradMode):
    def __init__(self, mode: bool):
        self.mode = bool(mode)


class detect_anomaly(contextlib.ContextDecorator):
    """Inside it, a NaN or Inf made by any op's forward or backward raises ``RuntimeError``
    naming the op and the line of user code that created it. Costs a host sync per op."""

    def __enter__(self):
        global _anomaly_enabled
        self._prev = _anomaly_enabled
        _anomaly_enabled = True

    def __exit__(self, *exc):
        global _anomaly_enabled
        _anomaly_enabled = self._prev
        return False


_module_scope = ()  # modules whose forward is running, outermost first (for graph diagrams)


@contextlib.contextmanager
def module_scope(module):
    """Record ``module`` on every node created inside (``Module.__call__`` enters it), so that
    graph diagrams can group ops by the module that ran them (``node.scope``)."""
    global _module_scope
    outer = _module_scope
    _module_scope = outer + (module,)
    try:
        yield
    finally:
        _module_scope = outer


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _user_frame() -> str:
    """``file:line in func`` plus the source line of the innermost frame outside this package."""
    for frame in reversed(traceback.extract_stack()):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR):
            return f"{frame.filename}:{frame.lineno} in {frame.name}\n    {frame.line}"
    return "<unknown>"


# ----------------------------------------------------------------------------- Function
class Function:
    """Base class of every primitive: ``forward`` on raw arrays, ``backward`` with Tensor ops.

    Subclasses set ``uses_output = True`` when ``backward`` needs the forward result, and read
    it back with ``self.output()``.
    """

    # the fields every recorded node has, as slots (compact nodes, fast stores in _run); the
    # static parameters and what forward saves go to the instance dict
    __slots__ = ("inputs", "needs_grad", "_seq", "scope", "_output", "__dict__")

    name = "function"  # set by @register
    uses_output = False
    _plain_init = True  # no __init__ of its own: apply() skips calling it (set per subclass)
    params = {}  # static parameters (shown in graph diagrams); also set as attributes
    saved = ()
    _hooks = ()  # a list once a hook is registered on the output
    _retain = None  # weak reference to the output Tensor that called retain_grad()
    _observed = False  # True once either is set: the traversal checks this one flag

    def __init__(self, **params):
        if params:
            self._set_params(params)

    def _set_params(self, params: dict):
        """``params`` (a dict, not copied) become ``self.params`` and attributes; subclasses
        that check their parameters first call it with the checked ones."""
        self.params = params
        self.__dict__.update(params)

    # subclass API ------------------------------------------------------------
    def forward(self, xp, *arrays):
        raise NotImplementedError(f"{type(self).__name__} must define forward")

    def backward(self, *grad_outputs):
        raise NotImplementedError(f"{type(self).__name__} must define backward")

    def save_for_backward(self, *arrays):
        self.saved = arrays

    def output(self) -> Tensor:
        """The forward result as a Tensor whose ``grad_fn`` is this node (no reference cycle)."""
        return Tensor._make(self._output, self)

    def add_hook(self, hook):
        """Register ``hook(grad) -> grad or None`` on this node's output gradient."""
        if not self._hooks:
            self._hooks = []
        self._hooks.append(hook)
        self._observed = True

    # engine ------------------------------------------------------------------
    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._plain_init = cls.__init__ is Function.__init__

    @classmethod
    def apply(cls, *inputs: Tensor, **params) -> Tensor:
        """Run the primitive on ``inputs`` and return its result, recording the node if needed."""
        if params or not cls._plain_init:
            return cls(**params)._run(inputs)
        return object.__new__(cls)._run(inputs)  # no parameters: nothing for __init__ to do

    @classmethod
    def apply_checked(cls, params: dict, *inputs: Tensor) -> Tensor:
        """``apply`` with ``params`` already checked and frozen by this op's family: a wrapper's
        cached argument check, or, in a backward rule, the node's own checked parameters.
        Skips ``__init__``; ``params`` becomes the node's, shared and never modified."""
        fn = object.__new__(cls)
        fn.params = params
        if params:
            fn.__dict__.update(params)
        return fn._run(inputs)

    @classmethod
    def apply_with_node(cls, *inputs: Tensor, **params):
        """``apply`` that also returns the Function object, for wrappers that read what its
        forward computed besides the result (the indices of a max along a dim, say)."""
        fn = cls(**params)
        return fn._run(inputs), fn

    def _run(self, inputs):
        # Hot path (every op of every step, counted in bytecodes): one to three inputs are
        # unpacked by hand, saving a list per call; the common case, host arrays only, is
        # checked inline; needs_grad is None unless grad mode is on and some input needs grad.
        global _sequence
        n = len(inputs)
        if n == 2:
            a, b = inputs
            x, w = a.data, b.data
            if type(x) is _HOST_ARRAY and type(w) is _HOST_ARRAY:
                y = self.forward(_HOST_MODULE, x, w)
            else:
                y = self._forward_on_device(inputs)
            needs_grad = (a.requires_grad, b.requires_grad) \
                if _grad_enabled and (a.requires_grad or b.requires_grad) else None
        elif n == 1:
            a = inputs[0]
            x = a.data
            y = self.forward(_HOST_MODULE, x) if type(x) is _HOST_ARRAY else \
                self._forward_on_device(inputs)
            needs_grad = _ONE_INPUT_NEEDS_GRAD if _grad_enabled and a.requires_grad else None
        elif n == 3:
            a, b, c = inputs
            x, w, z = a.data, b.data, c.data
            if type(x) is _HOST_ARRAY and type(w) is _HOST_ARRAY and type(z) is _HOST_ARRAY:
                y = self.forward(_HOST_MODULE, x, w, z)
            else:
                y = self._forward_on_device(inputs)
            needs_grad = (a.requires_grad, b.requires_grad, c.requires_grad) \
                if _grad_enabled and (a.requires_grad or b.requires_grad or c.requires_grad) \
                else None
        else:
            arrays = [t.data for t in inputs]
            if all(type(t) is _HOST_ARRAY for t in arrays):
                y = self.forward(_HOST_MODULE, *arrays)
            else:
                y = self._forward_on_device(inputs)
            needs_grad = tuple([t.requires_grad for t in inputs]) if _grad_enabled else None
            if needs_grad is not None and True not in needs_grad:
                needs_grad = None
        if type(y) is not _HOST_ARRAY:
            y = backend.ensure_array(y)  # numpy reductions return scalars
        out = object.__new__(Tensor)
        out.data = y
        out.grad = None
        out._hooks = None
        if needs_grad is None:  # nothing to record
            out.grad_fn = None
            out.requires_grad = False
        else:
            _sequence += 1
            self._seq = _sequence  # creation order: the traversal runs newest first
            self.inputs = inputs
            self.needs_grad = needs_grad
            self.scope = _module_scope
            if self.uses_output:
                self._output = y
            out.grad_fn = self
            out.requires_grad = True
        if _anomaly_enabled:
            _anomaly_check_forward(self, out)
        return out

    def _forward_on_device(self, inputs):
        """``forward`` on the inputs' arrays, whichever module owns them (all on one device),
        with kernels launched on that device rather than on device 0."""
        arrays = [t.data for t in inputs]
        xp = array_module_of(type(self).name, inputs)
        if xp is _HOST_MODULE:
            return self.forward(xp, *arrays)
        with backend.device_scope(next(a for a in arrays if type(a) is not _HOST_ARRAY)):
            return self.forward(xp, *arrays)

    def __repr__(self):
        return f"<{type(self).__name__}Backward>"


_sequence = 0  # nodes recorded so far (each node's _seq)
_running_backward_of = None  # in anomaly mode: the node whose backward rule is running


def _anomaly_check_forward(fn, out):
    fn.created_at = _user_frame()
    node = _running_backward_of
    if node is None:
        message = f"op '{fn.name}' produced NaN or Inf in its forward output, created at {fn.created_at}"
    else:
        message = (f"backward of op '{node.name}' produced NaN or Inf (in its '{fn.name}' step); "
                   f"the op was created at {getattr(node, 'created_at', '<unknown>')}")
    _check_finite(out.data, message)


_HOST_ARRAY = backend.host_array_type
_HOST_MODULE = backend.host_module
_ONE_INPUT_NEEDS_GRAD = (True,)


def array_module_of(op: str, inputs):
    """The array module of ``inputs`` (Tensors); RuntimeError naming ``op`` and each input's
    device when they are on different devices."""
    try:
        return backend.common_module([t.data for t in inputs])
    except ValueError:
        where = ", ".join(f"input {i} on {t.device}" for i, t in enumerate(inputs))
        raise RuntimeError(f"{op}: expected all tensors on one device, got {where}; "
                           "move them with .to(device)") from None


def _check_finite(array, message):
    if backend.is_float_dtype(array.dtype) and not backend.all_finite(array):
        raise RuntimeError(f"detect_anomaly: {message}")


def _freed_error(node):
    return RuntimeError(
        f"Trying to backward through the graph a second time: the saved values of op "
        f"'{node.name}' were freed by an earlier backward. Pass retain_graph=True to the "
        "first backward() if you need to go through the graph again.")


# ----------------------------------------------------------------------------- traversal
def _bad_gradient(node, inputs, t, gx):
    i = next(k for k, u in enumerate(inputs) if u is t)
    raise RuntimeError(f"backward of '{node.name}' returned a gradient of shape {gx.shape} for "
                       f"input {i} of shape {t.shape}")


def _checked_gradient(node, inputs, t, gx):
    """``gx`` for input ``t`` of ``node`` after the checks the traversal's fast test routes here:
    RuntimeError for a wrong shape; a gradient of another dtype is converted to its input's
    (mixed precision); in anomaly mode, RuntimeError for NaN or Inf."""
    gd, td = gx.data, t.data
    if gd.shape != td.shape:
        _bad_gradient(node, inputs, t, gx)
    if gd.dtype != td.dtype:
        gx = gx.to(dtype=td.dtype)
    if _anomaly_enabled:
        position = next(i for i, u in enumerate(inputs) if u is t)  # not index(): == is elementwise
        _check_finite(gx.data, f"backward of op '{node.name}' returned NaN or Inf for input "
                      f"{position}; the op was created at "
                      f"{getattr(node, 'created_at', '<unknown>')}")
    return gx


def _check_hook_result(result, grad, what):
    if result is None:
        return grad
    if not isinstance(result, Tensor):
        raise TypeError(f"hook on {what} must return a Tensor or None, got {type(result).__name__}")
    if result.shape != grad.shape:
        raise RuntimeError(f"hook on {what} returned a gradient of shape {result.shape}, "
                           f"expected {grad.shape}")
    return result


def run_backward(roots, root_grads, retain_graph, create_graph, capture=None):
    """Reverse-mode pass from ``roots`` seeded with ``root_grads``.

    Nodes run in decreasing creation order (``_seq``, as PyTorch's sequence numbers): a node's
    consumers were all created after it, so by the time it is popped from the heap every
    gradient of its output has been summed. Only nodes that receive a gradient are visited.

    Without ``capture``, leaf gradients accumulate into ``.grad``. With ``capture`` (a tuple of
    Tensors) nothing is accumulated and their gradients are returned, in order (None if unused).
    """
    global _grad_enabled
    pending = {}  # node -> summed gradient of its output
    heap = []  # (-node._seq, node) of the nodes in pending: the newest node first
    leaf_grads = {}  # leaf -> summed gradient, in first-reached order (Tensors hash by identity)
    for r, g in zip(roots, root_grads):
        node = r.grad_fn
        if node is None:
            leaf_grads[r] = leaf_grads[r] + g if r in leaf_grads else g
        elif node in pending:
            pending[node] = pending[node] + g
        else:
            pending[node] = g
            heappush(heap, (-node._seq, node))
    captured = {}
    capture_nodes = {t.grad_fn: True for t in capture if t.grad_fn is not None} \
        if capture is not None else {}

    outer, _grad_enabled = _grad_enabled, create_graph  # the rules record only with create_graph
    try:
        while heap:  # hot loop: one pass per node that receives a gradient
            node = heappop(heap)[1]
            inputs = node.inputs
            if inputs is None:
                raise _freed_error(node)
            gy = pending.pop(node)
            if node._observed or node in capture_nodes:
                gy = _output_gradient_seen(node, gy, create_graph, capture_nodes, captured)
            if type(gy.data) is _HOST_ARRAY and not _anomaly_enabled:
                grads = node.backward(gy)  # the common case
            else:
                with backend.device_scope(gy.data):  # raw xp work in rules: gy's device
                    grads = _call_backward(node, gy)
            if type(grads) is not tuple:
                grads = (grads,)
            if len(grads) != len(inputs):
                raise RuntimeError(f"backward of '{node.name}' returned {len(grads)} "
                                   f"gradients for {len(inputs)} inputs")
            for t, gx in zip(inputs, grads):
                if gx is None or not t.requires_grad:
                    continue
                gd, td = gx.data, t.data
                if gd.shape != td.shape or gd.dtype is not td.dtype or _anomaly_enabled:
                    gx = _checked_gradient(node, inputs, t, gx)  # raises, converts or checks
                child = t.grad_fn
                if child is None:  # a leaf
                    leaf_grads[t] = leaf_grads[t] + gx if t in leaf_grads else gx
                elif child in pending:
                    pending[child] = pending[child] + gx
                else:
                    pending[child] = gx
                    heappush(heap, (-child._seq, child))
            if not retain_graph:  # drop the inputs and saved arrays: the graph frees as it goes
                node.inputs = node.saved = node._output = None

        # leaves: hooks see the summed gradient, then it is accumulated or captured
        for leaf, g in leaf_grads.items():
            if leaf._hooks:
                for hook in leaf._hooks:
                    g = _check_hook_result(hook(g), g, "a leaf tensor")
            if capture is not None:
                captured[id(leaf)] = g
            elif leaf.grad is None:
                if create_graph:
                    leaf.grad = g
                else:  # a copy only of a read-only or broadcast view: .grad may be changed in place
                    data = g.data
                    if type(data) is _HOST_ARRAY and data.flags.writeable and not g.requires_grad:
                        leaf.grad = g  # a rule's result, recorded nowhere: no new Tensor needed
                    else:
                        leaf.grad = Tensor._make(backend.writable(data), None)
            else:
                with backend.device_scope(g.data):
                    leaf.grad = leaf.grad + g if create_graph else Tensor._make(leaf.grad.data + g.data, None)
    finally:
        _grad_enabled = outer

    if capture is None:
        return None
    return tuple(captured.get(t.grad_fn if t.grad_fn is not None else id(t)) for t in capture)


def _output_gradient_seen(node, gy, create_graph, capture_nodes, captured):
    """The gradient of ``node``'s output as its hooks, ``retain_grad`` and ``grad(inputs=...)``
    see it: hooks may replace it; the retained ``.grad`` and the captured value are set."""
    for hook in node._hooks:
        gy = _check_hook_result(hook(gy), gy, f"the output of '{node.name}'")
    if node._retain is not None:
        owner = node._retain()
        if owner is not None:
            owner.grad = gy if create_graph else gy.detach()
    if node in capture_nodes:
        captured[node] = gy
    return gy


def _call_backward(node, gy):
    """``node.backward(gy)``; in anomaly mode, with the node recorded so that a NaN made inside
    the rule is reported as this node's."""
    global _running_backward_of
    if not _anomaly_enabled:
        return node.backward(gy)
    outer, _running_backward_of = _running_backward_of, node
    try:
        return node.backward(gy)
    finally:
        _running_backward_of = outer


def _root_gradients(outputs, grad_outputs):
    grads = []
    for i, (out, g) in enumerate(zip(outputs, grad_outputs)):
        if not out.requires_grad:
            raise RuntimeError(f"output {i} does not require grad and has no grad_fn: nothing "
                               "to differentiate (did you forget requires_grad=True, or run "
                               "the forward pass under no_grad?)")
        if g is None:
            if out.data.size != 1:
                raise RuntimeError(f"grad can be implicitly created only for a single-element "
                                   f"output; this output has shape {out.shape}: pass "
                                   f"gradient=... of that shape")
            data = out.data
            if type(data) is _HOST_ARRAY:
                ones = _HOST_MODULE.empty(data.shape, data.dtype)  # (numpy's ones() is Python)
                ones.fill(1)
                g = Tensor._make(ones, None)
            else:
                with backend.device_scope(data):  # cupy's ones_like uses the current device
                    g = Tensor._make(backend.array_module(data).ones_like(data), None)
        else:
            if not isinstance(g, Tensor):
                g = Tensor(g, dtype=out.dtype, device=out.device)
            if g.shape != out.shape:
                raise RuntimeError(f"gradient has shape {g.shape} but the output has shape "
                                   f"{out.shape}")
        grads.append(g)
    return grads


def backward(tensor, gradient=None, retain_graph=None, create_graph=False):
    """Implementation of ``Tensor.backward``: accumulate d(tensor)/d(leaf) into each leaf's ``.grad``."""
    if retain_graph is None:
        retain_graph = create_graph
    grads = _root_gradients([tensor], [gradient])
    run_backward([tensor], grads, retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned as a tuple; ``.grad`` is untouched.

    Parameters
    ----------
    outputs : Tensor or sequence of Tensor
    inputs : Tensor or sequence of Tensor
        Leaves or intermediate tensors of the graph.
    grad_outputs : Tensor or sequence, optional
        The vector of the vector-Jacobian product; may be omitted for single-element outputs.
    retain_graph : bool, optional
        Keep the graph for another pass; defaults to ``create_graph``.
    create_graph : bool
        Record the backward pass so that the result can be differentiated again.
    allow_unused : bool
        Return None for an input the outputs do not depend on, instead of raising.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> x = tnd.tensor([1.0, 2.0], requires_grad=True)
    >>> (g,) = tnd.autograd.grad((x ** 3).sum(), x, create_graph=True)
    >>> g.tolist()
    [3.0, 12.0]
    >>> tnd.autograd.grad(g.sum(), x)[0].tolist()
    [6.0, 12.0]
    """
    outputs = (outputs,) if isinstance(outputs, Tensor) else tuple(outputs)
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = (grad_outputs,) * len(outputs) if grad_outputs is None else (grad_outputs,)
    grad_outputs = tuple(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"grad: input {i} (shape {t.shape}) does not require grad")
    if retain_graph is None:
        retain_graph = create_graph
    grads = _root_gradients(outputs, grad_outputs)
    result = run_backward(list(outputs), grads, retain_graph, create_graph, capture=inputs)
    for i, g in enumerate(result):
        if g is None and not allow_unused:
            raise RuntimeError(f"grad: input {i} (shape {inputs[i].shape}) was not used to "
                               "compute the outputs; pass allow_unused=True to get None for it")
    return result
