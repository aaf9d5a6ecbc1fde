"""DOT text for a recorded graph: walk the tape from the roots, then write nodes, clusters, edges.

Pure Python and deterministic: node ids come from the order of a breadth-first walk from the
roots (never ``id()``), and every number is formatted with a fixed precision, so the same graph
gives the same text. Nothing here needs the ``graphviz`` package or the ``dot`` program.

What is drawn:

- an op node per recorded ``Function`` (its registry name and static parameters), inside the
  cluster of the innermost module whose ``forward`` recorded it (``Function.scope``);
- a tensor node per leaf (name from ``params``, shape, dtype, device; after ``backward()`` the
  L2 norms of its gradient and of its value, coloured on the scale of ``GRAD_SCALE``) and per
  root; tiny constants (one element, no grad) show just their value;
- an edge per use of a tensor, from producer to consumer; edges that carry an intermediate
  result are labelled with its shape.
"""
from __future__ import annotations

import math
import warnings
from collections import Counter, deque

from .. import backend
from ..tensor import Tensor

FONT = "Helvetica,Arial,sans-serif"

# The gradient colour scale, on log10 of the gradient's L2 norm: (upper bound, name, fill, font colour).
# Rules of thumb: float32 keeps ~7 digits, so below 1e-6 an update barely moves an O(1) weight.
GRAD_SCALE = (
    (-6.0, "vanishing: below 1e-6", "#4575b4", "white"),
    (-3.0, "small: 1e-6 to 1e-3", "#abd9e9", "black"),
    (1.0, "healthy: 1e-3 to 10", "#a6d96a", "black"),
    (3.0, "large: 10 to 1e3", "#fee08b", "black"),
    (math.inf, "exploding: 1e3 and above", "#fdae61", "black"),
)
ZERO_FILL = "#d9d9d9"  # a gradient of exactly zero: no signal reaches the tensor
NONFINITE_FILL = "#e31a1c"  # NaN or Inf: red, bold, double border

OP_FILL, OP_BORDER = "#dbe6f4", "#4a6fa5"
PARAM_FILL, INPUT_FILL, OUTPUT_FILL = "#fff2cc", "#eeeeee", "#e2f0d9"
SUMMARY_NOTE = "graph cut at max_nodes"
FREED_NOTE = ("the graph was freed by backward(): only its output op and the parameters are "
              "drawn; call backward(retain_graph=True) to draw the whole graph with gradients")


# ----------------------------------------------------------------------------- formatting
def _html(text) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _quote(text) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _format_value(value) -> str:
    """A static parameter as short text: ints, tuples, slices, dtypes, arrays as dtype[shape]."""
    if isinstance(value, Tensor):
        value = value.data
    if value is None or isinstance(value, (bool, int, str)):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if value is Ellipsis:
        return "..."
    if isinstance(value, slice):
        parts = ["" if v is None else str(v) for v in (value.start, value.stop, value.step)]
        return ":".join(parts[:2] if value.step is None else parts)
    if isinstance(value, (tuple, list)):
        return _shape([_format_value(v) for v in value])
    if isinstance(value, type(backend.float32)):  # a numpy dtype
        return str(value)
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # a numpy or cupy array
        if value.ndim == 0:
            return _format_value(value.item())
        return f"{value.dtype}[{', '.join(str(s) for s in value.shape)}]"
    return type(value).__name__


def _format_param(name, value) -> str:
    if name == "padding" and isinstance(value, tuple) and value and all(
            isinstance(p, tuple) and len(p) == 2 and p[0] == p[1] for p in value):
        value = tuple(lo for lo, _ in value)  # symmetric (lo, hi) pairs read as PyTorch's padding
    text = _format_value(value)
    return f"{name}={text if len(text) <= 40 else text[:37] + '...'}"


def _wrap(parts, width=34):
    """Join ``parts`` with two spaces, starting a new line before ``width`` characters."""
    lines, line = [], ""
    for part in parts:
        if line and len(line) + 2 + len(part) > width:
            lines.append(line)
            line = part
        else:
            line = f"{line}  {part}" if line else part
    return lines + ([line] if line else [])


def _norm(array):
    """``(L2 norm, "NaN" | "Inf" | None)`` of a raw array, computed on the host in float64."""
    h = backend.to_host(array).astype(backend.float64).ravel()
    if h.size == 0:
        return 0.0, None
    if bool((h != h).any()):
        return math.nan, "NaN"
    peak = float(abs(h).max())
    if math.isinf(peak):
        return math.inf, "Inf"
    if peak == 0.0:
        return 0.0, None
    return peak * math.sqrt(float(((h / peak) ** 2).sum())), None  # scaled: no overflow


def grad_style(norm, bad=None) -> dict:
    """DOT attributes colouring a node by its gradient norm on ``GRAD_SCALE``."""
    if bad is not None:
        return dict(fillcolor=NONFINITE_FILL, fontcolor="white", color="#7f0000", penwidth="3",
                    peripheries="2")
    if norm == 0.0:
        return dict(fillcolor=ZERO_FILL)
    level = math.log10(norm)
    for bound, _, fill, font in GRAD_SCALE:
        if level < bound:
            return dict(fillcolor=fill) if font == "black" else dict(fillcolor=fill, fontcolor=font)
    raise AssertionError("unreachable: the last bound is infinite")


# ----------------------------------------------------------------------------- the walk
class _Walk:
    """Breadth-first walk from the roots: ``items`` in discovery order, ``edges`` as index pairs.

    An item is ``("op", fn)`` or ``("tensor", t)``; an edge ``(src, dst, t)`` carries tensor
    ``t``, the output of op ``src`` used by op ``dst`` (``t`` is None for edges from tensor
    nodes and into output nodes).
    """

    def __init__(self, roots):
        self.items, self.edges, self.released = [], [], False
        self.roots = {}  # id(tensor) -> index, for root tensors
        self._ops, self._tensors = {}, {}  # fn -> index, id(tensor) -> index
        queue = deque()
        for t in roots:
            if id(t) in self._tensors:
                continue
            self.roots[id(t)] = self._tensor(t)
            if t.grad_fn is not None:
                self.edges.append((self._op(t.grad_fn, queue), self.roots[id(t)], None))
        while queue:
            fn = queue.popleft()
            if fn.inputs is None:  # released by a backward() without retain_graph
                self.released = True
                continue
            for t in fn.inputs:
                if t.grad_fn is not None:
                    self.edges.append((self._op(t.grad_fn, queue), self._ops[fn], t))
                else:
                    self.edges.append((self._tensor(t), self._ops[fn], None))

    def _op(self, fn, queue):
        if fn not in self._ops:
            self._ops[fn] = len(self.items)
            self.items.append(("op", fn))
            queue.append(fn)
        return self._ops[fn]

    def _tensor(self, t):
        if id(t) not in self._tensors:
            self._tensors[id(t)] = len(self.items)
            self.items.append(("tensor", t))
        return self._tensors[id(t)]

    def add_tensor(self, t):
        return self._tensor(t)

    def has_tensor(self, t):
        return id(t) in self._tensors


# ----------------------------------------------------------------------------- modules
def _module_names(modules, walk):
    """``{id(module): (name, module)}`` from ``modules.named_modules()``, or, when ``modules``
    is None, from the outermost module recorded on the first op that has a scope."""
    if modules is False:
        return {}
    if modules is None:
        scopes = (getattr(obj, "scope", ()) for kind, obj in walk.items if kind == "op")
        modules = next((scope[0] for scope in scopes if scope), None)
        if modules is None or not hasattr(modules, "named_modules"):
            return {}
    elif not hasattr(modules, "named_modules"):
        raise TypeError(f"to_dot: modules must be a Module (with named_modules()), None or "
                        f"False, got {type(modules).__name__}")
    names = {}
    for name, module in modules.named_modules():
        names.setdefault(id(module), (name, module))
    return names


def _collect_params(params, modules, names):
    """``{id(tensor): (name, tensor)}`` from ``params`` (a mapping or (name, tensor) pairs); by
    default the named parameters of ``modules`` or of the discovered outermost module."""
    if params is None:
        source = modules if modules not in (None, False) else next(
            (m for name, m in names.values() if name == ""), None)
        params = source.named_parameters() if hasattr(source, "named_parameters") else ()
    pairs = params.items() if hasattr(params, "items") else params
    found = {}
    for entry in pairs:
        if not (isinstance(entry, tuple) and len(entry) == 2):
            raise TypeError(f"to_dot: params must map names to tensors (a dict or (name, tensor) "
                            f"pairs), got an entry {type(entry).__name__}")
        name, t = entry
        if not isinstance(t, Tensor):
            raise TypeError(f"to_dot: params[{name!r}] is a {type(t).__name__}, not a Tensor")
        found.setdefault(id(t), (str(name), t))
    return found


def _param_cluster(name, t, by_name):
    """The module that owns parameter ``name`` (``features.0.weight`` -> ``features.0``), if
    that module really holds ``t`` under the last part of the name."""
    owner, _, attr = name.rpartition(".")
    module = by_name.get(owner)
    return owner if module is not None and getattr(module, attr, None) is t else None


# ----------------------------------------------------------------------------- DOT text
class _Html(str):
    """A label in Graphviz's HTML-like syntax: written between ``<`` and ``>``, not quoted."""


def _attrs(attrs) -> str:
    body = ", ".join(f"{k}=<{v}>" if isinstance(v, _Html) else f"{k}={_quote(v)}"
                     for k, v in attrs.items())
    return f"[{body}]"


def _op_node(fn, released):
    lines = [f"<B>{_html(fn.name)}</B>"]
    shown = [_format_param(k, v) for k, v in getattr(fn, "params", {}).items()
             if v is not None and v is not False]
    lines += [f'<FONT POINT-SIZE="9">{_html(line)}</FONT>' for line in _wrap(shown)]
    attrs = {}
    if released:
        lines.append('<FONT POINT-SIZE="9"><I>freed by backward()</I></FONT>')
        attrs = dict(style="rounded,dashed,filled", fillcolor="white")
    return {"label": _Html("<BR/>".join(lines)), **attrs}


def _tensor_node(t, name, role, show_grads):
    """Attributes of a tensor node; ``role`` is "param", "input" or "output"."""
    if role == "input" and name is None and t.data.size == 1 and not t.requires_grad:
        value = backend.to_host(t.data).reshape(()).item()  # a lifted Python number
        return dict(label=_format_value(value), shape="ellipse", style="filled",
                    fillcolor="white", fontsize="9", width="0.3", height="0.25", margin="0.04,0.02")
    title = name if name is not None else ("output" if role == "output" else "tensor")
    lines = [f"<B>{_html(title)}</B>",
             f'<FONT POINT-SIZE="9">{_html(_shape(t.shape))} {t.dtype} {_html(t.device)}</FONT>']
    fill = {"param": PARAM_FILL, "input": INPUT_FILL, "output": OUTPUT_FILL}[role]
    attrs = dict(style="filled", fillcolor=fill)
    if role == "output" and t.data.size == 1:
        value, bad = _norm(t.data)
        lines.append(f'<FONT POINT-SIZE="9">value {backend.to_host(t.data).reshape(()).item():.4g}</FONT>')
        if bad:
            attrs.update(grad_style(value, bad))
    if show_grads and (t.grad is not None or (t.requires_grad and t.grad_fn is None)):
        if t.grad is None:
            lines.append('<FONT POINT-SIZE="9"><I>no grad</I></FONT>')
            attrs.update(style="filled,dashed", fillcolor="white")
        else:
            norm, bad = _norm(t.grad.data)
            value, _ = _norm(t.data)
            grad_text = f"<B>grad {bad}</B>" if bad else f"|grad| {norm:.2e}"
            lines.append(f'<FONT POINT-SIZE="9">{grad_text}  |value| {value:.2e}</FONT>')
            attrs.update(grad_style(norm, bad))
    return {"label": _Html("<BR/>".join(lines)), **attrs}


def _legend():
    rows = [f'<TR><TD BGCOLOR="{NONFINITE_FILL}"><FONT COLOR="white"><B>NaN</B></FONT></TD>'
            '<TD ALIGN="LEFT">NaN or Inf gradient</TD></TR>']
    for _, text, fill, _ in reversed(GRAD_SCALE):
        rows.append(f'<TR><TD BGCOLOR="{fill}"> </TD><TD ALIGN="LEFT">{_html(text)}</TD></TR>')
    rows.append(f'<TR><TD BGCOLOR="{ZERO_FILL}"> </TD><TD ALIGN="LEFT">exactly zero</TD></TR>')
    rows.append('<TR><TD> </TD><TD ALIGN="LEFT">white, dashed: no .grad</TD></TR>')
    table = ('<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="3">'
             '<TR><TD COLSPAN="2"><B>L2 norm of the gradient</B></TD></TR>' + "".join(rows) + "</TABLE>")
    return dict(shape="plaintext", style="", fontsize="9", label=_Html(table))


def to_dot(*roots, params=None, show_grads=True, hide_intermediate=False, max_nodes=None,
           modules=None, rankdir="TB") -> str:
    """DOT source of the graph that produced ``roots``, with data flowing from inputs to outputs.

    Parameters
    ----------
    *roots : Tensor
        Outputs to draw the graph of (a loss, or several outputs); a list of Tensors also works.
    params : mapping of str to Tensor, or iterable of (str, Tensor), optional
        Names for leaf tensors, e.g. ``dict(model.named_parameters())``; any tensor may be named
        (``{"x": x}``). Defaults to the named parameters of ``modules``.
    show_grads : bool
        After ``backward()``, label each leaf with the L2 norms of its gradient and value and
        colour it from vanishing (blue) to exploding (orange); NaN or Inf is red and bold. A
        legend explains the colours. Has no effect while no drawn tensor has a ``.grad``.
    hide_intermediate : bool
        Leave the shapes of intermediate results off the edges.
    max_nodes : int, optional
        Draw at most this many op and tensor nodes (those nearest the roots) and one summary
        node that counts what was left out, by op name.
    modules : Module, None or False
        Group ops into one cluster per module, named as in ``modules.named_modules()``. None
        finds the model from the module scope the ops recorded (``Module.__call__``); False
        draws no clusters.
    rankdir : {"TB", "LR"}
        Top to bottom or left to right.

    Returns
    -------
    str
        The DOT text, identical for identical graphs.

    Raises
    ------
    TypeError
        A root that is not a Tensor, or ``params`` that do not map names to Tensors.
    ValueError
        No roots, or ``max_nodes`` below 1.

    Notes
    -----
    ``backward()`` without ``retain_graph=True`` frees the graph: afterwards only the root's
    op (marked "freed by backward()") and the parameters with their gradients can be drawn,
    and a ``UserWarning`` and a note in the diagram say so.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd.viz import to_dot
    >>> w = tnd.ones(3, 2, requires_grad=True)
    >>> loss = (tnd.ones(4, 3) @ w).sigmoid().sum()
    >>> text = to_dot(loss, params={"w": w})
    >>> text.splitlines()[0], "matmul" in text, "(4, 2)" in text
    ('digraph tinygrad_nd {', True, True)
    """
    if len(roots) == 1 and isinstance(roots[0], (list, tuple)):
        roots = tuple(roots[0])
    if not roots:
        raise ValueError("to_dot: give at least one root tensor (a loss or an output)")
    for i, t in enumerate(roots):
        if not isinstance(t, Tensor):
            raise TypeError(f"to_dot: root {i} is a {type(t).__name__}, not a Tensor")
    if max_nodes is not None and (isinstance(max_nodes, bool) or not isinstance(max_nodes, int)
                                  or max_nodes < 1):
        raise ValueError(f"to_dot: max_nodes must be a positive int or None, got {max_nodes!r}")
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(f"to_dot: rankdir must be 'TB', 'LR', 'BT' or 'RL', got {rankdir!r}")

    walk = _Walk(roots)
    names = _module_names(modules, walk)
    named = _collect_params(params, modules, names)
    by_name = {name: module for name, module in names.values()}
    if walk.released:
        warnings.warn("to_dot: " + FREED_NOTE, UserWarning, stacklevel=2)
        for _, t in named.values():  # still show the parameters and their gradients
            if not walk.has_tensor(t):
                walk.add_tensor(t)

    keep = len(walk.items) if max_nodes is None else min(max_nodes, len(walk.items))
    show_grads = show_grads and any(t.grad is not None for kind, t in walk.items[:keep]
                                    if kind == "tensor")
    keys, nodes, cluster_of = _nodes(walk, keep, names, named, by_name, show_grads)
    on_path, hints = _data_path(walk, keep, named, by_name,
                                {i: cluster_of[key] for i, key in enumerate(keys)})
    for i in on_path:
        nodes[keys[i]]["group"] = "data"  # the data path: one straight column where possible

    lines = [f"graph {_attrs({**GRAPH_ATTRS, 'rankdir': rankdir})}", f"node {_attrs(NODE_ATTRS)}",
             f"edge {_attrs(EDGE_ATTRS)}"]
    lines += _clusters(keys, nodes, cluster_of, by_name)
    summary = _summary(walk.items[keep:])
    if summary:
        lines.append(f"summary {_attrs(summary)}")
    if show_grads:
        lines.append(f"legend {_attrs(_legend())}")
        lines.append('{rank="sink"; legend}')
    linked = set()
    for src, dst, t in walk.edges:
        if dst >= keep:
            continue
        if src >= keep:  # the input was cut: one dashed edge from the summary instead
            if dst not in linked:
                linked.add(dst)
                lines.append(f"summary -> {keys[dst]} {_attrs(dict(style='dashed'))}")
            continue
        attrs = {}
        if t is not None:  # an intermediate result
            attrs = {} if hide_intermediate else dict(label=" " + _shape(t.shape))
        if src in on_path and dst in on_path:
            attrs["weight"] = "10"  # pull the data path straight
        lines.append(f"{keys[src]} -> {keys[dst]}" + (f" {_attrs(attrs)}" if attrs else ""))
    # rank each parameter below the op that feeds its consumer, so a module's box starts
    # after the previous module's box instead of beside it
    lines += [f"{keys[src]} -> {keys[dst]} [style=\"invis\"]" for src, dst in hints]
    if walk.released:
        lines += [f"label={_quote(FREED_NOTE)}", "labelloc=\"b\""]
    return "digraph tinygrad_nd {\n" + "".join(f"\t{line}\n" for line in lines) + "}\n"


GRAPH_ATTRS = dict(rankdir="TB", fontname=FONT, fontsize="10", nodesep="0.3", ranksep="0.35",
                   newrank="true")
NODE_ATTRS = dict(shape="box", style="rounded,filled", fillcolor=OP_FILL, color=OP_BORDER,
                  fontname=FONT, fontsize="11", height="0.3", margin="0.1,0.04")
EDGE_ATTRS = dict(fontname=FONT, fontsize="9", fontcolor="#444444", color="#555555",
                  arrowsize="0.7")


def _nodes(walk, keep, names, named, by_name, show_grads):
    """DOT ids (``op0``, ``t0``, ... in walk order), attributes and module cluster of the
    first ``keep`` items of the walk."""
    keys, nodes, cluster_of = [], {}, {}
    counts = Counter()
    for kind, obj in walk.items[:keep]:
        key = f"{'op' if kind == 'op' else 't'}{counts[kind]}"
        counts[kind] += 1
        keys.append(key)
        if kind == "op":
            nodes[key] = _op_node(obj, obj.inputs is None)
            scope = [names[id(m)][0] for m in getattr(obj, "scope", ()) if id(m) in names]
            cluster_of[key] = scope[-1] if scope else None
        else:
            entry = named.get(id(obj))
            role = "output" if id(obj) in walk.roots else "param" if obj.requires_grad else "input"
            nodes[key] = _tensor_node(obj, entry[0] if entry else None, role, show_grads)
            owner = _param_cluster(entry[0], obj, by_name) if entry and role == "param" else None
            cluster_of[key] = owner
    return keys, nodes, cluster_of


def _data_path(walk, keep, named, by_name, cluster_of):
    """Split the kept nodes into the data path and the parameter side.

    A leaf is on the data path unless it is a parameter (requires grad and, when modules are
    known, belongs to one); an op is on it when one of its inputs is. Returns the indices on
    the path (ops and non-scalar leaves) and layout hints: ``(p, leaf)`` pairs for each
    parameter in a module cluster, with ``p`` the last data-path node before that module, so
    that the parameter is ranked inside the module's box rather than beside the box before.
    """
    inputs = [[] for _ in walk.items]
    for src, dst, _ in walk.edges:
        inputs[dst].append(src)

    def is_param(t):
        if not (t.requires_grad and t.grad_fn is None):
            return False
        entry = named.get(id(t))
        return not by_name or (entry is not None and _param_cluster(entry[0], t, by_name) is not None)

    data = {}
    for i in _inputs_first(inputs):
        kind, obj = walk.items[i]
        data[i] = (not is_param(obj)) if kind == "tensor" and not inputs[i] else any(
            data[s] for s in inputs[i])
    on_path = {i for i in range(keep) if data[i] and (
        walk.items[i][0] == "op" or (walk.items[i][1].data.size > 1 and not inputs[i]))}
    hints = []
    for o in range(keep):
        if walk.items[o][0] != "op" or not data[o]:
            continue
        stack = [s for s in inputs[o] if not data[s] and s < keep]
        while stack:
            s = stack.pop()
            if walk.items[s][0] == "op":
                stack.extend(i for i in inputs[s] if i < keep)
            elif cluster_of.get(s) is not None:
                feeder = _entry(o, cluster_of[s], inputs, data, cluster_of, by_name)
                if feeder is not None and feeder < keep and (feeder, s) not in hints:
                    hints.append((feeder, s))
    return on_path, hints


def _entry(o, cluster, inputs, data, cluster_of, by_name):
    """The first node up the data path from ``o`` that lies outside module ``cluster``."""
    seen = set()
    while o is not None and o not in seen:
        seen.add(o)
        inside = cluster_of.get(o)
        if inside is None or not (inside == cluster or inside.startswith(cluster + ".")
                                  or cluster == ""):
            return o
        o = next((s for s in inputs[o] if data[s]), None)
    return None


def _inputs_first(inputs):
    """All indices, ordered so that every node comes after its inputs (Kahn)."""
    waiting = [len(inputs[i]) for i in range(len(inputs))]
    consumers = [[] for _ in inputs]
    for dst, srcs in enumerate(inputs):
        for s in srcs:
            consumers[s].append(dst)
    queue = deque(i for i in range(len(inputs)) if waiting[i] == 0)
    order = []
    while queue:
        i = queue.popleft()
        order.append(i)
        for c in consumers[i]:
            waiting[c] -= 1
            if waiting[c] == 0:
                queue.append(c)
    return order


def _summary(left_out):
    """Attributes of the node that counts the items cut by ``max_nodes``, or None."""
    if not left_out:
        return None
    ops = Counter(obj.name for kind, obj in left_out if kind == "op")
    tensors = sum(1 for kind, _ in left_out if kind == "tensor")
    parts = [f"{n} {name}" for name, n in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))]
    text = f"... {sum(ops.values())} more ops" + (": " + ", ".join(parts[:6]) if parts else "")
    text += ", ..." if len(parts) > 6 else ""
    text += f"; {tensors} more tensors" if tensors else ""
    return dict(label=text, shape="note", style="dashed", fillcolor="white", fontsize="10")


def _clusters(keys, nodes, cluster_of, by_name):
    """Node lines, with the nodes of each module inside nested ``subgraph cluster_*`` blocks."""
    def parent(name):
        parts = name.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            if ".".join(parts[:cut]) in by_name:
                return ".".join(parts[:cut])
        return "" if name != "" and "" in by_name else None

    members, children, order = {}, {}, []
    for key in keys:
        name = cluster_of[key]
        members.setdefault(name, []).append(key)
        while name is not None and name not in order:  # register the cluster and its ancestors
            order.append(name)
            up = parent(name)
            children.setdefault(up, []).append(name)
            name = up

    ids = {name: f"cluster_{i}" for i, name in enumerate(order)}
    lines = []

    def title(name):
        module = by_name[name]
        return type(module).__name__ if name == "" else f"{name}: {type(module).__name__}"

    def emit(name, depth):
        pad = "\t" * depth
        for key in members.get(name, ()):
            lines.append(f"{pad}{key} {_attrs(nodes[key])}")
        for child in children.get(name, ()):
            inside = members.get(child, [])
            if not children.get(child) and len(inside) == 1 and inside[0].startswith("op"):
                # a module that ran one op and owns no parameters (ReLU, MaxPool2d, Flatten):
                # the op, titled with the module, reads better than a box around one node
                attrs = dict(nodes[inside[0]])
                attrs["label"] = _Html(f'<FONT POINT-SIZE="9" COLOR="#555555">{_html(title(child))}'
                                       f'</FONT><BR/>{attrs["label"]}')
                lines.append(f"{pad}{inside[0]} {_attrs(attrs)}")
                continue
            fill = "#fafafa" if depth % 2 == 0 else "#f0f0f0"
            lines.append(f"{pad}subgraph {ids[child]} {{")
            lines.append(f"{pad}\tgraph {_attrs(dict(label=title(child), labeljust='l', style='rounded,filled', fillcolor=fill, color='#9a9a9a', fontsize='10', fontcolor='#333333'))}")
            emit(child, depth + 1)
            lines.append(f"{pad}}}")

    emit(None, 0)
    return lines
