"""A callback that raises at a given step: an in-process crash (cheaper than a SIGKILLed subprocess)."""

from lightning.pytorch import Callback


class CrashAtStep(Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_step == self.step:
            raise RuntimeError(f"crash at step {self.step}")
