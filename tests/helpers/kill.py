"""Callbacks that signal their own process at a given step: real interruptions, at reproducible places."""

import os
import signal

from lightning.pytorch import Callback


class SignalAtStep(Callback):
    """Sends ``signal`` (a name such as SIGINT, SIGTERM, SIGUSR1, SIGKILL) to this process after step ``step``.

    ``then_kill`` SIGKILLs the process ``then_kill`` steps later: what SLURM does to a job after it asked
    for a requeue.
    """

    def __init__(self, step: int, signal: str = "SIGKILL", then_kill: int = 0):
        self.step, self.signum, self.then_kill = step, getattr(signal_module, signal), then_kill

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)
        if self.then_kill and trainer.global_step == self.step + self.then_kill:
            os.kill(os.getpid(), signal_module.SIGKILL)


class RaiseAtStep(Callback):
    """Raises RuntimeError after step ``step``: a crash inside the process (tests run the CLI in-process)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_step == self.step:
            raise RuntimeError(f"crash at step {self.step}")


signal_module = signal
KillAtStep = SignalAtStep  # SIGKILL by default
