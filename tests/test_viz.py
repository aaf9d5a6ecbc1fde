"""Graph diagrams (tinygrad_nd.viz): DOT text, gradient colours, module clusters, rendering, CLI.

Golden files: tests/golden/*.dot hold the exact DOT text of small fixed graphs. After an
intended change to the diagrams, regenerate them with

    UPDATE_GOLDEN=1 python -m pytest tests/test_viz.py -k golden

and review the diff (render one with `dot -Tpng tests/golden/cnn_grads.dot -o /tmp/g.png`).
Tests that run Graphviz's `dot` are marked `dot` and skip where it is not installed.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import tinygrad_nd as tnd
import tinygrad_nd.nn.functional as F
from tinygrad_nd import autograd, nn, viz
from tinygrad_nd.viz import style

GOLDEN = Path(__file__).resolve().parent / "golden"
ROOT = Path(__file__).resolve().parent.parent
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot binary")


# ----------------------------------------------------------------------------- helpers
def fixed(*shape, scale=0.1, offset=0):
    """Deterministic values in [-0.3, 0.3] * scale-ish, exactly representable in float32."""
    n = math.prod(shape)
    values = ((np.arange(n) + offset) % 7 - 3).astype(np.float32) * np.float32(scale)
    return values.reshape(shape)


def mlp_graph():
    """x (4, 3) -> sigmoid(x @ w1 + b1) @ w2 -> mean squared error against t, with plain ops."""
    x = tnd.tensor(fixed(4, 3, scale=0.5))
    w1 = tnd.tensor(fixed(3, 5, offset=1), requires_grad=True)
    b1 = tnd.tensor(fixed(5, offset=2), requires_grad=True)
    w2 = tnd.tensor(fixed(5, 2, offset=3), requires_grad=True)
    t = tnd.tensor(fixed(4, 2, offset=4))
    h = (x @ w1 + b1).sigmoid()
    loss = ((h @ w2 - t) ** 2).mean()
    return loss, {"x": x, "w1": w1, "b1": b1, "w2": w2, "t": t}


def nodes_of(text):
    """{dot id: label as plain text lines} for every node line."""
    found = {}
    for key, label in re.findall(r"^\t+(\w+) \[label=(<.*?>|\"[^\"]*\")[,\]]", text, re.M):
        plain = re.sub(r"<[^>]+>", "", label[1:-1].replace("<BR/>", "\n"))
        found[key] = "\n".join(line.strip() for line in plain.split("\n"))
    return found


def edges_of(text):
    """[(src, dst, attributes text)] for every visible edge."""
    return [(a, b, rest) for a, b, rest in re.findall(r"^\t+(\w+) -> (\w+)(.*)$", text, re.M)
            if "invis" not in rest]


def key_of(text, first_line):
    """The id of the one node whose label starts with the line ``first_line``."""
    matches = [k for k, label in nodes_of(text).items() if label.split("\n")[0] == first_line]
    assert len(matches) == 1, f"{first_line!r} starts {len(matches)} labels: {matches}"
    return matches[0]


def check_golden(name, text):
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing {path}: run UPDATE_GOLDEN=1 pytest tests/test_viz.py"
    assert text == path.read_text(), (
        f"DOT text differs from {path}; if the change is intended, regenerate with "
        "UPDATE_GOLDEN=1 python -m pytest tests/test_viz.py -k golden")


class Stub:
    """A stand-in module: named_modules()/named_parameters() as PyTorch, attributes for children."""

    def __init__(self, **children):
        self._children = children
        for k, v in children.items():
            setattr(self, k, v)

    def named_modules(self, prefix=""):
        yield prefix, self
        for k, v in self._children.items():
            if isinstance(v, Stub):
                yield from v.named_modules(f"{prefix}.{k}" if prefix else k)

    def named_parameters(self, prefix=""):
        for k, v in self._children.items():
            name = f"{prefix}.{k}" if prefix else k
            if isinstance(v, Stub):
                yield from v.named_parameters(name)
            else:
                yield name, v


class Dense(Stub):
    pass


class Act(Stub):
    pass


class Net(Stub):
    pass


def stub_net():
    """Net(body=Net(fc=Dense(weight, bias), act=Act()), head=Dense(weight)), run by hand under
    module_scope as Module.__call__ would."""
    fc = Dense(weight=tnd.tensor(fixed(3, 4), requires_grad=True),
               bias=tnd.tensor(fixed(4, offset=1), requires_grad=True))
    act = Act()
    body = Net(fc=fc, act=act)
    head = Dense(weight=tnd.tensor(fixed(4, 2, offset=2), requires_grad=True))
    net = Net(body=body, head=head)
    x = tnd.tensor(fixed(2, 3, scale=1.0))
    with autograd.module_scope(net):
        with autograd.module_scope(body):
            with autograd.module_scope(fc):
                h = x @ fc.weight + fc.bias
            with autograd.module_scope(act):
                h = h.tanh()
        with autograd.module_scope(head):
            out = h @ head.weight
    return out.sum(), net, x


def clusters_of(text):
    """{cluster label: [node ids directly inside]} and the nesting as {label: parent label}."""
    members, parents, stack = {}, {}, []
    for line in text.splitlines():
        if re.match(r"^\t+subgraph cluster_\d+ \{$", line):
            stack.append(None)
        elif stack and stack[-1] is None and (m := re.match(r'^\t+graph \[label="([^"]*)"', line)):
            stack[-1] = m.group(1)
            members[m.group(1)] = []
            parents[m.group(1)] = stack[-2] if len(stack) > 1 else None
        elif re.match(r"^\t+\}$", line):
            stack.pop()
        elif stack and (m := re.match(r"^\t+(\w+) \[label=", line)):
            members[stack[-1]].append(m.group(1))
    return members, parents


# ----------------------------------------------------------------------------- golden
def test_golden_mlp_forward():
    loss, params = mlp_graph()
    check_golden("mlp.dot", viz.to_dot(loss, params=params))


def test_golden_mlp_after_backward():
    loss, params = mlp_graph()
    loss.backward(retain_graph=True)
    check_golden("mlp_grads.dot", viz.to_dot(loss, params=params))


def digits_cnn():
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(24, 3))
    with tnd.no_grad():  # fixed weights: the golden text must not follow changes of init
        for i, (_, p) in enumerate(model.named_parameters()):
            p.data[...] = fixed(*p.shape, offset=i)
    x = tnd.tensor(fixed(2, 1, 8, 8, scale=1.0))
    out = model(x)
    loss = (out * out).mean()
    return model, x, loss


def test_golden_cnn_after_backward():
    model, x, loss = digits_cnn()
    loss.backward(retain_graph=True)
    text = viz.to_dot(loss, params={"x": x, **dict(model.named_parameters())})
    check_golden("cnn_grads.dot", text)
    assert "conv_nd" in text and "max_pool_nd" in text and "groups=2" in text


def test_text_is_identical_across_runs_and_rebuilds():
    first, params = mlp_graph()
    again, params2 = mlp_graph()
    text = viz.to_dot(first, params=params)
    assert viz.to_dot(first, params=params) == text  # same graph twice
    assert viz.to_dot(again, params=params2) == text  # an identical graph built again
    first.backward(retain_graph=True)
    again.backward(retain_graph=True)
    assert viz.to_dot(first, params=params) == viz.to_dot(again, params=params2)


def test_text_is_identical_in_a_fresh_interpreter():
    code = ("import sys; sys.path.insert(0, 'tests'); import test_viz, tinygrad_nd.viz as v; "
            "loss, p = test_viz.mlp_graph(); sys.stdout.write(v.to_dot(loss, params=p))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONHASHSEED": "123"})
    loss, params = mlp_graph()
    assert out.stdout == viz.to_dot(loss, params=params)


# ----------------------------------------------------------------------------- structure
def test_nodes_and_edges_follow_the_data_flow():
    loss, params = mlp_graph()
    text = viz.to_dot(loss, params=params)
    nodes, edges = nodes_of(text), edges_of(text)
    x, w1, out = key_of(text, "x"), key_of(text, "w1"), key_of(text, "output")
    assert "(4, 3) float32 cpu" in nodes[x]
    assert "(3, 5) float32 cpu" in nodes[w1]
    matmuls = [k for k, label in nodes.items() if label == "matmul"]
    assert len(matmuls) == 2
    pairs = [(src, dst) for src, dst, _ in edges]
    assert (x, matmuls[0]) in pairs and (w1, matmuls[0]) in pairs  # inputs -> op
    assert [src for src, dst, _ in edges if dst == out] == [key_of(text, "div")]  # op -> loss
    # every op and tensor is reached from the inputs: ids count up along the flow
    sources = {dst: [s for s, d, _ in edges if d == dst] for _, dst, _ in edges}
    assert all(sources.get(k) for k in nodes if k.startswith("op"))
    # intermediate results carry their shapes on the edges, leaves do not
    assert any('label=" (4, 5)"' in rest for _, _, rest in edges)
    assert all("label" not in rest for src, _, rest in edges if src.startswith("t"))
    assert "value " in nodes[out]  # the scalar loss shows its value
    assert "(4, 2) float32 cpu" in nodes[key_of(text, "t")]


def test_ops_show_their_static_parameters():
    conv_nd, max_pool_nd = getattr(F, "conv_nd", None), getattr(F, "max_pool_nd", None)
    if conv_nd is None:  # until nn.functional re-exports them
        from tinygrad_nd.nn.functional_conv import conv_nd, max_pool_nd

    x = tnd.tensor(fixed(1, 4, 9, 9, scale=1.0))
    w = tnd.tensor(fixed(6, 2, 3, 3), requires_grad=True)
    y = conv_nd(x, w, stride=2, padding=1, dilation=2, groups=2)
    y = max_pool_nd(y, 2, stride=1, padding=1)
    loss = y.sum(dim=(2, 3)).sum()
    text = viz.to_dot(loss)
    conv = nodes_of(text)[key_of(text, "conv_nd")]
    for part in ("stride=(2, 2)", "padding=(1, 1)", "dilation=(2, 2)", "groups=2"):
        assert part in conv
    pool = nodes_of(text)[key_of(text, "max_pool_nd")]
    for part in ("kernel_size=(2, 2)", "stride=(1, 1)", "padding=(1, 1)"):
        assert part in pool
    assert "dim=(2, 3)" in text


def test_hide_intermediate_drops_edge_shapes_only():
    loss, params = mlp_graph()
    full = viz.to_dot(loss, params=params)
    hidden = viz.to_dot(loss, params=params, hide_intermediate=True)
    assert "label=\" (" in full and "label=\" (" not in hidden
    assert nodes_of(full) == nodes_of(hidden)
    assert [(a, b) for a, b, _ in edges_of(full)] == [(a, b) for a, b, _ in edges_of(hidden)]


def test_roots_list_and_several_roots():
    a = tnd.tensor([1.0, 2.0], requires_grad=True)
    h = a * 3.0
    y1, y2 = h.sum(), (h * h).sum()
    text = viz.to_dot(y1, y2, params={"a": a})
    assert viz.to_dot([y1, y2], params={"a": a}) == text
    assert sum(label.startswith("output") for label in nodes_of(text).values()) == 2
    assert len([label for label in nodes_of(text).values() if label == "mul"]) == 2  # h is shared


def test_leaf_root_and_bad_arguments():
    a = tnd.tensor([1.0, 2.0], requires_grad=True)
    assert "output" in viz.to_dot(a)
    with pytest.raises(ValueError, match="at least one root"):
        viz.to_dot()
    with pytest.raises(TypeError, match="root 1 is a ndarray"):
        viz.to_dot(a, np.ones(2))
    with pytest.raises(ValueError, match="max_nodes must be a positive int"):
        viz.to_dot(a, max_nodes=0)
    with pytest.raises(TypeError, match=r"params\['w'\] is a list"):
        viz.to_dot(a, params={"w": [1.0]})
    with pytest.raises(TypeError, match="params must map names to tensors"):
        viz.to_dot(a, params=[a])
    with pytest.raises(TypeError, match="modules must be a Module"):
        viz.to_dot(a, modules=42)
    with pytest.raises(ValueError, match="rankdir"):
        viz.to_dot(a, rankdir="sideways")


def test_a_long_chain_needs_no_recursion():
    x = tnd.tensor([0.5], requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0
    text = viz.to_dot(y.sum(), params={"x": x}, hide_intermediate=True)
    assert len([1 for label in nodes_of(text).values() if label == "mul"]) == 3000


# ----------------------------------------------------------------------------- max_nodes
def test_max_nodes_caps_the_count_and_summarises_the_rest():
    x = tnd.tensor(fixed(3), requires_grad=True)
    y = x
    for _ in range(20):
        y = (y * 1.5).tanh()
    loss = y.sum()
    full = nodes_of(viz.to_dot(loss, params={"x": x}))
    text = viz.to_dot(loss, params={"x": x}, max_nodes=10)
    nodes = nodes_of(text)
    drawn = [k for k in nodes if k != "summary"]
    assert len(drawn) == 10
    summary = nodes["summary"]
    total_ops = sum(k.startswith("op") for k in full)
    drawn_ops = sum(k.startswith("op") for k in drawn)
    left = re.match(r"\.\.\. (\d+) more ops: (.*)", summary)
    assert left and int(left.group(1)) == total_ops - drawn_ops
    counts = dict(reversed(part.split(" ")) for part in left.group(2).split("; ")[0].split(", "))
    assert sum(int(v) for v in counts.values()) == total_ops - drawn_ops
    assert set(counts) <= {"mul", "tanh"} and "more tensors" in summary  # x and 20 constants
    # the nodes kept are those nearest the loss, and the summary feeds the cut
    assert "output" in " ".join(nodes.values())
    assert any(src == "summary" for src, _, _ in edges_of(text))
    assert viz.to_dot(loss, params={"x": x}, max_nodes=1000) == viz.to_dot(loss, params={"x": x})


# ----------------------------------------------------------------------------- gradients
def test_grad_norms_after_backward_match_numpy():
    loss, params = mlp_graph()
    before = viz.to_dot(loss, params=params)
    assert "|grad|" not in before and "L2 norm of the gradient" not in before
    loss.backward(retain_graph=True)
    text = viz.to_dot(loss, params=params)
    for name in ("w1", "b1", "w2"):
        p = params[name]
        label = nodes_of(text)[key_of(text, name)]
        assert f"|grad| {np.linalg.norm(p.grad.numpy().astype(np.float64)):.2e}" in label
        assert f"|value| {np.linalg.norm(p.numpy().astype(np.float64)):.2e}" in label
    assert "|grad|" not in nodes_of(text)[key_of(text, "x")]  # needs no grad
    assert "L2 norm of the gradient" in text  # the legend
    hidden = viz.to_dot(loss, params=params, show_grads=False)
    assert "|grad|" not in hidden and "L2 norm of the gradient" not in hidden


@pytest.mark.parametrize("grad_norm, fill", [
    (0.0, style.ZERO_FILL), (1e-9, "#4575b4"), (1e-5, "#abd9e9"), (0.5, "#a6d96a"),
    (50.0, "#fee08b"), (1e5, "#fdae61")], ids=["zero", "vanishing", "small", "healthy",
                                               "large", "exploding"])
def test_colour_scale_runs_from_vanishing_to_exploding(grad_norm, fill):
    w = tnd.tensor([3.0, 4.0], requires_grad=True)
    loss = (w * 2.0).sum()
    w.grad = tnd.tensor([0.6 * grad_norm, 0.8 * grad_norm])  # L2 norm grad_norm
    text = viz.to_dot(loss, params={"w": w})
    line = next(li for li in text.splitlines() if "<B>w</B>" in li)
    assert f'fillcolor="{fill}"' in line
    assert f"|grad| {grad_norm:.2e}" in line and "|value| 5.00e+00" in line
    assert fill in text.split("L2 norm of the gradient")[1]  # explained by the legend


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_nan_and_inf_gradients_are_marked_loudly(bad):
    w = tnd.tensor([1.0, 2.0], requires_grad=True)
    v = tnd.tensor([1.0, 2.0], requires_grad=True)
    loss = (w * v).sum()
    w.grad = tnd.tensor([1.0, float(bad)])
    v.grad = tnd.tensor([1.0, 1.0])
    text = viz.to_dot(loss, params={"w": w, "v": v})
    line = next(li for li in text.splitlines() if "<B>w</B>" in li)
    word = "NaN" if bad == "nan" else "Inf"
    assert f"<B>grad {word}</B>" in line
    assert f'fillcolor="{style.NONFINITE_FILL}"' in line and 'penwidth="3"' in line
    assert "NaN or Inf gradient" in text
    ok = next(li for li in text.splitlines() if "<B>v</B>" in li)
    assert style.NONFINITE_FILL not in ok


def test_leaves_without_grad_after_backward_are_flagged():
    w = tnd.tensor([1.0, 2.0], requires_grad=True)
    unused = tnd.tensor([1.0], requires_grad=True)
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    side = (unused * 1.0).sum()  # in the drawing, never differentiated
    text = viz.to_dot(loss, side, params={"w": w, "u": unused})
    line = next(li for li in text.splitlines() if "<B>u</B>" in li)
    assert "no grad" in line and "dashed" in line


def test_freed_graph_is_drawn_with_a_note_and_the_parameters():
    loss, params = mlp_graph()
    loss.backward()  # frees the graph
    with pytest.warns(UserWarning, match="retain_graph=True"):
        text = viz.to_dot(loss, params=params)
    nodes = nodes_of(text)
    assert "freed by backward()" in nodes[key_of(text, "div")]
    for name in ("w1", "b1", "w2"):  # still drawn, with their gradients
        assert "|grad|" in nodes[key_of(text, name)]
    assert "retain_graph=True" in nodes["note"] and "freed by backward()" in nodes["note"]
    # the model's parameters by default, in their modules, stacked in definition order
    model, x, loss = digits_cnn()
    loss.backward()
    with pytest.warns(UserWarning, match="freed"):
        text = viz.to_dot(loss, modules=model)
    members, _ = clusters_of(text)
    assert [nodes_of(text)[k].split("\n")[0] for k in members["0: Conv2d"]] == ["0.weight", "0.bias"]
    chain = re.findall(r'^\t(t\d+) -> (t\d+) \[style="invis"\]', text, re.M)
    names = [nodes_of(text)[k].split("\n")[0] for k in [chain[0][0]] + [b for _, b in chain]]
    assert names == [name for name, _ in model.named_parameters()]


def test_gradients_of_device_tensors(device):
    w = tnd.tensor([3.0, 4.0], device=device, requires_grad=True)
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    text = viz.to_dot(loss, params={"w": w})
    line = next(li for li in text.splitlines() if "<B>w</B>" in li)
    assert f"float32 {w.device}" in line and "|grad| 1.00e+01" in line


# ----------------------------------------------------------------------------- modules
def test_stub_modules_become_nested_clusters():
    loss, net, x = stub_net()
    text = viz.to_dot(loss, params={"x": x}, modules=net)
    members, parents = clusters_of(text)
    assert parents == {"Net": None, "body: Net": "Net", "body.fc: Dense": "body: Net",
                       "head: Dense": "Net"}
    labels = nodes_of(text)
    fc = {labels[k].split("\n")[0] for k in members["body.fc: Dense"]}
    assert fc == {"body.fc.weight", "body.fc.bias", "matmul", "add"}
    assert {labels[k].split("\n")[0] for k in members["head: Dense"]} == {"head.weight", "matmul"}
    # a module that ran one op and has no parameters titles that op instead of a box
    assert "body.act: Act" not in members
    tanh = key_of(text, "body.act: Act")
    assert tanh in members["body: Net"] and labels[tanh] == "body.act: Act\ntanh"
    # the input and the loss stay outside the model
    assert key_of(text, "x") not in sum(members.values(), [])
    # modules found from the recorded scope: the same picture without passing modules
    assert viz.to_dot(loss, params={"x": x}) == text
    # params default to the model's named parameters
    assert viz.to_dot(loss, modules=net).count("body.fc.weight") == 1
    assert "subgraph" not in viz.to_dot(loss, params={"x": x}, modules=False)


def test_nn_model_clusters_and_loss_module():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    criterion = nn.MSELoss()
    x, target = tnd.tensor(fixed(5, 3, scale=1.0)), tnd.tensor(fixed(5, 2))
    loss = criterion(model(x), target)
    text = viz.to_dot(loss, params={"x": x, **dict(model.named_parameters())})
    members, parents = clusters_of(text)
    assert parents["0: Linear"] == "Sequential" and parents["2: Linear"] == "Sequential"
    assert {nodes_of(text)[k].split("\n")[0] for k in members["0: Linear"]} >= {"0.weight", "0.bias"}
    # the loss module records one op (the mse_loss primitive): no box, the op is titled instead
    assert "MSELoss" not in parents
    (loss_label,) = [label for label in nodes_of(text).values() if "mse_loss" in label]
    assert loss_label.split("\n")[:2] == ["MSELoss", "mse_loss"]


def test_loss_module_of_several_ops_gets_a_box_holding_its_constants():
    class HalfSquaredError(nn.Module):
        def forward(self, input, target):
            diff = input - target
            return (diff * diff).sum() / 10.0

    model = nn.Linear(3, 2)
    x, target = tnd.tensor(fixed(5, 3, scale=1.0)), tnd.tensor(fixed(5, 2))
    loss = HalfSquaredError()(model(x), target)
    text = viz.to_dot(loss, params={"x": x})
    members, parents = clusters_of(text)
    assert parents["HalfSquaredError"] is None  # the loss module: its own box, named by its class
    # the divisor, a number lifted inside the loss module, sits in its box
    assert "10" in [nodes_of(text)[k] for k in members["HalfSquaredError"]]


def test_data_path_is_one_column_and_modules_follow_each_other():
    model, x, loss = digits_cnn()
    text = viz.to_dot(loss, params={"x": x, **dict(model.named_parameters())})
    labels = nodes_of(text)
    grouped = {k for k in labels if re.search(rf'^\t+{k} \[.*group="data"', text, re.M)}
    ops = {labels[k].split("\n")[0] for k in grouped if k.startswith("op")}
    assert {"conv_nd", "matmul", "mean" if "mean" in ops else "mul"} <= ops
    assert "1: ReLU" in ops  # a titled op keeps its group
    assert key_of(text, "x") in grouped and key_of(text, "0.weight") not in grouped
    # each conv weight is ranked below the op before its module (an invisible edge)
    invisible = re.findall(r'^\t(\w+) -> (\w+) \[style="invis"\]', text, re.M)
    assert (key_of(text, "x"), key_of(text, "0.weight")) in invisible
    pool = key_of(text, "2: MaxPool2d")
    assert (pool, key_of(text, "3.weight")) in invisible


# ----------------------------------------------------------------------------- graphviz
def test_draw_graph_is_a_digraph_of_the_same_text():
    graphviz = pytest.importorskip("graphviz")
    loss, params = mlp_graph()
    g = viz.draw_graph(loss, params=params, hide_intermediate=True)
    assert isinstance(g, graphviz.Digraph)
    assert g.source == viz.to_dot(loss, params=params, hide_intermediate=True)


def test_missing_graphviz_package_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz raises ImportError
    loss, params = mlp_graph()
    with pytest.raises(ImportError, match="pip install graphviz"):
        viz.draw_graph(loss, params=params)
    with pytest.raises(ImportError, match="saved at") as info:
        viz.render(loss, params=params, path=tmp_path / "g.svg")
    assert "apt-get install graphviz" in str(info.value)
    assert (tmp_path / "g.dot").read_text() == viz.to_dot(loss, params=params)


def test_missing_dot_writes_the_dot_file_and_says_how_to_install(monkeypatch, tmp_path):
    pytest.importorskip("graphviz")
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    loss, params = mlp_graph()
    with pytest.raises(viz.GraphvizNotFoundError) as info:
        viz.render(loss, params=params, path=tmp_path / "graph.png")
    message = str(info.value)
    for hint in ("apt-get install graphviz", "brew install graphviz", "conda install graphviz",
                 "pip install graphviz` installs only the Python"):
        assert hint in message
    dot_file = tmp_path / "graph.dot"
    assert str(dot_file) in message and info.value.dot_path == str(dot_file)
    assert dot_file.read_text() == viz.to_dot(loss, params=params)
    assert not (tmp_path / "graph.png").exists()
    assert isinstance(info.value, RuntimeError)


def test_render_checks_the_format(tmp_path):
    loss, params = mlp_graph()
    with pytest.raises(ValueError, match="ends in .png but format='svg'"):
        viz.render(loss, path=tmp_path / "g.png", format="svg")
    with pytest.raises(ValueError, match="format must be one of"):
        viz.render(loss, path=tmp_path / "g.gif")
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.dot
@needs_dot
@pytest.mark.parametrize("fmt", ["svg", "png", "pdf"])
def test_render_for_real(fmt, tmp_path):
    model, x, loss = digits_cnn()
    loss.backward(retain_graph=True)
    path = viz.render(loss, path=tmp_path / f"cnn.{fmt}",
                      params={"x": x, **dict(model.named_parameters())})
    data = Path(path).read_bytes()
    assert path == str(tmp_path / f"cnn.{fmt}") and not (tmp_path / "cnn.dot").exists()
    if fmt == "svg":
        root = ET.fromstring(data)
        assert root.tag.endswith("svg")
        words = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
        for name in ("conv_nd", "max_pool_nd", "relu", "matmul", "0.weight", "3.bias",
                     "6.weight", "|grad|", "L2 norm of the gradient"):
            assert name in words
    elif fmt == "png":
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
        width, height = struct.unpack(">II", data[16:24])
        assert 200 < width < 5000 and 500 < height < 10000 and height > width
    else:
        assert data[:5] == b"%PDF-" and b"%%EOF" in data[-1024:]


@pytest.mark.dot
@needs_dot
def test_render_keeps_the_dot_file_on_request_and_appends_the_suffix(tmp_path):
    loss, params = mlp_graph()
    path = viz.render(loss, path=tmp_path / "graph", format="png", keep_dot=True, params=params)
    assert path == str(tmp_path / "graph.png") and Path(path).read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "graph.dot").read_text() == viz.to_dot(loss, params=params)


# ----------------------------------------------------------------------------- command line
def test_cli_prints_dot_text(capsys):
    assert viz.main(["--model", "mlp", "--input-shape", "2,5", "--out", "-"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("digraph tinygrad_nd {") and "(2, 5) float32 cpu" in text
    assert "0.weight" in text and "2: Linear" in text


def test_cli_cnn_follows_the_number_of_spatial_dims(capsys):
    assert viz.main(["--model", "cnn", "--input-shape", "1,2,4,4,8", "--loss", "--out", "-"]) == 0
    text = capsys.readouterr().out
    assert "features.0: Conv3d" in text and "features.2: MaxPool3d" in text
    assert "(1, 16, 1, 1, 2)" in text and "CrossEntropyLoss" in text


def test_cli_bad_input_shape(capsys):
    with pytest.raises(SystemExit):
        viz.main(["--model", "cnn", "--input-shape", "1,1,2,2", "--out", "-"])
    assert "at least 4" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        viz.main(["--input-shape", "1,a"])
    assert "comma-separated ints" in capsys.readouterr().err


def test_cli_without_dot_explains_and_fails(monkeypatch, tmp_path, capsys):
    pytest.importorskip("graphviz")
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert viz.main(["--out", str(tmp_path / "g.svg")]) == 1
    assert "apt-get install graphviz" in capsys.readouterr().err
    assert (tmp_path / "g.dot").exists()


@pytest.mark.dot
@needs_dot
def test_cli_module_renders_the_digits_cnn_after_backward(tmp_path):
    out = tmp_path / "cnn.svg"
    done = subprocess.run([sys.executable, "-m", "tinygrad_nd.viz", "--model", "cnn",
                           "--input-shape", "1,1,8,8", "--backward", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout
    words = " ".join(t.text or "" for t in ET.parse(out).getroot().iter() if t.tag.endswith("text"))
    assert "features.0: Conv2d" in words and "classifier.1: Linear" in words and "|grad|" in words


@pytest.mark.dot
@needs_dot
def test_render_graphs_example_writes_the_documented_diagrams(tmp_path, capsys):
    pytest.importorskip("sklearn")  # load_digits reads scikit-learn's bundled copy
    import importlib.util

    spec = importlib.util.spec_from_file_location("render_graphs", ROOT / "examples" / "render_graphs.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    written = example.main(["--out", str(tmp_path)])
    names = sorted(Path(p).name for p in written)
    assert names == ["deep_sigmoid_mlp.svg", "digits_cnn_backward.svg", "digits_cnn_forward.svg"]
    def words(path):
        return [t.text or "" for t in ET.parse(path).getroot().iter() if t.tag.endswith("text")]

    for name in names:  # what docs/visualization.md shows, and what it says is in it
        assert f"images/{name}" in (ROOT / "docs" / "visualization.md").read_text()
        assert "|grad|" in " ".join(words(tmp_path / name)) or name == "digits_cnn_forward.svg"
        # the committed diagram is up to date (same text; coordinates may vary with dot's version)
        assert sorted(words(ROOT / "docs" / "images" / name)) == sorted(words(tmp_path / name)), (
            f"docs/images/{name} is stale: regenerate it with python examples/render_graphs.py")
    forward = (tmp_path / "digits_cnn_forward.svg").read_text()
    assert "features.0: Conv2d" in forward and "classifier.1: Linear" in forward
    # the first sigmoid layer's weight gradient has vanished: dark blue
    deep = ET.parse(tmp_path / "deep_sigmoid_mlp.svg").getroot()
    for group in deep.iter("{http://www.w3.org/2000/svg}g"):
        texts = [t.text for t in group.iter("{http://www.w3.org/2000/svg}text")]
        if "0.weight" in texts:
            fills = [p.get("fill") for p in group.iter("{http://www.w3.org/2000/svg}polygon")]
            assert style.GRAD_SCALE[0][2] in fills
            break
    else:
        raise AssertionError("no 0.weight node in deep_sigmoid_mlp.svg")


def test_a_module_run_twice_gets_no_cyclic_layout_hint():
    cell = nn.Linear(3, 3)
    model = nn.Sequential(cell)  # the same cell, called twice with a tanh between
    x = tnd.tensor(fixed(2, 3, scale=1.0))
    with autograd.module_scope(model):
        h = model(x).tanh()
        loss = cell(h).sum()
    text = viz.to_dot(loss, params={"x": x})
    invisible = re.findall(r'^\t(\w+) -> (\w+) \[style="invis"\]', text, re.M)
    weight = key_of(text, "0.weight")
    sources = {dst: [src for src, d, _ in edges_of(text) if d == dst] for _, dst, _ in edges_of(text)}

    def upstream(node):
        seen, stack = set(), [node]
        while stack:
            for src in sources.get(stack.pop(), []):
                if src not in seen:
                    seen.add(src)
                    stack.append(src)
        return seen

    assert invisible and all(dst != weight or weight not in upstream(src) for src, dst in invisible)
    assert [src for src, dst in invisible if dst == weight] == [key_of(text, "x")]
