"""The MLP classifier (course recipe: ``configs/mlp.yaml``)."""

from __future__ import annotations

from typing import Any, Literal

from jsonargparse.typing import PositiveInt

from core.arg_types import Fraction
from lit_models.base import ClassifierModule
from lit_models.components.mlp import MLP
from lit_models.components.mlp_choices import Activation, Init


class MLPClassifier(ClassifierModule):
    """``input_size -> hidden_sizes -> num_classes`` with ReLU (or ``activation``), optional dropout and optional batch norm (``torch``/``custom``).

    ``init``: ``default`` (``nn.Linear``'s own draw), ``course`` (N(0, 1e-4^2), zero biases) or ``he``.
    ``input_size``: features per input, 3072 for a flattened 3x32x32 image, 2 for the synthetic points
    (``--data.source synthetic``); a flag rather than read from the data, so the checkpoint records it and the
    parameter count is known before any data is read (the DataModule refuses a size that does not fit).
    """

    def __init__(
        self,
        hidden_sizes: list[PositiveInt] = [100],  # noqa: B006
        dropout: Fraction = 0.0,
        norm: Literal["none", "torch", "custom"] = "none",
        activation: Activation = "relu",
        init: Init = "default",
        input_size: PositiveInt = 3072,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.net = MLP(in_features=input_size, hidden_sizes=hidden_sizes, num_classes=self.num_classes, dropout=dropout, norm=norm, activation=activation, init=init)
