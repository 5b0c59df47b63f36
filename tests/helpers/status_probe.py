"""Copies the run's ``status.json`` as it is at a given step, to see what a reader sees while the run trains (tests only)."""

from __future__ import annotations

import shutil
from pathlib import Path

from lightning.pytorch import Callback


class StatusAtStep(Callback):
    """At the start of step ``step + 1`` (after everything step ``step`` saved), copies ``status.json`` to ``copy``."""

    def __init__(self, step: int, copy: str):
        self.step, self.copy = step, copy

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_step == self.step:
            shutil.copy(Path(trainer.default_root_dir) / "status.json", self.copy)
