"""The SLURM launcher: every task that still has work becomes a SLURM job, submitted through submitit.

One launch submits one job array (``--slurm.array_parallelism`` of them at once); each job runs its task's
remaining phases exactly as the local launcher does (:class:`studies.tasks.TaskPlanner`: the same
``train.py`` command lines, the same records in the study directory). The job ids go to
``DIR/.slurm/jobs.json``; a later launch asks the scheduler (``squeue``) which of them are still queued or
running and submits only the tasks that are neither finished (their own ``status.json``) nor in the queue,
so no run is ever trained by two jobs at once. The runs' records, not SLURM's accounting, are the truth
about what finished: a one-node SLURM without ``slurmdbd`` (no ``sacct``) works the same.

Pre-emption and time limits: submitit owns the requeue, not Lightning. A job's ``train.py`` runs as a
child without the job's SLURM variables (so Lightning's SLURM auto-requeue stays off) and with the
requeue signal ignored; the job's own process takes the signal (``scancel --signal=USR1``, or USR1 that
``sbatch --signal`` sends ``--slurm``'s delay before the time limit), asks the child to save ``last.ckpt``
and stop (SIGTERM, the path every local interruption takes), and submitit requeues the job, which resumes
the run in place with ``--ckpt_path last``, bit-identically. One owner, because two would race: the job
process also runs the test phase and writes the study's records after ``train.py`` exits, which a requeue
from inside ``train.py`` would cut short, and a second resume mechanism (``hpc_ckpt``) would have to agree
with ``last.ckpt``. A ``train.py`` that a user submits directly with ``sbatch`` keeps Lightning's.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

os.environ.setdefault("SUBMITIT_PREEMPT_SIGNAL", "USR1")  # read by submitit at import; Lightning's and the README's signal

from core.run_layout import signal_of  # noqa: E402
from studies.launchers import StudyInterrupted, StudyLaunchError  # noqa: E402
from studies.launchers.local import BUSY_RETRY_S, POLL_S, start_phase  # noqa: E402
from studies.slurm_options import SlurmOptions  # noqa: E402
from studies.spec import ROOT  # noqa: E402
from studies.tasks import Task, TaskPlanner, run_dir_holder  # noqa: E402

JOBS_FILE = "jobs.json"
SLURM_DIR = ".slurm"  # submitit's scripts, pickles and job logs, in the study directory
ACTIVE_STATES = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "PREEMPTED", "RESV_DEL_HOLD"}
STRIPPED_ENV_PREFIXES = ("SLURM_", "SBATCH_", "SRUN_", "SUBMITIT_")
AFTER_SIGNAL_WAIT_S = 20.0  # a pre-empted job gets SIGTERM, then (if it is to be requeued) the requeue signal


def import_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise SystemExit("error: --launcher slurm needs submitit: pip install -e '.[study]' (or '.[dev]')") from None
    return submitit


def _without_slurm(env: dict[str, str]) -> dict[str, str]:
    """The job's environment minus SLURM's (Lightning must not see a SLURM job: requeue is this job's), with the
    job's CPUs (``--slurm.cpus_per_task``) as the run's threads."""
    base = {k: v for k, v in env.items() if not k.startswith(STRIPPED_ENV_PREFIXES)}
    if cpus := env.get("SLURM_CPUS_PER_TASK"):
        base.update(OMP_NUM_THREADS=cpus, MKL_NUM_THREADS=cpus)
    return base


def _child_env(planner: TaskPlanner, task: Task) -> dict[str, str]:
    return planner.env(task, threads=len(os.sched_getaffinity(0)), base=_without_slurm(dict(os.environ)))


def _wait(proc: subprocess.Popen) -> int:
    """``proc.wait()`` by polling: the requeue signal's handler (:meth:`TaskJob.checkpoint`) waits for the same
    child, which it could not do from inside a blocking ``wait`` (that holds Popen's non-reentrant lock)."""
    while (code := proc.poll()) is None:
        time.sleep(POLL_S)
    return code


def _ignore_requeue_signal() -> None:
    """preexec_fn: the run ignores the requeue signal (its job's process handles it and stops the run)."""
    signal.signal(getattr(signal, f"SIG{os.environ.get('SUBMITIT_PREEMPT_SIGNAL', 'USR1')}"), signal.SIG_IGN)


class TaskJob:
    """What one SLURM job runs: its task's remaining phases; submitit's checkpointable protocol for requeue."""

    def __init__(self, planner: TaskPlanner, task: Task):
        self.planner, self.task = planner, task
        self._proc: subprocess.Popen | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"planner": self.planner, "task": self.task}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["planner"], state["task"])

    def __call__(self) -> str:
        task = self.planner.task(self.task.cell, self.task.seed)  # what it needs now, from its records
        while task.phase != "done":
            proc, log = start_phase(self.planner, task, _child_env(self.planner, task), _ignore_requeue_signal)
            self._proc = proc
            try:
                code = _wait(proc)
            finally:
                log.close()
            self._proc = None
            step = self.planner.finish(task, code)
            if step == "retry":
                time.sleep(BUSY_RETRY_S)
            elif signal_of(code) is not None:  # stopped from outside (pre-emption's SIGTERM): a requeue may follow
                time.sleep(AFTER_SIGNAL_WAIT_S)
                break
        return task.phase

    def checkpoint(self) -> Any:
        """Called by submitit on the requeue signal: the run saves ``last.ckpt`` and stops; the job is requeued."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            self._proc.wait()
        return import_submitit().helpers.DelayedSubmission(TaskJob(self.planner, self.task))


class Scheduler:
    """Which of our jobs are still queued or running: ``squeue`` for SLURM, the process for submitit's local
    executor (its job id is the pid of the job's controller process on this machine)."""

    def __init__(self, cluster: str):
        self.cluster = cluster

    def active(self, job_ids: list[str]) -> set[str]:
        if not job_ids:
            return set()
        if self.cluster == "local":
            return {j for j in job_ids if _pid_alive(j)}
        out = subprocess.run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i %T"], capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise StudyLaunchError(f"squeue failed ({' '.join(out.stderr.split()) or out.returncode}): is SLURM reachable from this machine?")
        states = dict(line.split(None, 1) for line in out.stdout.splitlines() if " " in line)
        return {j for j in job_ids if states.get(j, "").strip() in ACTIVE_STATES}


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    try:  # a finished child not yet reaped is a zombie: not running
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


class SlurmLauncher:
    """Submits, records and (unless ``wait`` is false) follows a study's SLURM jobs until they are gone."""

    def __init__(self, planner: TaskPlanner, options: SlurmOptions, wait: bool = True, echo: Callable[[str], None] = tqdm.write,
                 cluster: str = "slurm", poll_s: float = 5.0):  # fmt: skip
        if cluster == "slurm" and shutil.which("sbatch") is None:
            raise StudyLaunchError("--launcher slurm: no sbatch on this machine's PATH; run the study from a SLURM login node (or use --launcher local)")
        self.planner, self.options, self.wait, self.echo, self.cluster, self.poll_s = planner, options, wait, echo, cluster, poll_s
        self.scheduler = Scheduler(cluster)
        self.folder = planner.out / SLURM_DIR
        self.submitted_only = False

    # ------------------------------------------------------------------ the job ids of the study directory
    def recorded(self) -> dict[str, str]:
        """Task key (``<cell>/seed<k>``, or a search worker's) -> the SLURM job id last submitted for it."""
        path = self.folder / JOBS_FILE
        return json.loads(path.read_text()) if path.is_file() else {}

    def _record(self, new: dict[str, str]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / JOBS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**self.recorded(), **new}, indent=2) + "\n")
        os.replace(tmp, path)

    def _executor(self, name: str) -> Any:
        submitit = import_submitit()
        if self.cluster == "local":
            executor = submitit.LocalExecutor(folder=self.folder / "%j")
            executor.update_parameters(timeout_min=self.options.time)
        else:
            executor = submitit.SlurmExecutor(folder=self.folder / "%j", max_num_timeout=3)
            params = self.options.executor_parameters()
            params["additional_parameters"] = {"chdir": str(ROOT), **params["additional_parameters"]}
            params["setup"] = [f"export SUBMITIT_PREEMPT_SIGNAL={os.environ['SUBMITIT_PREEMPT_SIGNAL']}", *params["setup"]]
            executor.update_parameters(job_name=name, stderr_to_stdout=True, **params)
        return executor

    def submit(self, functions: list[Callable[[], Any]], keys: list[str], name: str) -> list[str]:
        executor = self._executor(name)
        with executor.batch():  # one job array (SLURM) for the whole launch
            jobs = [executor.submit(fn) for fn in functions]
        ids = [str(j.job_id) for j in jobs]
        self._record(dict(zip(keys, ids)))
        return ids

    # ------------------------------------------------------------------ Launcher
    def interrupted_note(self) -> str:
        ids = sorted(set(self.recorded().values()))
        return "its SLURM jobs keep running (stop them with: scancel " + " ".join(ids) + ")" if ids else "nothing was submitted"

    def run(self, tasks: list[Task], bar: tqdm) -> None:
        jobs = self.recorded()
        open_tasks = [t for t in tasks if t.phase != "done"]
        active = self.scheduler.active([jobs[t.key] for t in open_tasks if t.key in jobs])
        queued = [t for t in open_tasks if jobs.get(t.key) in active]
        held = {t.key: holder for t in open_tasks if t not in queued and (holder := run_dir_holder(t.path)) is not None}
        todo = [t for t in open_tasks if t not in queued and t.key not in held]
        for key, holder in held.items():
            self.echo(f"{key}: process {holder} on this machine still trains it; not submitted (re-run the study once it stopped)")
        if todo:
            ids = self.submit([TaskJob(self.planner, t) for t in todo], [t.key for t in todo], self.planner.spec.name)
            array = ids[0].split("_")[0] if ids else ""
            self.echo(f"Submitted {len(todo)} run(s) as {'SLURM job array ' + array if self.cluster == 'slurm' else 'local submitit jobs'} ({len(queued)} already queued or running)")
        elif queued:
            self.echo(f"Nothing to submit: {len(queued)} run(s) already queued or running")
        if not self.wait:
            self.submitted_only = True
            return
        self.follow(todo + queued, bar)

    def wait_for(self, ids: list[str]) -> None:
        """Until none of these jobs is queued or running (Ctrl-C stops the waiting, not the jobs)."""
        try:
            while self.scheduler.active(ids):
                time.sleep(self.poll_s)
        except KeyboardInterrupt:
            raise StudyInterrupted(signal.SIGINT) from None

    def follow(self, tasks: list[Task], bar: tqdm) -> None:
        """Wait for the tasks' jobs to leave the queue; one line per task as its run's records say how it ended."""
        pending = {t.key: t for t in tasks}
        try:
            while pending:
                jobs = self.recorded()
                active = self.scheduler.active([jobs[k] for k in pending if k in jobs])
                for key in [k for k in pending if jobs.get(k) not in active]:
                    task = pending.pop(key)
                    task.phase = self.planner.next_phase(task)
                    if task.phase == "done":
                        self.echo(self.planner.report(task, 0))
                    else:
                        self.echo(f"{task.cell.name} seed {task.seed}: SLURM job {jobs.get(key)} ended before the run finished "
                                  f"(see {self.folder / str(jobs.get(key))}); re-run the study to submit it again")  # fmt: skip
                    bar.update(1)
                if pending:
                    time.sleep(self.poll_s)
        except KeyboardInterrupt:
            raise StudyInterrupted(signal.SIGINT) from None


class SearchWorkerJob:
    """A search worker under SLURM: ``scripts/study.py`` with the local launcher, sharing the study's Optuna
    storage with the other workers; requeued like a task (its runs save and resume)."""

    def __init__(self, argv: list[str]):
        self.argv = argv
        self._proc: subprocess.Popen | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"argv": self.argv}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["argv"])

    def __call__(self) -> int:
        env = _without_slurm(dict(os.environ))
        self._proc = subprocess.Popen([sys.executable, *self.argv], cwd=ROOT, env=env, stdin=subprocess.DEVNULL, preexec_fn=_ignore_requeue_signal)  # noqa: PLW1509
        code = _wait(self._proc)
        self._proc = None
        return code

    def checkpoint(self) -> Any:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)  # the worker's runs save last.ckpt and stop
            self._proc.wait()
        return import_submitit().helpers.DelayedSubmission(SearchWorkerJob(self.argv))
