"""The course's MLP on the NumPy autograd engine: no hand-written layer backward, ``loss.backward()`` walks the graph.

Recipe: ``configs/autograd_mlp.yaml``; the network is :class:`~lit_models.components.autograd.mlp.AutogradMLP`.
"""

from __future__ import annotations

from lit_models.components.autograd.mlp import AutogradMLP
from lit_models.numpy_base import NumpyMLPBase


class AutogradMLPClassifier(NumpyMLPBase):
    """``input_size -> hidden_sizes -> num_classes`` built from engine operations (matmul, expand, activation, cross-entropy)."""

    net_class = AutogradMLP
