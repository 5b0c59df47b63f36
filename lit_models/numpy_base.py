"""The Lightning side of the NumPy models: one base for the hand-derived NumPy MLP and the autograd MLP.

All math (forward, backward, optimiser update) is NumPy. Lightning sees the network through
:class:`~lit_models.components.numpy_bridge.NumpyNetModule`, whose parameters share memory with the
NumPy arrays, and steps a ``torch.optim.Optimizer`` (by default
:class:`~lit_models.components.numpy_sgd.NumpySGD`) that updates them in place. So the Trainer counts
steps, schedulers, callbacks and checkpoints work as for any model, and the learning rate is
``--model.optimizer.init_args.lr`` as everywhere. Validation, test and predict reuse the base steps.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from jsonargparse.typing import PositiveInt
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor

from lit_models.base import ClassifierModule
from lit_models.components.mlp_choices import Activation, Init, check_hidden_sizes
from lit_models.components.numpy_bridge import NumpyNetModule
from lit_models.components.numpy_sgd import NumpySGD


def _numpy_sgd(params: Any) -> NumpySGD:
    return NumpySGD(params, lr=0.01)


class NumpyMLPBase(ClassifierModule):
    """Manual optimisation: the NumPy network's backward fills the gradients, the optimizer steps once per batch.

    Args:
        hidden_sizes: widths of the hidden layers.
        activation: hidden-layer nonlinearity.
        init: weight/bias initialisation (``lit_models.components.mlp_choices``): a scheme name, or the std of
            N(0, std^2) weights with zero biases; the course used ``course`` (= ``1.0e-4``).
        init_seed: seed of the initial weights (independent of ``seed_everything``).
        dtype: NumPy float type of weights and computation.
        input_size: features per input: 3072 (a flattened image), 2 (the synthetic points); recorded in the checkpoint.
        optimizer: any optimizer that updates CPU parameters in place; NumPy SGD by default.
    """

    net_class: ClassVar[type]  # the NumPy network: NumpyMLP or AutogradMLP

    def __init__(
        self,
        hidden_sizes: list[int] = [100],  # noqa: B006
        activation: Activation = "relu",
        init: Init = "course",
        init_seed: int = 0,
        dtype: Literal["float32", "float64"] = "float32",
        optimizer: OptimizerCallable = _numpy_sgd,
        input_size: PositiveInt = 3072,
        **kwargs: Any,
    ):
        super().__init__(optimizer=optimizer, **kwargs)
        if self.hparams.get("label_smoothing"):
            raise ValueError(f"--model.label_smoothing must be 0 for the NumPy models (their cross-entropy has none), got {self.hparams.label_smoothing}")
        self.automatic_optimization = False
        numpy_net = self.net_class(
            in_features=input_size,
            hidden_sizes=check_hidden_sizes(hidden_sizes), num_classes=self.num_classes, activation=activation, init=init, seed=init_seed, dtype=np.dtype(dtype).type,
            **self.net_options(),
        )
        self.net = NumpyNetModule(numpy_net)

    def net_options(self) -> dict[str, Any]:
        """Constructor arguments only one of the NumPy networks has (a subclass's own hyperparameters, already in
        ``self.hparams`` here: ``save_hyperparameters`` records the arguments of every ``__init__`` in the chain)."""
        return {}

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        loss, scores = self.net.loss_and_backward(x, y)
        self.optimizers().step()
        if self.scheduler_interval == "step":
            self._step_scheduler()
        self.train_acc.update(scores, y)
        self.log_train_loss(loss)
        return loss

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        if self.scheduler_interval == "epoch":
            self._step_scheduler()

    def _step_scheduler(self) -> None:
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()
