"""Graph diagrams: the recorded graph as DOT text, as a ``graphviz.Digraph``, or as a picture.

``to_dot`` needs nothing beyond the standard library; ``draw_graph`` needs the ``graphviz``
Python package and ``render`` also Graphviz's ``dot`` program. See docs/visualization.md.

Modules: ``dot`` (walking the tape, clusters and layout), ``style`` (labels, colours, the
legend), ``render`` (graphviz), ``cli`` (the ``python -m tinygrad_nd.viz`` command and its
example models).
"""
from .dot import to_dot
from .style import GRAD_SCALE
from .render import FORMATS, GraphvizNotFoundError, draw_graph, render
from .cli import example_model, main

__all__ = ["to_dot", "draw_graph", "render", "GraphvizNotFoundError", "GRAD_SCALE", "FORMATS",
           "example_model", "main"]
