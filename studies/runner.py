"""Runs a study's runs as ``train.py`` subprocesses: N at once, resumable, with progress and one line per run.

Every run is launched the same way whether it is new or was interrupted:
``train.py fit ... --runs_dir DIR/<cell> --run_name seed<k> --ckpt_path last`` starts it the first time
and resumes it in place from its ``last.ckpt`` afterwards. A run whose ``status.json`` says it completed
or diverged is never launched again; with ``test: true`` its best checkpoint is then evaluated once
(``train.py test``, into ``DIR/<cell>/seed<k>/eval-test/``; ``test: last`` evaluates its last checkpoint).

Children die with the study: each gets ``PR_SET_PDEATHSIG(SIGTERM)``, so when the study is killed, even
with SIGKILL, its runs save ``last.ckpt`` and stop instead of training on as orphans. A re-launched study
that finds such a run still saving (its directory lock held) waits for it rather than training beside it.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from studies.flags import to_argv
from studies.results import LOG_FILE, TEST_RUN_NAME, fit_run_dir, fit_status, last_error_line, read_launch, read_run, record_launch, seed_dir, test_result
from studies.spec import ROOT, Cell, StudySpec

tqdm.monitor_interval = 0  # no monitor thread: children are forked from a single-threaded process
DIVERGED_EXIT_CODE = 3  # train.py's
BUSY_MESSAGE = "is in use by process"
POLL_S, BUSY_RETRY_S = 0.2, 5.0


class StudyInterrupted(Exception):
    """SIGTERM (or SIGINT) reached the study: its runs were asked to save and stop."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


@dataclass
class Task:
    """One cell x seed; ``phase`` is what it needs next: ``fit``, ``test`` or ``done``."""

    cell: Cell
    seed: int
    path: Path  # DIR/<cell>/seed<k>
    phase: str = "fit"
    not_before: float = 0.0
    busy_since: float | None = None


@dataclass
class Running:
    task: Task
    proc: subprocess.Popen
    log: IO[Any]
    log_start: int
    started: float


def _die_with_parent(parent: int) -> Callable[[], None]:
    """preexec_fn: SIGTERM this child when the study dies (Linux), also if it died during the fork."""
    if not sys.platform.startswith("linux"):
        return lambda: None
    prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl  # looked up before forking
    pr_set_pdeathsig, sigterm = 1, int(signal.SIGTERM)

    def set_death_signal() -> None:
        prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return set_death_signal


def lock_holder(seed_path: Path) -> str | None:
    """The pid of a live process training in one of this run's directories (left over from a killed study)."""
    for lock in seed_path.glob("version_*/.lock"):
        fd = os.open(lock, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.read(fd, 32).decode().strip() or "?"
        finally:
            os.close(fd)  # also releases our probe
    return None


def _pairs(argv: list[str]) -> list[list[str]]:
    """``--flag value`` / ``--flag=value`` groups, to pick some of a command line's flags."""
    groups: list[list[str]] = []
    for arg in argv:
        if arg.startswith("--") or not groups:
            groups.append([arg])
        else:
            groups[-1].append(arg)
    return groups


class StudyRunner:
    def __init__(self, spec: StudySpec, out: Path, extra_args: list[str], jobs: int = 1, echo: Callable[[str], None] = tqdm.write, busy_timeout_s: float = 900.0):
        self.spec, self.out, self.extra_args, self.jobs, self.echo = spec, out, extra_args, max(1, jobs), echo
        self.busy_timeout_s = busy_timeout_s
        self.gpus = self._gpus()

    # ------------------------------------------------------------------ commands
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
                record_launch(task.path, "test", 2, f"no checkpoints/{self.spec.test_checkpoint}.ckpt to test (the config keeps no best checkpoint: no validation or no monitor)")
        return "done"

    def fit_argv(self, task: Task) -> list[str]:
        seeds = [a for flag in self.spec.seed_flags for a in (f"--{flag}", str(task.seed))]
        return [
            sys.executable, str(ROOT / "train.py"), "fit", "--config", str(self.spec.config), "--trainer.enable_progress_bar", "false",
            *to_argv(self.spec.flags), *self.extra_args, *to_argv(task.cell.flags), *seeds,
            "--runs_dir", str(task.path.parent), "--run_name", task.path.name, "--ckpt_path", "last",
        ]  # fmt: skip

    def tested_checkpoint(self, run_dir: Path) -> Path:
        return run_dir / "checkpoints" / f"{self.spec.test_checkpoint}.ckpt"

    def test_argv(self, task: Task) -> list[str]:
        """The checkpoint brings its model and data settings; the study's trainer, data and per-class flags still apply."""
        best = self.tested_checkpoint(fit_run_dir(task.path))
        flags = [*to_argv(self.spec.flags), *self.extra_args, *to_argv(task.cell.flags)]
        kept = [a for group in _pairs(flags) if group[0].lstrip("-").startswith(("trainer.", "data.", "per_class.")) for a in group]
        return [
            sys.executable, str(ROOT / "train.py"), "test", "--ckpt_path", str(best), *kept, "--trainer.logger", "false",
            "--trainer.enable_progress_bar", "false", "--runs_dir", str(task.path), "--run_name", TEST_RUN_NAME,
        ]  # fmt: skip

    def env(self, task: Task, slot: int) -> dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for key in ("CIFAR_RUN_DIR", "CIFAR_RESUME_CKPT"):
            env.pop(key, None)
        # W&B groups a study's runs by study (group) and cell (job_type), and averages them in its UI.
        env.update(WANDB_RUN_GROUP=self.spec.name, WANDB_JOB_TYPE=task.cell.name[:64], WANDB_NAME=f"{task.cell.name}/seed{task.seed}"[:128])
        if "OMP_NUM_THREADS" not in os.environ:  # the CPU's threads split between the runs at once
            threads = str(max(1, len(os.sched_getaffinity(0)) // self.jobs))
            env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        if self.gpus:  # one run per device (round robin when there are more jobs than devices)
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot % len(self.gpus)]
        return env

    @staticmethod
    def _gpus() -> list[str]:
        if "torch" not in sys.modules:
            return []
        import torch

        if not torch.cuda.is_available():
            return []
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        return [d.strip() for d in visible.split(",") if d.strip()] if visible else [str(i) for i in range(torch.cuda.device_count())]

    # ------------------------------------------------------------------ the loop
    def run(self, tasks: list[Task], bar: tqdm) -> None:
        """Run every task's remaining phases, ``jobs`` processes at a time; returns when all are done.

        SIGTERM/SIGINT to the study asks every running child to save and stop, waits for them, and raises
        :class:`StudyInterrupted`; re-running the same command then resumes.
        """
        self.bar = bar
        queue = [t for t in tasks if t.phase != "done"]
        slots: list[Running | None] = [None] * self.jobs
        previous = signal.signal(signal.SIGTERM, self._on_signal)
        try:
            while queue or any(slots):
                for i, running in enumerate(slots):
                    if running is not None and running.proc.poll() is not None:
                        slots[i] = None
                        self._finished(running, queue)
                now = time.monotonic()
                for i in range(self.jobs):
                    if slots[i] is None and (task := next((t for t in queue if t.not_before <= now), None)) is not None:
                        queue.remove(task)
                        slots[i] = self._start(task, i, queue)
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            self._stop(slots)
            raise StudyInterrupted(signal.SIGINT) from None
        except StudyInterrupted:
            self._stop(slots)
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)

    @staticmethod
    def _on_signal(signum: int, frame: Any) -> None:
        raise StudyInterrupted(signum)

    def _stop(self, slots: list[Running | None]) -> None:
        """Every running child saves last.ckpt at its next step and exits; wait for that (Ctrl-C again: don't)."""
        running = [r for r in slots if r is not None]
        for r in running:
            if r.proc.poll() is None:
                r.proc.send_signal(signal.SIGTERM)
        if running:
            self.echo(f"Stopping: {len(running)} run(s) save last.ckpt and stop; re-run the same command to resume.")
        for r in running:
            try:
                r.proc.wait()
            finally:
                r.log.close()

    def _start(self, task: Task, slot: int, queue: list[Task]) -> Running | None:
        if task.phase == "fit" and (holder := lock_holder(task.path)) is not None:
            return self._busy(task, holder, queue)
        argv = self.fit_argv(task) if task.phase == "fit" else self.test_argv(task)
        task.path.mkdir(parents=True, exist_ok=True)
        log = open(task.path / LOG_FILE, "a")
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {task.phase}: {' '.join(argv)}\n")
        log.flush()
        start = log.tell()
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env(task, slot), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent(os.getpid()))  # noqa: PLW1509
        return Running(task, proc, log, start, time.monotonic())

    def _busy(self, task: Task, holder: str, queue: list[Task]) -> None:
        now = time.monotonic()
        if task.busy_since is None:
            task.busy_since = now
            self.echo(f"{task.cell.name} seed {task.seed}: process {holder} (left over from an interrupted study?) still holds {task.path}; waiting for it to stop")
        if now - task.busy_since > self.busy_timeout_s:
            error = f"process {holder} still trains in {task.path} after {self.busy_timeout_s:.0f} s; stop it and re-run the study"
            record_launch(task.path, task.phase, 2, error)
            self.echo(f"{task.cell.name} seed {task.seed}: failed: {error}")
            self.bar.update(1)
            return None
        task.not_before = now + BUSY_RETRY_S
        queue.append(task)
        return None

    def _finished(self, running: Running, queue: list[Task]) -> None:
        task, code = running.task, running.proc.returncode
        running.log.close()
        error = None if code in (0, DIVERGED_EXIT_CODE) else last_error_line(task.path / LOG_FILE, running.log_start)
        if code == 2 and error and BUSY_MESSAGE in error:  # the lock was taken between our probe and the child's
            task.not_before = time.monotonic() + BUSY_RETRY_S
            queue.append(task)
            return
        record_launch(task.path, task.phase, code if code >= 0 else 128 - code, error)
        if task.phase == "fit" and code in (0, DIVERGED_EXIT_CODE):
            task.phase = self.next_phase(task)
            if task.phase == "test":
                queue.insert(0, task)  # its evaluation next, before new runs start
                return
        task.phase = "done"
        self.report(task, code)
        self.bar.update(1)

    def report(self, task: Task, code: int) -> None:
        """One line per finished run: cell, seed, status, metric (and test accuracy), wall time; or the error."""
        r = read_run(self.out, task.cell.name, task.seed)
        if code < 0 or code >= 128:
            self.echo(f"{task.cell.name} seed {task.seed}: stopped by signal {abs(code) if code < 0 else code - 128}; re-run the study to resume it")
            return
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
        self.echo(text)


def open_bar(total: int, done: int, name: str) -> tqdm:
    return tqdm(total=total, initial=done, desc=name, unit="run", dynamic_ncols=True, smoothing=0.1)

