"""DOT text for a recorded graph: walk the tape from the roots, group ops by module, lay out.

Pure Python and deterministic: the walk follows ``node.inputs`` in order (never ``id()`` order),
ids are numbered in data-flow order (inputs first: ``t0`` is usually the model's input), and
numbers have a fixed precision (see ``style``), so the same graph gives the same text. Nothing
here needs the ``graphviz`` package or the ``dot`` program.

What is drawn:

- an op node per recorded ``Function`` (registry name and static parameters), inside the
  cluster of the innermost module whose ``forward`` recorded it (``Function.scope``);
- a tensor node per leaf (name from ``params``, shape, dtype, device; after ``backward()`` the
  L2 norms of its gradient and value, coloured on ``style.GRAD_SCALE``) and per root; a
  constant of one element that needs no grad (a lifted Python number) shows just its value;
- an edge per use of a tensor, from producer to consumer; edges that carry an intermediate
  result are labelled with its shape.

Layout: the ops that data flows through (from inputs that are not parameters) share one
``group``, so ``dot`` draws them as a straight column, and each parameter is ranked below the
last op before its module (an invisible edge), so module boxes follow one another instead of
standing side by side.
"""
from __future__ import annotations

import warnings
from collections import deque

from ..tensor import Tensor
from . import style as S

FREED_NOTE = ("the graph was freed by backward(): only its last op and the named tensors (params=, "
              "modules=model) are drawn; call backward(retain_graph=True) to draw the whole graph")


class _Walk:
    """Breadth-first walk from the roots over ``node.inputs``.

    ``items[i]`` is ``("op", fn)`` or ``("tensor", t)`` in discovery order (nearest the roots
    first, which is what ``max_nodes`` keeps); ``inputs[i]`` lists ``(j, t)`` for each input of
    item ``i``, in order, where ``t`` is the intermediate tensor carried from op ``j`` (None
    when ``j`` is a tensor node, and for the edge from a root's op to the root).
    """

    def __init__(self, roots):
        self.items, self.inputs, self.released = [], [], False
        self.roots = []  # item indices of the root tensors, in order
        self._index = {}  # fn or id(tensor) -> item index
        queue = deque()
        for t in roots:
            if id(t) in self._index:
                continue
            self.roots.append(self.add_tensor(t))
            if t.grad_fn is not None:
                self.inputs[self.roots[-1]].append((self._op(t.grad_fn, queue), None))
        while queue:
            fn = queue.popleft()
            if fn.inputs is None:  # released by a backward() without retain_graph
                self.released = True
                continue
            here = self._index[fn]
            for t in fn.inputs:
                if t.grad_fn is not None:
                    self.inputs[here].append((self._op(t.grad_fn, queue), t))
                else:
                    self.inputs[here].append((self.add_tensor(t), None))

    def _add(self, key, item):
        self._index[key] = len(self.items)
        self.items.append(item)
        self.inputs.append([])
        return self._index[key]

    def _op(self, fn, queue):
        if fn not in self._index:
            self._add(fn, ("op", fn))
            queue.append(fn)
        return self._index[fn]

    def add_tensor(self, t):
        return self._index[id(t)] if id(t) in self._index else self._add(id(t), ("tensor", t))

    def has_tensor(self, t):
        return id(t) in self._index

    def data_flow_order(self):
        """Every item index, each after its inputs: a depth-first post-order from the roots
        (iterative), then items no root reaches (parameters drawn after a freed graph)."""
        order, seen = [], set()
        for start in self.roots + list(range(len(self.items))):
            if start in seen:
                continue
            seen.add(start)
            stack = [(start, iter(self.inputs[start]))]
            while stack:
                i, pending = stack[-1]
                for j, _ in pending:
                    if j not in seen:
                        seen.add(j)
                        stack.append((j, iter(self.inputs[j])))
                        break
                else:
                    stack.pop()
                    order.append(i)
        return order


# ----------------------------------------------------------------------------- names
class _Modules:
    """Module names for clusters: ``by_name`` (name -> module) and ``parent`` (name -> the
    enclosing module's name, None at the top).

    The first tree keeps the names of its ``named_modules()`` (the model is ``""``, then
    ``features``, ``features.0``, ...), so they match ``named_parameters()``; a further tree
    (a loss module called after the model) is prefixed with its class name.
    """

    def __init__(self, trees):
        self.by_name, self.parent, self._names = {}, {}, {}
        for k, tree in enumerate(trees):
            prefix = ""
            if k:
                prefix = type(tree).__name__
                while prefix in self.by_name:
                    prefix += "_"
            for name, module in tree.named_modules():
                if id(module) in self._names:
                    continue
                full = ".".join(p for p in (prefix, name) if p)
                up = full.rpartition(".")[0] if "." in full else ("" if k == 0 and full else None)
                while up and up not in self.by_name:  # skip levels that named_modules left out
                    up = up.rpartition(".")[0] if "." in up else ("" if k == 0 else None)
                self.by_name[full], self.parent[full], self._names[id(module)] = module, up, full

    def name_of(self, module):
        return self._names.get(id(module))

    def title(self, name) -> str:
        kind = type(self.by_name[name]).__name__
        return kind if name in ("", kind) else f"{name}: {kind}"

    def inside(self, name, cluster) -> bool:
        """Whether module ``name`` is ``cluster`` or nested in it."""
        while name is not None:
            if name == cluster:
                return True
            name = self.parent.get(name)
        return False

    def owner(self, name, t):
        """The module holding parameter ``name`` (``features.0.weight`` -> ``features.0``), if
        it really has ``t`` under the last part of the name; else None."""
        owner, _, attr = name.rpartition(".")
        module = self.by_name.get(owner)
        return owner if module is not None and getattr(module, attr, None) is t else None


def _modules(modules, walk, flow):
    """The ``_Modules`` for ``modules`` (a Module, a list of them, None or False). None
    collects the outermost module of every op's scope, in data-flow order."""
    if modules is False:
        return _Modules(())
    if modules is None:
        trees, seen = [], set()
        for i in flow:
            kind, obj = walk.items[i]
            scope = getattr(obj, "scope", ()) if kind == "op" else ()
            if scope and id(scope[0]) not in seen and hasattr(scope[0], "named_modules"):
                seen.add(id(scope[0]))
                trees.append(scope[0])
        return _Modules(trees)
    trees = list(modules) if isinstance(modules, (list, tuple)) else [modules]
    for tree in trees:
        if not hasattr(tree, "named_modules"):
            raise TypeError(f"to_dot: modules must be a Module (with named_modules()), a list "
                            f"of them, None or False; got {type(tree).__name__}")
    return _Modules(trees)


def _named_tensors(params, mods):
    """``{id(tensor): (name, tensor)}`` from ``params`` (a mapping or (name, tensor) pairs),
    then the named parameters of the first module tree for tensors ``params`` leaves unnamed."""
    pairs = list(params.items() if hasattr(params, "items") else params or ())
    model = mods.by_name.get("")
    if hasattr(model, "named_parameters"):
        pairs += list(model.named_parameters())
    found = {}
    for entry in pairs:
        if not (isinstance(entry, tuple) and len(entry) == 2):
            raise TypeError(f"to_dot: params must map names to tensors (a dict or (name, tensor) "
                            f"pairs), got an entry of type {type(entry).__name__}")
        name, t = entry
        if not isinstance(t, Tensor):
            raise TypeError(f"to_dot: params[{name!r}] is a {type(t).__name__}, not a Tensor")
        found.setdefault(id(t), (str(name), t))
    return found


# ----------------------------------------------------------------------------- to_dot
def to_dot(*roots, params=None, show_grads=True, hide_intermediate=False, max_nodes=None,
           modules=None, rankdir="TB") -> str:
    """DOT source of the graph that produced ``roots``, with data flowing from inputs to outputs.

    Parameters
    ----------
    *roots : Tensor
        Outputs to draw the graph of (a loss, or several outputs); a list of Tensors also works.
    params : mapping of str to Tensor, or iterable of (str, Tensor), optional
        Names for leaf tensors, e.g. ``dict(model.named_parameters())``; any tensor may be named
        (``{"x": x}``). The named parameters of the model (``modules``, or the model found from
        the module scope) name the tensors left unnamed.
    show_grads : bool
        After ``backward()``, label each leaf with the L2 norms of its gradient and value and
        colour it from vanishing (blue) through healthy (green) to exploding (orange); a NaN or
        Inf gradient is red, bold and double-bordered. A legend explains the colours. Nothing
        changes while no drawn tensor has a ``.grad``.
    hide_intermediate : bool
        Leave the shapes of intermediate results off the edges.
    max_nodes : int, optional
        Draw at most this many op and tensor nodes, those nearest the roots, plus one summary
        node that counts what was left out by op name ("... 40 more ops: 12 mul, ...").
    modules : Module, list of Module, None or False
        Group ops into one cluster per module, named as in ``model.named_modules()``; a
        module that ran a single op and owns no parameters (ReLU, MaxPool2d) titles that op
        instead of boxing it. None (the default) finds the models from the module scope that
        ``Module.__call__`` records on each op; the first one keeps its names, a later one (a
        loss module) is prefixed with its class name. False draws no clusters.
    rankdir : {"TB", "LR", "BT", "RL"}
        Layout direction: top to bottom by default.

    Returns
    -------
    str
        The DOT text, identical for identical graphs.

    Raises
    ------
    TypeError
        A root that is not a Tensor, ``params`` that do not map names to Tensors, or
        ``modules`` without ``named_modules()``.
    ValueError
        No roots, ``max_nodes`` below 1, or an unknown ``rankdir``.

    Notes
    -----
    ``backward()`` without ``retain_graph=True`` frees the graph: afterwards only the root's
    op (marked "freed by backward()") and the tensors named by ``params`` or ``modules`` (with
    their gradients, in their modules' boxes) can be drawn; a ``UserWarning`` and a note under
    the diagram say so.

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
    mods = _modules(modules, walk, walk.data_flow_order())
    named = _named_tensors(params, mods)
    unreached = []
    if walk.released:
        warnings.warn("to_dot: " + FREED_NOTE, UserWarning, stacklevel=2)
        for _, t in named.values():  # still show the parameters and their gradients
            if not walk.has_tensor(t):
                unreached.append(walk.add_tensor(t))

    keep = len(walk.items) if max_nodes is None else min(max_nodes, len(walk.items))
    flow = walk.data_flow_order()
    order = [i for i in flow if i < keep]
    show_grads = show_grads and any(walk.items[i][1].grad is not None for i in order
                                    if walk.items[i][0] == "tensor")
    keys, nodes, cluster_of = _nodes(walk, order, mods, named, show_grads)
    data = _data_flags(walk, flow, named, mods)
    on_path = {i for i in order if data[i] and (walk.items[i][0] == "op" or (
        not walk.inputs[i] and walk.items[i][1].data.size > 1))}
    for i in on_path:
        nodes[i]["group"] = "data"  # dot keeps the edges of one group straight

    lines = [f"graph {S.attrs({**S.GRAPH_ATTRS, 'rankdir': rankdir})}",
             f"node {S.attrs(S.NODE_ATTRS)}", f"edge {S.attrs(S.EDGE_ATTRS)}"]
    lines += _clusters(order, keys, nodes, cluster_of, mods)
    summary = S.summary([walk.items[i] for i in flow if i >= keep])
    if summary:
        lines.append(f"summary {S.attrs(summary)}")
    for dst in order:
        cut = False
        for src, t in walk.inputs[dst]:
            if src >= keep:  # the input was cut: one dashed edge from the summary instead
                cut = True
                continue
            edge = {}
            if t is not None and not hide_intermediate:
                edge["label"] = " " + S.shape_text(t.shape)
            if src in on_path and dst in on_path:
                edge["weight"] = "10"  # pull the data path straight
            lines.append(f"{keys[src]} -> {keys[dst]}" + (f" {S.attrs(edge)}" if edge else ""))
        if cut:
            lines.append(f"summary -> {keys[dst]} {S.attrs(dict(style='dashed'))}")
    for src, dst in _rank_hints(walk, order, keep, data, cluster_of, mods):
        lines.append(f"{keys[src]} -> {keys[dst]} {S.attrs(dict(style='invis'))}")
    if walk.released:
        shown = [keys[i] for i in unreached if i < keep]
        lines += [f"{a} -> {b} {S.attrs(dict(style='invis'))}" for a, b in zip(shown, shown[1:])]
        freed = next(keys[i] for i in order if walk.items[i][0] == "op")  # in definition order
        lines.append(f"note {S.attrs(S.note(FREED_NOTE))}")
        lines.append(f'{{rank="same"; {freed}; note}}')
    if show_grads:  # the legend goes under the diagram, out of the way of the layout
        lines.append(f"graph {S.attrs(dict(label=S.legend(), labelloc='b', labeljust='r'))}")
    return "digraph tinygrad_nd {\n" + "".join(f"\t{line}\n" for line in lines) + "}\n"


def _nodes(walk, order, mods, named, show_grads):
    """DOT ids (``op0``, ``t0``, ... numbered in data-flow order), node attributes and the
    module (cluster name or None) of each drawn item, all keyed by item index."""
    keys, nodes, cluster_of = {}, {}, {}
    counts = {"op": 0, "tensor": 0}
    constants = {}  # item index of a lifted number -> the indices of its consumers
    for i in order:
        kind, obj = walk.items[i]
        keys[i] = f"{'op' if kind == 'op' else 't'}{counts[kind]}"
        counts[kind] += 1
        if kind == "op":
            nodes[i] = S.op_node(obj, obj.inputs is None)
            inner = [mods.name_of(m) for m in getattr(obj, "scope", ()) if mods.name_of(m) is not None]
            cluster_of[i] = inner[-1] if inner else None
            for j, _ in walk.inputs[i]:
                if j in constants:
                    constants[j].append(i)
        else:
            entry = named.get(id(obj))
            role = "output" if i in walk.roots else "param" if obj.requires_grad else "input"
            nodes[i] = S.tensor_node(obj, entry[0] if entry else None, role, show_grads)
            cluster_of[i] = mods.owner(entry[0], obj) if entry and role == "param" else None
            if S.is_constant(obj, entry, role):
                constants[i] = []
    for i, users in constants.items():  # a number lifted inside a module belongs to its box
        homes = {cluster_of[u] for u in users}
        if len(homes) == 1:
            cluster_of[i] = homes.pop()
    return keys, nodes, cluster_of


def _data_flags(walk, flow, named, mods):
    """``data[i]``: whether item ``i`` lies on the data path. A leaf does unless it is a
    parameter (requires grad and, when modules are known, belongs to one); an op does when
    one of its inputs does."""
    def is_param(t):
        if not (t.requires_grad and t.grad_fn is None):
            return False
        entry = named.get(id(t))
        return not mods.by_name or (entry is not None and mods.owner(entry[0], t) is not None)

    data = {}
    for i in flow:  # inputs first
        kind, obj = walk.items[i]
        if kind == "tensor" and not walk.inputs[i]:
            data[i] = not is_param(obj)
        else:
            data[i] = any(data[j] for j, _ in walk.inputs[i])
    return data


def _rank_hints(walk, order, keep, data, cluster_of, mods):
    """``(p, leaf)`` pairs for invisible edges: each parameter in a module, fed into a data-path
    op, goes below ``p``, the last data-path node before that module (unless ``p`` itself
    depends on the parameter, as when one module runs twice)."""
    hints, upstream = {}, {}  # an ordered set of pairs; p -> every item upstream of p

    def feeds(j, p):  # whether leaf j is upstream of p (a module run twice, an RNN cell)
        if p not in upstream:
            seen, stack = set(), [p]
            while stack:
                for k, _ in walk.inputs[stack.pop()]:
                    if k not in seen:
                        seen.add(k)
                        stack.append(k)
            upstream[p] = seen
        return j in upstream[p]

    for o in order:
        if walk.items[o][0] != "op" or not data[o]:
            continue
        stack = [j for j, _ in walk.inputs[o] if not data[j] and j < keep]
        visited = set(stack)
        while stack:  # the parameter side of o: ops on parameters only, down to the leaves
            j = stack.pop()
            if walk.items[j][0] == "op":
                more = [k for k, _ in walk.inputs[j] if k < keep and k not in visited]
                visited.update(more)
                stack.extend(more)
                continue
            module = cluster_of.get(j)
            if module is None:
                continue
            p = o
            while p is not None and mods.inside(cluster_of.get(p), module):
                p = next((k for k, _ in walk.inputs[p] if data[k]), None)
            if p is not None and p < keep and (p, j) not in hints and not feeds(j, p):
                hints[(p, j)] = True  # never a cycle: p must not depend on j
    return list(hints)


def _clusters(order, keys, nodes, cluster_of, mods):
    """Node lines, with the nodes of each module inside nested ``subgraph cluster_N`` blocks
    (numbered in the order they are written)."""
    members, children, seen = {}, {}, []
    for i in order:
        name = cluster_of[i]
        members.setdefault(name, []).append(i)
        while name is not None and name not in seen:  # register the cluster and its ancestors
            seen.append(name)
            up = mods.parent[name]
            children.setdefault(up, []).append(name)
            name = up
    lines, ids = [], {}

    def emit(name, depth):
        pad = "\t" * depth
        for i in members.get(name, ()):
            lines.append(f"{pad}{keys[i]} {S.attrs(nodes[i])}")
        for child in children.get(name, ()):
            inside = members.get(child, [])
            if not children.get(child) and len(inside) == 1 and keys[inside[0]].startswith("op"):
                # a module that ran one op and owns no parameters (ReLU, MaxPool2d, Flatten):
                # the op titled with the module reads better than a box around one node
                lines.append(f"{pad}{keys[inside[0]]} {S.attrs(S.titled(nodes[inside[0]], mods.title(child)))}")
                continue
            box = dict(label=mods.title(child), labeljust="l", style="rounded,filled",
                       fillcolor="#fafafa" if depth % 2 == 0 else "#f0f0f0", color="#9a9a9a",
                       fontsize="10", fontcolor="#333333")
            ids[child] = f"cluster_{len(ids)}"
            lines.append(f"{pad}subgraph {ids[child]} {{")
            lines.append(f"{pad}\tgraph {S.attrs(box)}")
            emit(child, depth + 1)
            lines.append(f"{pad}}}")

    emit(None, 0)
    return lines
