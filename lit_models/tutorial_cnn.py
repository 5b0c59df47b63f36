"""The PyTorch "Training a classifier" tutorial CNN as a model (``--model TutorialCNNClassifier``).

The tutorial's recipe (report 003b): inputs in [-1, 1], batch 4, ``torch.optim.SGD`` lr 0.001 momentum 0.9,
2 epochs; the tutorial's per-class print is ``--per_class.print_format tutorial``.
"""

from __future__ import annotations

from typing import Any

from lit_models.base import ClassifierModule
from lit_models.components.tutorial_cnn import TutorialCNN


class TutorialCNNClassifier(ClassifierModule):
    """Two 5x5 convs with max-pooling, then 400 -> 120 -> 84 -> 10 (the tutorial's ``Net``, 62,006 parameters)."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.net = TutorialCNN(num_classes=self.num_classes)
