"""Stop a run the moment its training loss is NaN or infinite, instead of training on garbage for hours.

Raises :class:`DivergenceError` naming the step, the last finite loss and, if one was saved, the
checkpoint from before the divergence (``LastCheckpoint`` runs after this callback, so the diverged
state is never saved). On a GPU, checking
costs one host sync, so by default it checks every step on the CPU and every 25 steps on a GPU
(``check_every_n_steps`` overrides both).
"""

from __future__ import annotations

import math
from typing import Any

from jsonargparse.typing import PositiveInt
from lightning.pytorch import Callback, LightningModule, Trainer

from callbacks.last_checkpoint import LastCheckpoint


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


class DivergenceGuard(Callback):
    def __init__(self, check_every_n_steps: PositiveInt | None = None):
        self.check_every_n_steps = check_every_n_steps
        self.last_finite: tuple[int, float] | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.check_every_n_steps is None:
            self.check_every_n_steps = 1 if trainer.strategy.root_device.type == "cpu" else 25

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None or trainer.global_step % self.check_every_n_steps:
            return
        value = float(loss.detach())
        if math.isfinite(value):
            self.last_finite = (trainer.global_step, value)
            return
        before = f"last finite loss {self.last_finite[1]:.6g} at step {self.last_finite[0]}" if self.last_finite else "no finite loss was seen"
        saved = [p for cb in trainer.checkpoint_callbacks if isinstance(cb, LastCheckpoint) and (p := cb.path).is_file()]
        kept = (f"{saved[0]} holds the last state saved before the divergence" if saved else
                "no checkpoint had been saved yet (last.ckpt is written at each validation and every --last_checkpoint.every_n_train_steps steps)")
        raise DivergenceError(
            f"Training diverged: loss is {value} at step {trainer.global_step} (epoch {trainer.current_epoch}); {before}. "
            f"Stopped at once; {kept}. "
            "Lower the learning rate, add gradient clipping (--trainer.gradient_clip_val), or check the inputs' scale."
        )
