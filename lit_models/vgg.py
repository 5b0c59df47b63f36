"""The mini-VGG CNN (``configs/vgg_course.yaml`` for the course recipe, ``configs/vgg.yaml`` for a modern one)."""

from __future__ import annotations

from typing import Any, Literal

from lit_models.base import ClassifierModule
from lit_models.components.vgg import COURSE_LAYOUT, MiniVGG


class VGGClassifier(ClassifierModule):
    """Conv-BN-ReLU blocks in the VGG-11 layout; ``norm`` picks torch's, the hand-written, or no batch norm."""

    def __init__(self, layout: list[int | str] = list(COURSE_LAYOUT), norm: Literal["torch", "custom", "none"] = "torch", **kwargs: Any):  # noqa: B008
        super().__init__(**kwargs)
        self.net = MiniVGG(layout=layout, num_classes=self.num_classes, norm=norm)
