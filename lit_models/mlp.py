"""The MLP classifier (course recipe: ``configs/mlp.yaml``)."""

from __future__ import annotations

from typing import Any, Literal

from lit_models.base import ClassifierModule
from lit_models.components.mlp import MLP


class MLPClassifier(ClassifierModule):
    """``3072 -> hidden_sizes -> 10`` with ReLU, optional dropout and optional batch norm (``torch``/``custom``)."""

    def __init__(self, hidden_sizes: list[int] = [100], dropout: float = 0.0, norm: Literal["none", "torch", "custom"] = "none", **kwargs: Any):  # noqa: B006
        super().__init__(**kwargs)
        if not hidden_sizes or any(h <= 0 for h in hidden_sizes):
            raise ValueError(f"--model.hidden_sizes must be a non-empty list of positive ints, got {hidden_sizes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"--model.dropout must be in [0, 1), got {dropout}")
        self.net = MLP(hidden_sizes=hidden_sizes, num_classes=self.num_classes, dropout=dropout, norm=norm)
