"""A small reverse-mode autograd engine in NumPy (the course's derivations as operations).

``graph.py`` holds nodes and the backward walk; ``elementwise.py``, ``shapes.py`` and ``softmax.py``
the operations, each with a hand-derived backward; ``mlp.py`` an MLP built from them.
"""

from lit_models.components.autograd import ops
from lit_models.components.autograd.graph import Context, Function, Node, no_grad
from lit_models.components.autograd.mlp import AutogradMLP

__all__ = ["AutogradMLP", "Context", "Function", "Node", "no_grad", "ops"]
