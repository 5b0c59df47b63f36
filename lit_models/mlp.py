"""The MLP classifier (course recipe: ``configs/mlp.yaml``)."""

from __future__ import annotations

from typing import Any, Literal

from jsonargparse.typing import PositiveInt

from core.arg_types import Fraction
from lit_models.base import ClassifierModule
from lit_models.components.mlp import MLP
from lit_models.components.mlp_choices import Activation, Init


class MLPClassifier(ClassifierModule):
    """``3072 -> hidden_sizes -> 10`` with ReLU (or ``activation``), optional dropout and optional batch norm (``torch``/``custom``).

    ``init``: ``default`` (``nn.Linear``'s own draw), ``course`` (N(0, 1e-4^2), zero biases) or ``he``.
    """

    def __init__(
        self,
        hidden_sizes: list[PositiveInt] = [100],  # noqa: B006
        dropout: Fraction = 0.0,
        norm: Literal["none", "torch", "custom"] = "none",
        activation: Activation = "relu",
        init: Init = "default",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.net = MLP(hidden_sizes=hidden_sizes, num_classes=self.num_classes, dropout=dropout, norm=norm, activation=activation, init=init)
