"""The deep weight-normalised MLP (course best-MLP recipe: ``configs/wn_mlp.yaml``)."""

from __future__ import annotations

from typing import Any

from jsonargparse.typing import NonNegativeInt, PositiveInt

from core.arg_types import Fraction
from lit_models.base import ClassifierModule
from lit_models.components.mlp_choices import Activation, Init
from lit_models.components.wn_mlp import DEFAULT_HIDDEN, WeightNormMLP


class WeightNormMLPClassifier(ClassifierModule):
    """``3072-2000-1000-200x7-10``, weight norm on every Linear, dropout on the first 5 layers' inputs."""

    def __init__(
        self,
        hidden_sizes: list[PositiveInt] = list(DEFAULT_HIDDEN),  # noqa: B008
        dropout: Fraction = 0.2,
        dropout_layers: NonNegativeInt = 5,
        activation: Activation = "relu",
        init: Init = "default",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.net = WeightNormMLP(
            hidden_sizes=hidden_sizes, num_classes=self.num_classes, dropout=dropout, dropout_layers=dropout_layers, activation=activation, init=init
        )
