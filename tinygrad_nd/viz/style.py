"""How nodes look: labels, the gradient colour scale and its legend, DOT attribute syntax.

Labels use Graphviz's HTML-like syntax (bold op names, small parameter lines). Every number is
formatted with a fixed precision, so the same graph always gives the same text.
"""
from __future__ import annotations

import math

from .. import backend
from ..tensor import Tensor

FONT = "Helvetica,Arial,sans-serif"

# The gradient colour scale on log10 of the gradient's L2 norm: (upper bound, legend text, fill,
# font colour). Rules of thumb: float32 keeps about 7 digits, so below 1e-6 an update barely
# moves an O(1) weight; norms past 1e3 usually mean a learning rate or a loss scale is off.
GRAD_SCALE = (
    (-6.0, "vanishing: below 1e-6", "#4575b4", "white"),
    (-3.0, "small: 1e-6 to 1e-3", "#abd9e9", "black"),
    (1.0, "healthy: 1e-3 to 10", "#a6d96a", "black"),
    (3.0, "large: 10 to 1e3", "#fee08b", "black"),
    (math.inf, "exploding: 1e3 and above", "#fdae61", "black"),
)
ZERO_FILL = "#d9d9d9"  # a gradient of exactly zero: no signal reaches the tensor
NONFINITE_FILL = "#e31a1c"  # NaN or Inf: red, white bold text, thick double border

OP_FILL, OP_BORDER = "#dbe6f4", "#4a6fa5"
PARAM_FILL, INPUT_FILL, OUTPUT_FILL = "#fff2cc", "#eeeeee", "#e2f0d9"

GRAPH_ATTRS = dict(rankdir="TB", fontname=FONT, fontsize="10", nodesep="0.3", ranksep="0.3",
                   newrank="true")
NODE_ATTRS = dict(shape="box", style="rounded,filled", fillcolor=OP_FILL, color=OP_BORDER,
                  fontname=FONT, fontsize="11", height="0.3", margin="0.1,0.04")
EDGE_ATTRS = dict(fontname=FONT, fontsize="9", fontcolor="#444444", color="#555555",
                  arrowsize="0.7")


# ----------------------------------------------------------------------------- DOT syntax
class Html(str):
    """A label in Graphviz's HTML-like syntax: written between ``<`` and ``>``, not quoted."""


def html(text) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def quote(text) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def attrs(values: dict) -> str:
    """``[k="v", label=<...>]``."""
    body = ", ".join(f"{k}=<{v}>" if isinstance(v, Html) else f"{k}={quote(v)}"
                     for k, v in values.items())
    return f"[{body}]"


def small(text, color=None) -> str:
    font = f' COLOR="{color}"' if color else ""
    return f'<FONT POINT-SIZE="9"{font}>{text}</FONT>'


# ----------------------------------------------------------------------------- values
def shape_text(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def format_value(value) -> str:
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
        return shape_text([format_value(v) for v in value])
    if isinstance(value, type(backend.float32)):  # a numpy dtype
        return str(value)
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # a numpy or cupy array
        if value.ndim == 0:
            return format_value(value.item())
        return f"{value.dtype}[{', '.join(str(s) for s in value.shape)}]"
    return type(value).__name__


def format_param(name, value) -> str:
    if name == "padding" and isinstance(value, tuple) and value and all(
            isinstance(p, tuple) and len(p) == 2 and p[0] == p[1] for p in value):
        value = tuple(lo for lo, _ in value)  # symmetric (lo, hi) pairs read as PyTorch's padding
    text = format_value(value)
    return f"{name}={text if len(text) <= 40 else text[:37] + '...'}"


def wrap(parts, width=34, sep="  "):
    """Join ``parts`` with ``sep``, starting a new line before ``width`` characters."""
    lines, line = [], ""
    for part in parts:
        if line and len(line) + len(sep) + len(part) > width:
            lines.append(line)
            line = part
        else:
            line = f"{line}{sep}{part}" if line else part
    return lines + ([line] if line else [])


def norm(array):
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


def grad_style(grad_norm, bad=None) -> dict:
    """DOT attributes that colour a node by its gradient norm on ``GRAD_SCALE``."""
    if bad is not None:
        return dict(fillcolor=NONFINITE_FILL, fontcolor="white", color="#7f0000", penwidth="3",
                    peripheries="2")
    if grad_norm == 0.0:
        return dict(fillcolor=ZERO_FILL)
    level = math.log10(grad_norm)
    for bound, _, fill, font in GRAD_SCALE:
        if level < bound:
            return dict(fillcolor=fill) if font == "black" else dict(fillcolor=fill, fontcolor=font)
    raise AssertionError("unreachable: the last bound is infinite")


# ----------------------------------------------------------------------------- nodes
def op_node(fn, released) -> dict:
    """An op: its registry name in bold, then its static parameters (None and False left out)."""
    lines = [f"<B>{html(fn.name)}</B>"]
    shown = [format_param(k, v) for k, v in getattr(fn, "params", {}).items()
             if v is not None and v is not False]
    lines += [small(html(line)) for line in wrap(shown)]
    extra = {}
    if released:
        lines.append(small("<I>freed by backward()</I>"))
        extra = dict(style="rounded,dashed,filled", fillcolor="white")
    return {"label": Html("<BR/>".join(lines)), **extra}


def is_constant(t, name, role) -> bool:
    """An unnamed one-element input that needs no grad: a Python number lifted by an op."""
    return role == "input" and name is None and t.data.size == 1 and not t.requires_grad


def tensor_node(t, name, role, show_grads) -> dict:
    """A tensor: ``role`` is "param" (a leaf that requires grad), "input" or "output"."""
    if is_constant(t, name, role):
        value = backend.to_host(t.data).reshape(()).item()  # a lifted Python number
        return dict(label=format_value(value), shape="ellipse", style="filled",
                    fillcolor="white", fontsize="9", width="0.3", height="0.25",
                    margin="0.04,0.02")
    title = name if name is not None else ("output" if role == "output" else "tensor")
    lines = [f"<B>{html(title)}</B>", small(f"{html(shape_text(t.shape))} {t.dtype} {html(t.device)}")]
    fill = {"param": PARAM_FILL, "input": INPUT_FILL, "output": OUTPUT_FILL}[role]
    extra = dict(style="filled", fillcolor=fill)
    if role == "output" and t.data.size == 1:
        value, bad = norm(t.data)
        lines.append(small(f"value {backend.to_host(t.data).reshape(()).item():.4g}"))
        if bad:
            extra.update(grad_style(value, bad))
    if show_grads and (t.grad is not None or (t.requires_grad and t.grad_fn is None)):
        if t.grad is None:
            lines.append(small("<I>no grad</I>"))
            extra.update(style="filled,dashed", fillcolor="white")
        else:
            grad_norm, bad = norm(t.grad.data)
            value, _ = norm(t.data)
            grad_text = f"<B>grad {bad}</B>" if bad else f"|grad| {grad_norm:.2e}"
            lines.append(small(f"{grad_text}  |value| {value:.2e}"))
            extra.update(grad_style(grad_norm, bad))
    return {"label": Html("<BR/>".join(lines)), **extra}


def titled(node: dict, title: str) -> dict:
    """``node`` with a small grey ``title`` line above its label (a one-op module's name)."""
    return {**node, "label": Html(f"{small(html(title), '#555555')}<BR/>{node['label']}")}


def legend() -> Html:
    """The colour scale as an HTML-like table (the graph's label)."""
    rows = [f'<TR><TD BGCOLOR="{NONFINITE_FILL}"><FONT COLOR="white"><B>NaN</B></FONT></TD>'
            '<TD ALIGN="LEFT">NaN or Inf gradient</TD></TR>']
    for _, text, fill, _ in reversed(GRAD_SCALE):
        rows.append(f'<TR><TD BGCOLOR="{fill}"> </TD><TD ALIGN="LEFT">{html(text)}</TD></TR>')
    rows.append(f'<TR><TD BGCOLOR="{ZERO_FILL}"> </TD><TD ALIGN="LEFT">exactly zero</TD></TR>')
    rows.append('<TR><TD BGCOLOR="white"> </TD><TD ALIGN="LEFT">white, dashed: no .grad</TD></TR>')
    return Html('<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="3">'
                '<TR><TD COLSPAN="2"><B>L2 norm of the gradient</B></TD></TR>' + "".join(rows)
                + "</TABLE>")


def note(text) -> dict:
    """A free-standing note in italics, wrapped to short lines."""
    body = "<BR/>".join(html(line) for line in wrap(text.split(" "), width=48, sep=" "))
    return dict(label=Html(f"<I>{body}</I>"), shape="plaintext", style="", fontsize="10")


def summary(left_out) -> dict | None:
    """The node that counts the items cut by ``max_nodes`` (by op name), or None."""
    if not left_out:
        return None
    ops = {}
    for kind, obj in left_out:
        if kind == "op":
            ops[obj.name] = ops.get(obj.name, 0) + 1
    tensors = sum(1 for kind, _ in left_out if kind == "tensor")
    parts = [f"{n} {name}" for name, n in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))]
    text = f"... {sum(ops.values())} more ops" + (": " + ", ".join(parts[:6]) if parts else "")
    text += ", ..." if len(parts) > 6 else ""
    text += f"; {tensors} more tensors" if tensors else ""
    return dict(label=text, shape="note", style="dashed", fillcolor="white", fontsize="10")
