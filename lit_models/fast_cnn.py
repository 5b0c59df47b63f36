"""The airbench94-style fast CNN (``configs/fast_cnn.yaml``; on the CPU add ``--config configs/cpu.yaml``).

The LightningModule adds two things to the plain :class:`~lit_models.components.fast_cnn.FastCNN`:

* on a fresh ``fit`` (not on resume, not when evaluating a checkpoint) the whitening filters are computed
  from up to ``whiten_images`` training-split images, which the DataModule hands out already normalised
  (``train_images``); validation and test images are never used. On resume or evaluation the filters
  come from the checkpoint like every other weight;
* the whitening bias trains during the first ``whiten_bias_epochs`` epochs only. Afterwards it stops
  requiring a gradient, as airbench94 does: nothing upstream of the first block's conv needs one then, so
  each backward pass skips that conv's input gradient (a few per cent of a step). Under DDP (even with one
  process) and the other multi-device strategies, whose wrappers expect every trainable parameter's
  gradient, it keeps requiring one and its gradient is dropped before
  each optimizer step instead. Either way neither the update, the momentum nor the weight decay moves it.
"""

from __future__ import annotations

from typing import Any

import torch
from jsonargparse.typing import NonNegativeInt, PositiveFloat, PositiveInt, restricted_number_type
from lightning.pytorch.strategies import SingleDeviceStrategy

from lit_models.base import ClassifierModule
from lit_models.components.fast_cnn import FastCNN, patch_whitening_weights

# PyTorch's BatchNorm momentum convention (the weight of the new batch): 0 would never update the statistics.
Momentum = restricted_number_type("Momentum", float, [(">", 0.0), ("<=", 1.0)])


class FastCNNClassifier(ClassifierModule):
    """Fast CNN: whitening conv + three conv blocks (``widths``), scale-free BatchNorm, scaled logits."""

    def __init__(
        self,
        widths: list[PositiveInt] = [64, 256, 256],  # noqa: B006
        whiten_kernel_size: PositiveInt = 2,
        whiten_eps: PositiveFloat = 5e-4,
        whiten_images: PositiveInt = 5000,
        whiten_bias_epochs: NonNegativeInt = 3,
        bn_momentum: Momentum = 0.4,
        bn_eps: PositiveFloat = 1e-12,
        logit_scale: PositiveFloat = 1 / 9,
        identity_init: bool = True,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        # The ranges are the annotations' (the CLI refuses a bad value before anything is built); an empty
        # list passes list[PositiveInt], so it is refused here (a one-line ConfigError under the CLI).
        if not widths:
            raise ValueError(f"--model.widths must be a non-empty list of positive ints, got {widths}")
        self.net = FastCNN(
            widths=widths, num_classes=self.num_classes, whiten_kernel_size=whiten_kernel_size, bn_momentum=bn_momentum,
            bn_eps=bn_eps, logit_scale=logit_scale, identity_init=identity_init,
        )

    def on_fit_start(self) -> None:
        if self.trainer.ckpt_path is None:  # fresh fit; a resumed one has the checkpoint's filters
            self.init_whitening()

    def init_whitening(self) -> None:
        datamodule = self.trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "train_images"):
            raise RuntimeError(
                "FastCNNClassifier computes its whitening filters from training images: fit it with a DataModule that has "
                "train_images(max_n) (CIFAR10DataModule), or call net.init_whitening(images) yourself and fit from a checkpoint."
            )
        images = datamodule.train_images(self.hparams.whiten_images)
        weight = patch_whitening_weights(images, self.hparams.whiten_kernel_size, self.hparams.whiten_eps)
        # Every rank computes the same filters; rank 0's are broadcast so DDP replicas agree bit for bit.
        self.net.set_whitening(self.trainer.strategy.broadcast(weight, src=0))

    def on_train_epoch_start(self) -> None:
        if isinstance(self.trainer.strategy, SingleDeviceStrategy):  # DDP (one process too) wraps the model in a reducer
            self.net.whiten.bias.requires_grad_(self.current_epoch < self.hparams.whiten_bias_epochs)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.current_epoch >= self.hparams.whiten_bias_epochs:
            self.net.whiten.bias.grad = None  # optimizers skip parameters without a gradient
