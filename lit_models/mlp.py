"""The MLP classifier (course recipe: ``configs/mlp.yaml``)."""

from __future__ import annotations

from typing import Any, Literal

from jsonargparse.typing import PositiveInt

from lit_models.base import ClassifierModule, Fraction
from lit_models.components.mlp import MLP


class MLPClassifier(ClassifierModule):
    """``3072 -> hidden_sizes -> 10`` with ReLU, optional dropout and optional batch norm (``torch``/``custom``)."""

    def __init__(self, hidden_sizes: list[PositiveInt] = [100], dropout: Fraction = 0.0, norm: Literal["none", "torch", "custom"] = "none", **kwargs: Any):  # noqa: B006
        super().__init__(**kwargs)
        self.net = MLP(hidden_sizes=hidden_sizes, num_classes=self.num_classes, dropout=dropout, norm=norm)
