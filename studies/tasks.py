"""A study's unit of work, one cell x seed, and the rules every launcher follows to run it.

A task's phases are ``fit`` (``train.py fit ... --runs_dir DIR/<cell> --run_name seed<k> --ckpt_path last``:
it starts the run the first time and resumes it in place from its ``last.ckpt`` afterwards), then ``test``
when the study asks for one (``train.py test`` of its best or last checkpoint into ``DIR/<cell>/seed<k>/
eval-test/``), then ``done``. What a task needs next is read from the run's own records every time
(:meth:`TaskPlanner.next_phase`): whoever launched it before, on whichever machine, a run whose
``status.json`` says it completed or diverged is never launched again.

After a phase's process ends, :meth:`TaskPlanner.finish` decides from its exit code and its outcome record
(``core.run_layout``: no console text is read) whether the task goes on, is retried (its run directory was
in use: :attr:`ExitCode.BUSY`) or is done. The local launcher and the SLURM job both call it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from core.run_layout import LOCK_FILE, OUTCOME_ENV, ExitCode, checkpoint, is_result, lock_holder, read_outcome, signal_of, versions
from studies.flags import to_argv
from studies.results import TEST_RUN_NAME, fit_run_dir, fit_status, read_launch, read_run, record_launch, seed_dir, test_result
from studies.spec import ROOT, Cell, StudySpec

# A DDP worker's hand-over, and a W&B service of whatever started the study (on another machine, a SLURM job could
# not reach it; the local launcher offers its own): never inherited by a new run.
RUN_ENV_KEYS = ("CIFAR_RUN_DIR", "CIFAR_RESUME_CKPT", "WANDB_SERVICE")
# A study's runs draw no figures of their own unless its flags say `figures: true`: the study draws every cell's
# curves and per-class accuracy in one figure each, from the CSV/JSON files the runs still write (~0.5 s a run).
RUN_DEFAULTS = ["--figures", "false"]


@dataclass
class Task:
    """One cell x seed; ``phase`` is what it needs next: ``fit``, ``test`` or ``done``."""

    cell: Cell
    seed: int
    path: Path  # DIR/<cell>/seed<k>
    phase: str = "fit"
    not_before: float = 0.0
    busy_since: float | None = None

    @property
    def key(self) -> str:
        return f"{self.cell.name}/seed{self.seed}"

    def outcome_file(self) -> Path:
        return self.path / f".outcome-{self.phase}.json"


def run_dir_holder(seed_path: Path) -> str | None:
    """The pid of a live process training in one of this run's versions (left over from a killed study)."""
    for version in versions(seed_path):
        if (version / LOCK_FILE).is_file() and (holder := lock_holder(version)) is not None:
            return holder
    return None


class TaskPlanner:
    """The command lines, environment and bookkeeping of a study's tasks: what is the same however they run."""

    def __init__(self, spec: StudySpec, out: Path, extra_args: list[str]):
        self.spec, self.out, self.extra_args = spec, out, extra_args

    def task(self, cell: Cell, seed: int) -> Task:
        task = Task(cell, seed, seed_dir(self.out, cell.name, seed))
        task.phase = self.next_phase(task)
        return task

    def next_phase(self, task: Task) -> str:
        status = fit_status(task.path)
        if status not in ("completed", "diverged"):
            return "fit"
        run_dir = fit_run_dir(task.path)
        has_checkpoint = run_dir is not None and self.tested_checkpoint(run_dir).is_file()
        if self.spec.test and status == "completed" and test_result(task.path) is None:
            if has_checkpoint:
                return "test"
            if "test" not in read_launch(task.path):  # test: true cannot be honoured: say so in the summary
                record_launch(task.path, "test", ExitCode.BAD_INPUT, f"no checkpoints/{self.spec.test_checkpoint}.ckpt to test (the config keeps no best checkpoint: no validation or no monitor)")
        return "done"

    # ------------------------------------------------------------------ command lines
    def argv(self, task: Task) -> list[str]:
        return self.fit_argv(task) if task.phase == "fit" else self.test_argv(task)

    def fit_argv(self, task: Task) -> list[str]:
        seeds = [a for flag in self.spec.seed_flags for a in (f"--{flag}", str(task.seed))]
        return [
            sys.executable, str(ROOT / "train.py"), "fit", "--config", str(self.spec.config), "--trainer.enable_progress_bar", "false",
            *RUN_DEFAULTS, *to_argv(self.spec.flags), *self.extra_args, *to_argv(task.cell.flags), *seeds,
            "--runs_dir", str(task.path.parent), "--run_name", task.path.name, "--ckpt_path", "last",
        ]  # fmt: skip

    def tested_checkpoint(self, run_dir: Path) -> Path:
        return checkpoint(run_dir, self.spec.test_checkpoint)

    def test_argv(self, task: Task) -> list[str]:
        """The checkpoint brings its model and data settings; the study's trainer, data and per-class flags still apply."""
        best = self.tested_checkpoint(fit_run_dir(task.path))
        flags = [*to_argv(self.spec.flags), *self.extra_args, *to_argv(task.cell.flags)]
        kept = [a for group in _pairs(flags) if group[0].lstrip("-").startswith(("trainer.", "data.", "per_class.", "figures")) for a in group]
        return [
            sys.executable, str(ROOT / "train.py"), "test", "--ckpt_path", str(best), *RUN_DEFAULTS, *kept, "--trainer.logger", "false",
            "--trainer.enable_progress_bar", "false", "--runs_dir", str(task.path), "--run_name", TEST_RUN_NAME,
        ]  # fmt: skip

    def env(self, task: Task, threads: int | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
        """The run's environment: ``base`` (this process's by default), its outcome file, W&B grouping, threads."""
        env = {**(os.environ if base is None else base), "PYTHONUNBUFFERED": "1", OUTCOME_ENV: str(task.outcome_file())}
        for key in RUN_ENV_KEYS:
            env.pop(key, None)
        # W&B groups a study's runs by study (group) and cell (job_type), and averages them in its UI.
        env.update(WANDB_RUN_GROUP=self.spec.name, WANDB_JOB_TYPE=task.cell.name[:64], WANDB_NAME=f"{task.cell.name}/seed{task.seed}"[:128])
        if threads is not None and not env.get("OMP_NUM_THREADS", "").strip():  # empty is unset (libgomp ignores it)
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        return env

    # ------------------------------------------------------------------ after a phase's process ended
    def prepare(self, task: Task) -> list[str]:
        """Before a phase starts: its seed folder, no stale outcome record; returns the command line."""
        task.path.mkdir(parents=True, exist_ok=True)
        task.outcome_file().unlink(missing_ok=True)
        return self.argv(task)

    def finish(self, task: Task, exit_code: int) -> str:
        """Record how the phase ended and move the task on: ``retry`` (its run directory was in use: try again
        later), ``next`` (its next phase, the test, should run now) or ``done`` (nothing more this launch)."""
        outcome = read_outcome(task.outcome_file(), exit_code)
        if exit_code == ExitCode.BUSY:  # the lock was taken between our probe and the child's
            return "retry"
        code = 128 + signal_of(exit_code) if signal_of(exit_code) is not None else exit_code
        error = None if is_result(exit_code) else outcome["error"] or (f"exit code {exit_code}" if signal_of(exit_code) is None else None)
        record_launch(task.path, task.phase, code, error)
        if task.phase == "fit" and is_result(exit_code):
            task.phase = self.next_phase(task)
            if task.phase == "test":
                return "next"
        task.phase = "done"
        return "done"

    def report(self, task: Task, exit_code: int) -> str:
        """One line per finished run: cell, seed, status, metric (and test accuracy), wall time; or the error."""
        r = read_run(self.out, task.cell.name, task.seed)
        if (signum := signal_of(exit_code)) is not None:
            return f"{task.cell.name} seed {task.seed}: stopped by signal {signum}; re-run the study to resume it"
        text = f"{task.cell.name} seed {task.seed}: {r.status}"
        value = r.metric(self.spec.metric)
        if value == value:
            text += f", {self.spec.metric} {value:.4f}"
        if r.test_acc is not None:
            text += f", test acc {r.test_acc:.4f}"
        if r.wall_s is not None:
            text += f", {r.wall_s:.0f} s"
        if r.error:
            text += f" -- {r.error}"
        return text


def _pairs(argv: list[str]) -> list[list[str]]:
    """``--flag value`` / ``--flag=value`` groups, to pick some of a command line's flags."""
    groups: list[list[str]] = []
    for arg in argv:
        if arg.startswith("--") or not groups:
            groups.append([arg])
        else:
            groups[-1].append(arg)
    return groups
