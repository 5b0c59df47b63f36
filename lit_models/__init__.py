"""LightningModules: thin wrappers (steps, metrics, optimiser wiring) around ``lit_models.components``.

Adding a model is one new file here that subclasses :class:`ClassifierModule` and sets ``self.net``;
import it below so ``--model NAME`` finds it.
"""

from lit_models.base import ClassifierModule
from lit_models.mlp import MLPClassifier

__all__ = ["ClassifierModule", "MLPClassifier"]
