"""A crash or a kill at a known step, the first time only, so that a study's re-run can resume the run (tests only)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from lightning.pytorch import Callback

MARKER_DIR_ENV = "ONCE_AT_STEP_DIR"


class OnceAtStep(Callback):
    """After step ``step``: ``action`` ``raise`` (RuntimeError) or a signal name (SIGKILL, ...) to this process,
    once per ``$ONCE_AT_STEP_DIR`` (it leaves ``<action>-<step>`` there); without the variable it does nothing."""

    def __init__(self, step: int, action: str = "raise"):
        self.step, self.action = step, action

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        folder = os.environ.get(MARKER_DIR_ENV)
        marker = Path(folder or ".") / f"{self.action}-{self.step}"
        if not folder or trainer.global_step != self.step or marker.exists():
            return
        marker.write_text(f"{os.getpid()}\n")
        if self.action == "raise":
            raise RuntimeError(f"crash at step {self.step}")
        os.kill(os.getpid(), getattr(signal, self.action))
