"""Shared classification LightningModule: loss, accuracy, logging and optimiser wiring.

Subclasses only build ``self.net`` (a plain ``nn.Module`` from ``lit_models.components``). Optimiser and
LR scheduler are injected as callables, so YAML/CLI pick them with ``class_path``/``init_args``
(``--model.optimizer torch.optim.AdamW --model.optimizer.lr 1e-3``) and checkpoints record the choice.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Literal

import lightning as L
import torch
from jsonargparse.typing import PositiveInt
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from core.arg_types import Fraction
from core.lightning_internals import FastHookNameMixin, logs_at_this_step
from lit_models.param_groups import apply_lr_multipliers, check_lr_multipliers, parameter_groups
from lit_models.tta import tta_logits

class CheckpointMismatchError(ValueError):
    """A checkpoint of another model class or architecture."""


def _sgd(params: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.01)


class RunningAccuracy(Metric):
    """Top-1 accuracy accumulated over training steps: two counters, summed across DDP ranks.

    Training only needs counts; ``MulticlassAccuracy`` validates its inputs and builds stat scores on
    every update (~150 vs ~70 us per step on a 2-core CPU, where a whole course-MLP step is ~5 ms).
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        # Persistent: a run resumed mid-epoch reports the same epoch accuracy as an uninterrupted one.
        self.add_state("correct", torch.tensor(0), dist_reduce_fx="sum", persistent=True)
        self.add_state("total", torch.tensor(0), dist_reduce_fx="sum", persistent=True)

    def update(self, scores: Tensor, target: Tensor) -> None:
        # In place: reassigning a state would go through nn.Module.__setattr__ (~4 us) every step.
        self.correct.add_((scores.argmax(1) == target).sum())
        self.total.add_(target.numel())

    def compute(self) -> Tensor:
        return self.correct.float() / self.total.clamp(min=1)


class ClassifierModule(FastHookNameMixin, L.LightningModule):
    """Cross-entropy classifier; logs ``train/loss`` (every ``log_every_n_steps``), ``train/acc`` (per epoch), ``val/loss``, ``val/acc``, ``test/*``.

    Every logged value carries ``step`` = the number of optimizer steps taken when it was measured (the
    training loss of the k-th batch at step k, a validation after N steps at N), the same numbers as the
    run directory's ``train_loss.csv``/``val_acc.csv``; Lightning's ``step`` key sets the loggers' x-axis.
    """

    net: nn.Module

    def __init__(
        self,
        optimizer: OptimizerCallable = _sgd,
        scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: Literal["step", "epoch"] = "step",
        num_classes: PositiveInt = 10,
        label_smoothing: Fraction = 0.0,
        no_weight_decay_on_norm_and_bias: bool = False,
        channels_last: bool = False,
        compile: bool = False,
        tta: Literal["none", "flip", "flip+translate"] = "none",
        lr_multipliers: dict[str, float] | None = None,
        lr_multipliers_keep_weight_decay: bool = True,
    ):
        super().__init__()
        self.save_hyperparameters()
        for key in ("optimizer", "scheduler"):
            # Under the CLI these are class_path/init_args dicts; a live callable (plain Python use) would
            # pickle code into the checkpoint and break weights_only loading, so it is not recorded.
            if callable(self.hparams.get(key)):
                self.hparams.pop(key)
        check_lr_multipliers(lr_multipliers or {})  # regular expressions: no type annotation can refuse a bad one
        self.tta, self.lr_multipliers, self.lr_multipliers_keep_weight_decay = tta, dict(lr_multipliers or {}), lr_multipliers_keep_weight_decay
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.scheduler_interval = scheduler_interval
        self.num_classes = num_classes
        self.no_weight_decay_on_norm_and_bias = no_weight_decay_on_norm_and_bias
        self.channels_last, self.compile_net = channels_last, compile
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.train_acc = RunningAccuracy()
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor) -> Tensor:
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.__dict__.get("_compiled_net", self.net)(x)

    def configure_model(self) -> None:
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if self.compile_net and "_compiled_net" not in self.__dict__:
            # Kept out of the module tree so checkpoints hold plain ``net.*`` keys, loadable without compile.
            self.__dict__["_compiled_net"] = torch.compile(self.net)

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        logits = self(x)
        loss = self.criterion(logits, y)
        self.train_acc.update(logits.detach(), y)
        self.log_train_loss(loss)
        return loss

    def log_train_loss(self, loss: Tensor) -> None:
        if self.is_logging_step():
            self.log("train/loss", loss, prog_bar=True)
            self.log("step", float(self.global_step + 1))  # this batch's loss belongs to the step it completes

    def is_logging_step(self) -> bool:
        """``self.log`` costs ~1 ms of Python per call on a 2-core CPU, as much as a whole MLP step, and on
        steps that don't log its value would be dropped anyway; ``LearningCurves`` still records every step."""
        return logs_at_this_step(self.trainer)

    def on_train_epoch_end(self) -> None:
        # Logged once per epoch: logging a Metric object every step costs Lightning ~2 ms (it moves the
        # metric to the device on every self.log call), more than a whole MLP step on the CPU.
        # compute() already sums the counters over DDP ranks; sync_dist only tells Lightning the value is global.
        self.log("train/acc", self.train_acc.compute(), sync_dist=True)
        self.log("step", float(self.global_step), sync_dist=True)
        self.train_acc.reset()

    def eval_logits(self, x: Tensor) -> Tensor:
        """Logits for validate/test/predict: with test-time augmentation ``tta`` (a hyperparameter, so
        ``--model.tta`` overrides it when evaluating a checkpoint)."""
        return tta_logits(self, x, self.tta)

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self.log("step", float(self.evaluated_step()), sync_dist=True)

    def on_test_epoch_end(self) -> None:
        self.log("step", float(self.evaluated_step()), sync_dist=True)

    def evaluated_step(self) -> int:
        """The step of the weights being evaluated: the current one in fit, the checkpoint's otherwise."""
        if self.trainer.state.fn == TrainerFn.FITTING:
            return self.trainer.global_step
        return self.global_step or getattr(self, "checkpoint_step", 0)

    def _eval_step(self, batch: tuple[Tensor, Tensor], stage: str, metric: MulticlassAccuracy) -> Tensor:
        x, y = batch
        logits = self.eval_logits(x)
        loss = nn.functional.cross_entropy(logits, y)
        metric(logits, y)
        self.log(f"{stage}/loss", loss, prog_bar=stage == "val", sync_dist=True)
        self.log(f"{stage}/acc", metric, prog_bar=stage == "val")
        return logits

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._eval_step(batch, "val", self.val_acc)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._eval_step(batch, "test", self.test_acc)

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        return torch.softmax(self.eval_logits(batch[0]).float(), dim=1)

    # ------------------------------------------------------------------ checkpoints
    def _refuse_averaged_resume_without_averaging(self, checkpoint: dict[str, Any]) -> None:
        """A WeightAverage checkpoint's ``state_dict`` is the average; only that callback restores the raw weights
        the optimizer state belongs to. Resuming without it would silently train on from the average."""
        if "raw_state_dict" not in checkpoint:
            return
        try:
            trainer = self.trainer
        except RuntimeError:  # load_from_checkpoint: no Trainer, nothing is resumed
            return
        if trainer.state.fn != TrainerFn.FITTING:
            return
        from callbacks.weight_average import WeightAverage

        if not any(isinstance(cb, WeightAverage) for cb in trainer.callbacks):
            raise CheckpointMismatchError(
                "The checkpoint was trained with callbacks.weight_average.WeightAverage (it holds averaged and raw weights); "
                "resume it with the same trainer.callbacks (python train.py fit --config <run dir>/config.yaml --ckpt_path ...), "
                "or evaluate it with validate/test/predict.")

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint of another model or shape before any weight is copied (no half-loaded model)."""
        self.checkpoint_step = int(checkpoint.get("global_step", 0))  # test/predict don't restore global_step
        saved_cls = (checkpoint.get("hyper_parameters") or {}).get("_class_path")
        mine = f"{type(self).__module__}.{type(self).__qualname__}"
        if saved_cls and saved_cls.rsplit(".", 1)[-1] != type(self).__name__:
            try:
                fitting = self.trainer.state.fn == TrainerFn.FITTING
            except RuntimeError:  # load_from_checkpoint: no Trainer attached
                fitting = False
            hint = ("Resume it with the run's own config (python train.py fit --config <run dir>/config.yaml --ckpt_path ...), "
                    "or start a new run without --ckpt_path.") if fitting else "Evaluate it without --model (train.py rebuilds the model from the checkpoint)."
            raise CheckpointMismatchError(f"The checkpoint holds a {saved_cls}, but the model is a {mine}. {hint}")
        self._refuse_averaged_resume_without_averaging(checkpoint)
        saved = checkpoint.get("state_dict", {})
        own = self.state_dict()
        missing, unexpected = sorted(set(own) - set(saved)), sorted(set(saved) - set(own))
        shapes = [f"{k}: checkpoint {tuple(saved[k].shape)} vs model {tuple(v.shape)}" for k, v in own.items() if k in saved and tuple(saved[k].shape) != tuple(v.shape)]
        if missing or unexpected or shapes:
            hp = {k: v for k, v in (checkpoint.get("hyper_parameters") or {}).items() if not k.startswith("_") and self.hparams.get(k) != v and k in self.hparams}
            raise CheckpointMismatchError(
                f"The checkpoint does not fit this {type(self).__name__}: "
                + "; ".join(filter(None, [
                    f"hyperparameters differ: {', '.join(f'{k}={v!r} in checkpoint vs {self.hparams[k]!r}' for k, v in hp.items())}" if hp else "",
                    f"shape mismatches: {', '.join(shapes[:4])}" if shapes else "",
                    f"missing keys: {', '.join(missing[:4])}" if missing else "",
                    f"unexpected keys: {', '.join(unexpected[:4])}" if unexpected else "",
                ]))
            )

    # ------------------------------------------------------------------ optimisation
    def parameter_groups(self) -> list[dict[str, Any]]:
        """One group, or two when norms and biases are exempt from weight decay (modern CNN recipes), split
        further by ``lr_multipliers`` (see :mod:`lit_models.param_groups`)."""
        return parameter_groups(self, self.no_weight_decay_on_norm_and_bias, self.lr_multipliers)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameter_groups())
        apply_lr_multipliers(optimizer, self.lr_multipliers_keep_weight_decay)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.build_scheduler(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval}}

    def total_training_steps(self) -> int:
        """Optimizer steps the whole fit will take; ``scripts/plot_lr_schedule.py`` overrides it (no Trainer there)."""
        return int(self.trainer.estimated_stepping_batches)

    def build_scheduler(self, optimizer: torch.optim.Optimizer, total_steps: int | None = None) -> Any:
        """Fill ``total_steps`` (OneCycleLR, WarmupCosineLR) from the trainer when the config leaves it unset."""
        factory = self.scheduler_factory
        target = factory.args[1] if isinstance(factory, functools.partial) and len(factory.args) > 1 else factory
        kwargs: dict[str, Any] = {}
        try:
            params = inspect.signature(target).parameters
        except (TypeError, ValueError):
            params = {}
        given = factory.keywords if isinstance(factory, functools.partial) else {}
        if "total_steps" in params and given.get("total_steps") is None:
            kwargs["total_steps"] = self.total_training_steps() if total_steps is None else total_steps
        factors = [g.get("lr_multiplier", 1.0) for g in optimizer.param_groups]
        if "max_lr" in params and isinstance(given.get("max_lr"), (int, float)) and any(f != 1.0 for f in factors):
            kwargs["max_lr"] = [given["max_lr"] * f for f in factors]  # OneCycleLR sets each group's LR from max_lr
        return factory(optimizer, **kwargs)
