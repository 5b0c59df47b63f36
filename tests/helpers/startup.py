"""A pause at a known moment of a run's start-up, so that a test can signal the run there (tests only)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from lightning.pytorch import Callback

MARKER_ENV = "PAUSE_IN_SETUP_MARKER"


class PauseInSetup(Callback):
    """When ``$PAUSE_IN_SETUP_MARKER`` names a file: in the ``setup`` hook of global rank ``rank`` (the data is
    loaded, DDP initialised, the model not yet on its device) writes this process's pid there, then sleeps
    ``seconds``; the test waits for the file and sends its signal while the run is still starting. Without the
    variable it does nothing, so a run and its resume can share one config."""

    def __init__(self, rank: int = 0, seconds: float = 240.0):
        self.rank, self.seconds = rank, seconds

    def setup(self, trainer, pl_module, stage) -> None:  # noqa: ANN001
        marker = os.environ.get(MARKER_ENV)
        if marker and trainer.global_rank == self.rank:
            Path(marker).write_text(f"{os.getpid()}\n")
            time.sleep(self.seconds)
