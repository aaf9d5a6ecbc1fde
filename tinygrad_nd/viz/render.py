"""Pictures of the DOT text through the ``graphviz`` Python package and Graphviz's ``dot``.

The package is optional (``pip install graphviz``) and imported inside the functions. It only
drives the ``dot`` program, which comes from a system package (apt, brew, conda).
"""
from __future__ import annotations

import os

from .dot import to_dot

FORMATS = ("svg", "png", "pdf")

INSTALL_HINT = (
    "Install Graphviz, which provides `dot`: `apt-get install graphviz` (Debian, Ubuntu), "
    "`brew install graphviz` (macOS), `conda install graphviz`, or see "
    "https://graphviz.org/download/. Note that `pip install graphviz` installs only the Python "
    "bindings, not the `dot` program."
)


class GraphvizNotFoundError(RuntimeError):
    """Graphviz's ``dot`` (or the ``graphviz`` Python package) is missing; ``dot_path`` holds
    the DOT file that was written instead of the picture."""

    def __init__(self, message, dot_path):
        super().__init__(message)
        self.dot_path = dot_path


def _import_graphviz(what, dot_path=None):
    try:
        import graphviz
    except ImportError:
        saved = f" The DOT source was saved at {dot_path}." if dot_path else ""
        raise ImportError(f"{what} needs the graphviz Python package: `pip install graphviz` (or "
                          f"`pip install 'tinygrad-nd[viz]'`).{saved} Rendering also needs "
                          f"Graphviz's `dot` program. {INSTALL_HINT}") from None
    return graphviz


def draw_graph(*roots, **options):
    """The graph of ``roots`` as a ``graphviz.Digraph`` (it displays inline in Jupyter).

    Parameters
    ----------
    *roots : Tensor
        As for :func:`to_dot`.
    **options
        ``params``, ``show_grads``, ``hide_intermediate``, ``max_nodes``, ``modules``,
        ``rankdir``: as for :func:`to_dot`.

    Returns
    -------
    graphviz.Digraph
        Its ``source`` is exactly ``to_dot(*roots, **options)``.

    Raises
    ------
    ImportError
        The ``graphviz`` Python package is missing (the message says how to install it).

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd.viz import draw_graph, to_dot
    >>> w = tnd.ones(2, requires_grad=True)
    >>> g = draw_graph((w * w).sum(), params={"w": w})
    >>> g.source == to_dot((w * w).sum(), params={"w": w})
    True
    """
    graphviz = _import_graphviz("draw_graph")
    text = to_dot(*roots, **options)
    graph = graphviz.Digraph("tinygrad_nd")
    head, _, body = text.partition("\n")  # "digraph tinygrad_nd {", then the body and "}"
    graph.body.extend(body[:-len("}\n")].splitlines(keepends=True))
    return graph


def render(*roots, path, format=None, keep_dot=False, **options) -> str:
    """Write a picture of the graph of ``roots`` to ``path`` through Graphviz's ``dot``.

    Parameters
    ----------
    *roots : Tensor
        As for :func:`to_dot`.
    path : str or os.PathLike
        The image file to write, e.g. ``"graph.svg"``; ``.{format}`` is appended when it does
        not end in ``.svg``, ``.png`` or ``.pdf`` (``render(loss, path="graph")`` writes
        ``graph.svg``).
    format : {"svg", "png", "pdf"}, optional
        Defaults to the suffix of ``path`` (``"svg"`` for a path without one).
    keep_dot : bool
        Keep the DOT source next to the image (``graph.dot`` for ``graph.svg``).
    **options
        ``params``, ``show_grads``, ``hide_intermediate``, ``max_nodes``, ``modules``,
        ``rankdir``: as for :func:`to_dot`.

    Returns
    -------
    str
        The path of the image written.

    Raises
    ------
    GraphvizNotFoundError
        ``dot`` is not on PATH: the DOT file is written next to ``path`` (its location is in
        the message and in ``error.dot_path``) and the message says how to install Graphviz.
    ImportError
        The ``graphviz`` Python package is missing (the DOT file is written as well).
    ValueError
        An unknown format, or one that contradicts the suffix of ``path``.

    Examples
    --------
    >>> import os, tempfile
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import viz
    >>> w = tnd.ones(2, requires_grad=True)
    >>> path = os.path.join(tempfile.mkdtemp(), "graph.svg")
    >>> try:
    ...     written = viz.render((w * w).sum(), path=path, params={"w": w})
    ... except viz.GraphvizNotFoundError as err:  # no `dot` on PATH: the DOT file instead
    ...     written = err.dot_path
    >>> os.path.exists(written)
    True
    """
    path = os.fspath(path)
    stem, suffix = os.path.splitext(path)
    suffix = suffix[1:].lower()
    if format is None:
        if suffix and suffix not in FORMATS:
            raise ValueError(f"render: format must be one of {FORMATS}; cannot write {path!r} "
                             "(use a path ending in .svg, .png or .pdf, or pass format=)")
        format = suffix or "svg"
    if format not in FORMATS:
        raise ValueError(f"render: format must be one of {FORMATS}, got {format!r}")
    if suffix in FORMATS and suffix != format:
        raise ValueError(f"render: path {path!r} ends in .{suffix} but format={format!r}")
    if suffix not in FORMATS:
        stem, path = path, f"{path}.{format}"
    dot_path = stem + ".dot"
    text = to_dot(*roots, **options)
    with open(dot_path, "w", encoding="utf-8") as f:
        f.write(text)
    graphviz = _import_graphviz("render", dot_path)
    try:
        graphviz.render("dot", format, dot_path, outfile=path, quiet=True)
    except graphviz.ExecutableNotFound:
        raise GraphvizNotFoundError(
            f"render: Graphviz's `dot` program was not found on PATH, so {path} was not "
            f"written. The DOT source is saved at {dot_path}; once Graphviz is installed, "
            f"`dot -T{format} {dot_path} -o {path}` renders it. {INSTALL_HINT}", dot_path) from None
    if not keep_dot:
        os.remove(dot_path)
    return path
