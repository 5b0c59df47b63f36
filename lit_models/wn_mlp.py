"""The deep weight-normalised MLP (course best-MLP recipe: ``configs/wn_mlp.yaml``)."""

from __future__ import annotations

from typing import Any

from lit_models.base import ClassifierModule
from lit_models.components.wn_mlp import DEFAULT_HIDDEN, WeightNormMLP


class WeightNormMLPClassifier(ClassifierModule):
    """``3072-2000-1000-200x7-10``, weight norm on every Linear, dropout on the first 5 layers' inputs."""

    def __init__(self, hidden_sizes: list[int] = list(DEFAULT_HIDDEN), dropout: float = 0.2, dropout_layers: int = 5, **kwargs: Any):  # noqa: B008
        super().__init__(**kwargs)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"--model.dropout must be in [0, 1), got {dropout}")
        self.net = WeightNormMLP(hidden_sizes=hidden_sizes, num_classes=self.num_classes, dropout=dropout, dropout_layers=dropout_layers)
