"""Ctrl-C (SIGINT) and SIGTERM (what a scheduler sends before pre-emption) as a *request* to stop.

The default SIGINT handler raises KeyboardInterrupt wherever the program happens to be, in the middle of a
step, and Lightning's SIGTERM handling stops without saving the current step. Instead, the first signal
only sets :attr:`InterruptRequest.signum`; ``LastCheckpoint`` saves ``last.ckpt`` at the next step
boundary and raises :class:`RunInterrupted`, which ``train.py`` turns into the resume command and a
non-zero exit. A second Ctrl-C raises KeyboardInterrupt at once, for a user who will not wait.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


class RunInterrupted(BaseException):
    """Training stopped on request after saving ``checkpoint``; not an error in the model or data.

    A BaseException (like KeyboardInterrupt) so that no ``except Exception`` on the way swallows it.
    """

    def __init__(self, signum: int, global_step: int, checkpoint: str):
        self.signum, self.global_step, self.checkpoint = signum, global_step, checkpoint
        super().__init__(f"{signal.Signals(signum).name} at step {global_step}; saved {checkpoint}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention for "ended by signal N"


class InterruptRequest:
    """Installs SIGINT/SIGTERM handlers that record the first signal; restores the previous handlers."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now; last.ckpt keeps the last saved state
        if self.signum is None:
            self.signum = signum
            print(f"\n{signal.Signals(signum).name} received: saving last.ckpt at the end of this step, then stopping "
                  "(press Ctrl-C again to stop at once without saving).", flush=True)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        self.signum = None
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
