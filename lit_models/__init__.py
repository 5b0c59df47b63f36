"""LightningModules: thin wrappers (steps, metrics, optimiser wiring) around ``lit_models.components``.

Adding a model is one new file here that subclasses :class:`ClassifierModule` and sets ``self.net``;
import it below so ``--model NAME`` finds it.
"""

from lit_models.autograd_mlp import AutogradMLPClassifier
from lit_models.base import ClassifierModule
from lit_models.fast_cnn import FastCNNClassifier
from lit_models.mlp import MLPClassifier
from lit_models.numpy_mlp import NumpyMLPClassifier
from lit_models.tutorial_cnn import TutorialCNNClassifier
from lit_models.vgg import VGGClassifier
from lit_models.wn_mlp import WeightNormMLPClassifier

__all__ = ["AutogradMLPClassifier", "ClassifierModule", "FastCNNClassifier", "MLPClassifier", "NumpyMLPClassifier", "TutorialCNNClassifier", "VGGClassifier", "WeightNormMLPClassifier"]
