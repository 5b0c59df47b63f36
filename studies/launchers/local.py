"""The local launcher: a study's tasks as ``train.py`` processes on this machine, N at once, with progress.

Each run is forked from the study process, which has imported train.py's modules once (the default,
:mod:`studies.launchers.forked`; where forking is not safe, one line says why and the run is a subprocess),
or with ``--no-fork`` a subprocess; either way it is its own process with its own console log, exit code and
outcome record. A fork saves each run the interpreter start and imports (a 9-run study: README, Performance).

Children die with the study: each gets ``PR_SET_PDEATHSIG(SIGTERM)``, so when the study is killed, even
with SIGKILL, its runs save ``last.ckpt`` and stop instead of training on as orphans. A re-launched study
that finds such a run still saving (its directory lock held) waits for it rather than training beside it.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from tqdm import tqdm

from studies.launchers import StudyInterrupted
from studies.launchers.forked import ForkedRun, fork_refusal, runs_train_py
from studies.results import LOG_FILE, record_launch
from studies.spec import ROOT
from studies.tasks import Task, TaskPlanner, run_dir_holder

tqdm.monitor_interval = 0  # no monitor thread: runs are forked from a single-threaded process
POLL_S, BUSY_RETRY_S = 0.2, 5.0


def wait_for_exit(pids: list[int], timeout_s: float) -> None:
    """Return as soon as one of ``pids`` has exited, or after ``timeout_s``.

    Why not a fixed sleep: a study of short runs pays the poll interval at every hand-over between runs (half
    of 0.2 s on average, a dozen times in a 9-run study). A pidfd (Linux >= 5.3) turns readable when its
    process exits, so ``select`` wakes at that moment; where pidfds are missing or refused, it sleeps.
    """
    fds: list[int] = []
    try:
        for pid in pids:
            try:
                fds.append(os.pidfd_open(pid))
            except ProcessLookupError:  # exited and reaped already: nothing to wait for
                return
        if not fds:
            time.sleep(timeout_s)
            return
        poller = select.poll()  # not select.select: that refuses descriptors past 1023
        for fd in fds:
            poller.register(fd, select.POLLIN)
        poller.poll(timeout_s * 1000)
    except (AttributeError, OSError):  # no os.pidfd_open, or the kernel/sandbox refuses it
        time.sleep(timeout_s)
    finally:
        for fd in fds:
            os.close(fd)


@dataclass
class Running:
    task: Task
    proc: subprocess.Popen | ForkedRun
    log: IO[Any]


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


def start_phase(
    planner: TaskPlanner, task: Task, env: dict[str, str], preexec_fn: Callable[[], None] | None = None, fork: Callable[[list[str]], bool] | None = None
) -> tuple[subprocess.Popen | ForkedRun, IO[Any]]:
    """Start a task's next phase as a child whose console goes to ``DIR/<cell>/seed<k>/train.log``: forked from
    this process when ``fork(argv)`` says so, else a subprocess."""
    argv = planner.prepare(task)
    forked = fork is not None and fork(argv)
    log = open(task.path / LOG_FILE, "a")
    how = f" (forked from the study process {os.getpid()})" if forked else ""
    log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {task.phase}{how}: {' '.join(argv)}\n")
    log.flush()
    if forked:
        return ForkedRun(argv, cwd=ROOT, env=env, log=log, preexec_fn=preexec_fn), log
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec_fn)  # noqa: PLW1509
    return proc, log


class LocalLauncher:
    def __init__(
        self, planner: TaskPlanner, jobs: int = 1, echo: Callable[[str], None] = tqdm.write, busy_timeout_s: float = 900.0, fork: bool = False,
        run_env: Callable[[], dict[str, str]] | None = None,
    ):  # fmt: skip
        """``run_env``: variables added to each run's environment as it starts (the study's shared W&B service)."""
        self.planner, self.jobs, self.echo, self.busy_timeout_s = planner, max(1, jobs), echo, busy_timeout_s
        self.run_env = run_env
        self.gpus = self.visible_gpus()
        self.fork, self._refusal = fork, None

    def _fork_now(self, argv: list[str]) -> bool:
        """Fork this ``train.py`` run from the study process? Not when asked not to, nor when unsafe (said once)."""
        if not self.fork or not runs_train_py(argv):
            return False
        if (reason := fork_refusal(self.gpus)) is not None and reason != self._refusal:
            self.echo(f"Runs start as subprocesses (imports paid per run): {reason}")
        self._refusal = reason
        return reason is None

    def env(self, task: Task, slot: int) -> dict[str, str]:
        """The CPU's threads split between the runs at once; with GPUs, one run per device (round robin)."""
        env = self.planner.env(task, threads=max(1, len(os.sched_getaffinity(0)) // self.jobs))
        if self.run_env is not None:
            env.update(self.run_env())
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot % len(self.gpus)]
        return env

    @staticmethod
    def visible_gpus() -> list[str]:
        """The GPUs the runs may use (none when the study process has not imported torch)."""
        if "torch" not in sys.modules:
            return []
        import torch

        if not torch.cuda.is_available():
            return []
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        return [d.strip() for d in visible.split(",") if d.strip()] if visible else [str(i) for i in range(torch.cuda.device_count())]

    def interrupted_note(self) -> str:
        return "its runs saved last.ckpt and stopped"

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
                wait_for_exit([r.proc.pid for r in slots if r is not None], POLL_S)
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
        if task.phase == "fit" and (holder := run_dir_holder(task.path)) is not None:
            return self._busy(task, holder, queue)
        proc, log = start_phase(self.planner, task, self.env(task, slot), _die_with_parent(os.getpid()), fork=self._fork_now)
        return Running(task, proc, log)

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
        step = self.planner.finish(task, code)
        if step == "retry":
            task.not_before = time.monotonic() + BUSY_RETRY_S
            queue.append(task)
        elif step == "next":
            queue.insert(0, task)  # its evaluation next, before new runs start
        else:
            self.echo(self.planner.report(task, code))
            self.bar.update(1)
