"""The course's NumPy MLP (every layer's backward derived by hand), trained like any other model.

Recipes: ``configs/numpy_mlp.yaml`` (UvA 2019); with ``l2`` and an epoch-wise LR decay it is also the Sapienza
2020 two-layer net (report 002a). The network is :class:`~lit_models.components.numpy_mlp.NumpyMLP`.
"""

from __future__ import annotations

from typing import Any

from jsonargparse.typing import NonNegativeFloat

from lit_models.components.numpy_mlp import NumpyMLP
from lit_models.numpy_base import NumpyMLPBase


class NumpyMLPClassifier(NumpyMLPBase):
    """``3072 -> hidden_sizes -> 10`` in NumPy with hand-written backward passes; softmax + cross-entropy on probabilities.

    Args:
        l2: lambda of the penalty ``lambda * sum ||W||^2`` over the weight matrices (no 1/2; biases are not
            penalised). It is part of the training loss: ``train/loss`` is cross-entropy + penalty, as the
            Sapienza two-layer net reports its loss; ``val/loss`` and ``test/loss`` stay cross-entropy alone.
            Unlike ``--model.optimizer.init_args.weight_decay`` (``2 * lambda``, same gradient on the weights),
            it leaves the biases alone and shows in the loss.
    """

    net_class = NumpyMLP

    def __init__(self, l2: NonNegativeFloat = 0.0, **kwargs: Any):
        super().__init__(**kwargs)

    def net_options(self) -> dict[str, Any]:
        return {"l2": float(self.hparams.l2)}
