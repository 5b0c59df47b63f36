"""How a study's tasks get run: one interface, two implementations.

* ``local`` (:class:`studies.launchers.local.LocalLauncher`): ``train.py`` subprocesses on this machine, N at
  once, dying with the study;
* ``slurm`` (:class:`studies.launchers.slurm.SlurmLauncher`): one SLURM job per task through submitit (one
  job array per launch), requeued on pre-emption and time limits, independent of the study process.

Both run each task's phases through :class:`studies.tasks.TaskPlanner` (the same command lines, the same
records), so a study gives the same ``summary.csv`` whichever ran it, and a study started with one can be
finished with the other.
"""

from __future__ import annotations

import signal
from typing import Protocol

from tqdm import tqdm

from studies.tasks import Task

LAUNCHERS = ("local", "slurm")


class StudyInterrupted(Exception):
    """SIGTERM (or SIGINT) reached the study process; what happens to its runs is the launcher's to say."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class StudyLaunchError(RuntimeError):
    """The launcher cannot work from here (no sbatch, squeue failing): one line, exit 2."""


class Launcher(Protocol):
    def run(self, tasks: list[Task], bar: tqdm) -> None:
        """Bring every task to ``done`` (or as far as this launch takes it), updating ``bar`` per finished task.

        Raises :class:`StudyInterrupted` on SIGTERM/SIGINT."""

    def interrupted_note(self) -> str:
        """What became of the runs when the study process was interrupted (one line for the user)."""


def open_bar(total: int, done: int, name: str) -> tqdm:
    return tqdm(total=total, initial=done, desc=name, unit="run", dynamic_ncols=True, smoothing=0.1)
