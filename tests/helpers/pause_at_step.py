"""A pause at a known training step, so that a test can interrupt a run there from outside (tests only)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from lightning.pytorch import Callback

from callbacks.interrupts import STOP

MARKER_ENV = "PAUSE_AT_STEP_MARKER"


class PauseAtStep(Callback):
    """When ``$PAUSE_AT_STEP_MARKER`` names a file that does not exist yet: after step ``step`` writes this
    process's pid there and waits (up to ``seconds``) until a stop is requested (SIGTERM/SIGINT), which then
    saves ``last.ckpt`` at this step. Without the variable, or once the file exists (a resume), it does
    nothing, so an interrupted run, its resume and an uninterrupted reference share one config."""

    def __init__(self, step: int, seconds: float = 120.0):
        self.step, self.seconds = step, seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        marker = os.environ.get(MARKER_ENV)
        if not marker or trainer.global_step != self.step or Path(marker).exists():
            return
        Path(marker).write_text(f"{os.getpid()}\n")
        deadline = time.monotonic() + self.seconds
        while STOP.signum is None and time.monotonic() < deadline:
            time.sleep(0.05)
