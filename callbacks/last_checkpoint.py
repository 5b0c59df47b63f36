"""``checkpoints/last.ckpt``: always the newest training state, written atomically.

Lightning's ``ModelCheckpoint(save_last=True)`` refreshes ``last.ckpt`` only when it also saves a top-k
checkpoint, so after a validation that did not improve ``val/acc`` the file is stale, and a resumed
run silently repeats work. This callback saves after every validation during fit, every
``every_n_train_steps`` steps (mid-epoch, for long epochs), and at the end of training. It writes to a
temporary file and renames it, so a run killed while saving never leaves a truncated ``last.ckpt``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn


class LastCheckpoint(Callback):
    def __init__(self, dirpath: str | None = None, every_n_train_steps: int = 0, filename: str = "last.ckpt"):
        if every_n_train_steps < 0:
            raise ValueError(f"--last_checkpoint.every_n_train_steps must be >= 0, got {every_n_train_steps}")
        self.dirpath, self.every_n_train_steps, self.filename = dirpath, every_n_train_steps, filename
        self._saved_step = -1

    @property
    def path(self) -> Path:
        if self.dirpath is None:
            raise RuntimeError("LastCheckpoint.dirpath was not set")
        return Path(self.dirpath) / self.filename

    def save(self, trainer: Trainer) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run or trainer.state.fn != TrainerFn.FITTING:
            return
        if trainer.global_step == self._saved_step:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        trainer.save_checkpoint(tmp)  # collective: every rank calls it, rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
        trainer.strategy.barrier("last_checkpoint")
        self._saved_step = trainer.global_step

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.every_n_train_steps and trainer.global_step % self.every_n_train_steps == 0:
            self.save(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.save(trainer)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.save(trainer)
