"""The course's NumPy MLP (every layer's backward derived by hand), trained like any other model.

Recipe: ``configs/numpy_mlp.yaml``; the network is :class:`~lit_models.components.numpy_mlp.NumpyMLP`.
"""

from __future__ import annotations

from lit_models.components.numpy_mlp import NumpyMLP
from lit_models.numpy_base import NumpyMLPBase


class NumpyMLPClassifier(NumpyMLPBase):
    """``3072 -> hidden_sizes -> 10`` in NumPy with hand-written backward passes; softmax + cross-entropy on probabilities."""

    net_class = NumpyMLP
