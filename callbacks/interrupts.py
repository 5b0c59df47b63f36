"""Ctrl-C (SIGINT) and SIGTERM (a scheduler's pre-emption notice) over a run's whole life.

``train.py`` installs one handler, :data:`STOP`, for the whole command. What a signal does depends on the phase:

* **start-up** (parsing, the run directory, loading the data, building the model, DDP initialisation, the
  sanity check): nothing has been produced yet, so rank 0 stops at once (:class:`StartupInterrupted`); the
  session says so in one line and removes the run directory it created, or gives a resumed run its
  ``status.json`` back. Other DDP ranks leave at once with exit code 0: rank 0 speaks for the run, and
  Lightning SIGKILLs every process, rank 0 included, when a worker exits with any other code.
* **training**: the first signal is a *request*. :attr:`StopSignals.signum` is set, ``LastCheckpoint`` saves
  ``last.ckpt`` at the next step boundary and raises :class:`RunInterrupted`, which ``train.py`` turns into the
  resume command and exit code 128+N. A second Ctrl-C stops at once without saving (:class:`StoppedAtOnce`);
  a second SIGTERM changes nothing (schedulers may repeat theirs).
* **closing** (from the stop or the end of training until the command returns): a signal never interrupts
  the writing of a file. It cuts short the drawing of figures (:meth:`StopSignals.optional`); the session
  then says in one line which figures were not drawn and how to get them.

The default SIGINT handler would instead raise KeyboardInterrupt wherever the program happens to be (in the
middle of a step, or of ``savefig`` while the run closes), and Lightning's SIGTERM handling stops without
saving the current step. Without ``train.py`` (a Trainer built by hand), ``LastCheckpoint`` installs the
handler for the training phase alone.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

from lightning.pytorch.trainer.states import TrainerStatus

STARTING, TRAINING, CLOSING = "starting", "training", "closing"
T = TypeVar("T")


def signal_name(signum: int) -> str:
    return "SIGINT (Ctrl-C)" if signum == signal.SIGINT else signal.Signals(signum).name


class RunInterrupted(BaseException):
    """Training stopped on request after saving ``checkpoint``; not an error in the model or data.

    A BaseException (like KeyboardInterrupt) so that no ``except Exception`` on the way swallows it.
    """

    def __init__(self, signum: int, global_step: int = 0, checkpoint: str | None = None, message: str | None = None):
        self.signum, self.global_step, self.checkpoint = signum, global_step, checkpoint
        super().__init__(message or f"{signal.Signals(signum).name} at step {global_step}; saved {checkpoint}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention for "ended by signal N"


class StartupInterrupted(RunInterrupted):
    """A signal before training started: the run stopped before it produced anything."""

    def __init__(self, signum: int):
        super().__init__(signum, message=f"{signal.Signals(signum).name} during start-up")


class StoppedAtOnce(RunInterrupted):
    """A second Ctrl-C during training: stopped in the middle of a step; ``last.ckpt`` holds the last saved state."""

    def __init__(self, signum: int, global_step: int):
        super().__init__(signum, global_step, message=f"{signal.Signals(signum).name} again at step {global_step}: stopped without saving")


class _CutShort(BaseException):
    """Raised by the handler inside :meth:`StopSignals.optional` only, and caught there."""


class StopSignals:
    """The SIGINT/SIGTERM handler of one command, by phase (see the module docstring); restores the previous
    handlers on :meth:`uninstall`."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.phase: str | None = None
        self.worker = False
        self._previous: dict[int, Any] = {}
        self._installed_for_training = False
        self._clear()

    def _clear(self) -> None:
        self.signum: int | None = None  # the stop requested during training
        self.startup_signum: int | None = None
        self.closing_signum: int | None = None
        self.skipped: list[str] = []  # closing work a signal cut short
        self._cuttable = False
        self._trainer: Any = None

    # ------------------------------------------------------------------ phases
    def install(self, worker: bool = False) -> None:
        """From now on (start-up first) signals follow the phases; ``worker``: a DDP rank other than 0."""
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        self.uninstall()
        self._clear()
        self.worker, self.phase = worker, STARTING
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
        self.phase = None
        self._installed_for_training = False

    def training(self, trainer: Any) -> None:
        """Training starts: a signal becomes a request to stop at the next step boundary."""
        if threading.current_thread() is not threading.main_thread():
            return
        if not self._previous:  # no train.py: a Trainer built by hand; the handler lives for this training only
            self.install()
            self._installed_for_training = True
        else:  # Lightning's own SIGTERM handler (stop without saving) replaced ours during its set-up
            for sig in self.SIGNALS:
                signal.signal(sig, self._handle)
        self.signum, self._trainer, self.phase = None, trainer, TRAINING

    def closing(self) -> None:
        """Training stopped or ended: from now on a signal cuts figures short, never a file."""
        if self._installed_for_training:
            self.uninstall()
        elif self.phase is not None:
            self.phase = CLOSING

    # ------------------------------------------------------------------ closing work that may be cut short
    def optional(self, what: str, draw: Callable[[], T]) -> T | None:
        """``draw()`` (a figure, which a resume redraws), unless a signal during closing cuts it short or came
        before it; then ``what`` is noted in :attr:`skipped` and None returned."""
        if self.phase == CLOSING and self.closing_signum is not None:
            self.skipped.append(what)
            return None
        try:
            self._cuttable = self.phase == CLOSING
            result = draw()
            self._cuttable = False
            return result
        except _CutShort:
            self.skipped.append(what)
            return None
        finally:
            self._cuttable = False

    # ------------------------------------------------------------------ the handler
    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.phase == STARTING:
            if self.worker:
                os._exit(0)  # nothing of the run is this rank's to clean up; rank 0 reports
            self.startup_signum, self.phase = signum, CLOSING
            raise StartupInterrupted(signum)
        if self.phase == TRAINING and not (self._trainer is not None and self._trainer.state.status == TrainerStatus.INTERRUPTED):
            if self.signum is None:
                self.signum = signum
                if not self.worker:
                    print(f"\n{self._request_message(signum)}", flush=True)
            elif signum == signal.SIGINT:
                self.phase = CLOSING
                raise StoppedAtOnce(signum, int(self._trainer.global_step) if self._trainer is not None else 0)
            return
        # Closing (also while an exception unwinds through Lightning's on_exception hooks).
        if self.closing_signum is None:
            self.closing_signum = signum
        if self._cuttable:
            self._cuttable = False
            raise _CutShort

    @staticmethod
    def _request_message(signum: int) -> str:
        start = f"{signal_name(signum)} received: saving last.ckpt at the end of this step, then stopping"
        if signum == signal.SIGINT:
            return f"{start} (press Ctrl-C again to stop at once without saving)."
        return f"{start} (a SIGINT stops at once without saving)."


STOP = StopSignals()  # the process's one handler: signals are per process
