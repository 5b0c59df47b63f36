"""Every fit ends with a validation of its last step.

Lightning validates every ``val_check_interval`` steps (or at epoch ends); when ``max_steps`` is not a
multiple of the interval, the steps after the last check are never validated: the footer's "last val/acc",
``best.ckpt`` and ``val_acc.csv`` describe an earlier model, and a run shorter than one interval has no
``best.ckpt`` at all.

At the last training step this callback sets ``trainer.should_stop``, the documented way to end a fit early
(Trainer docs, "should_stop"). Lightning's training loop answers it the way it answers ``EarlyStopping``: it
validates at that step, then stops, where it was about to stop anyway. So the final validation runs inside
the fit like any other (``ModelCheckpoint`` sees it, ``LastCheckpoint`` saves after it, every DDP rank takes
part), and a resumed run validates at the same step as an uninterrupted one. When a validation was due
at that step anyway, Lightning runs just the one.

Not covered: a fit ended by ``max_time`` (Lightning's own timer sets ``should_stop``, and so validates),
and with ``check_val_every_n_epoch`` > 1 a last epoch that is not a validation epoch (Lightning validates
only in those epochs, whatever ``should_stop`` says).
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer


class ValidateAtEnd(Callback):
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if is_last_step(trainer, batch_idx):
            trainer.should_stop = True


def is_last_step(trainer: Trainer, batch_idx: int) -> bool:
    """Whether the step just trained is the fit's last, by ``max_steps`` or by the last batch of ``max_epochs``."""
    if trainer.max_steps is not None and trainer.max_steps >= 0 and trainer.global_step >= trainer.max_steps:
        return True
    max_epochs = trainer.max_epochs
    return max_epochs is not None and max_epochs >= 0 and trainer.current_epoch + 1 >= max_epochs and batch_idx + 1 >= trainer.num_training_batches
