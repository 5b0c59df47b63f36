"""Run directories ``runs_dir/<run_name>/version_<k>/``: one per run, never reused by another run.

A run is *resumed in place* (same directory) from its own newest state: ``--ckpt_path last``, the
directory's ``checkpoints/last.ckpt`` named explicitly, or a SLURM requeue of the same job (Lightning
then leaves an ``hpc_ckpt_<n>.ckpt`` there). Any other checkpoint starts a new version that branches from
it, so no file of an earlier run changes. A run that fails or is refused before it produced anything
(no checkpoint, no curve, no prediction) leaves no directory behind.

A fit decides where it runs and takes that directory's lock in one step, under ``runs_dir/.launch.lock``:
two launches of ``--ckpt_path last`` at the same moment cannot both start the run fresh; the second finds
the first's directory, locked, and is refused. A directory that cannot be created or written is
:class:`RunDirUnwritable` (one line, exit 2), never an ``OSError`` traceback.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lightning.fabric.plugins.environments import SLURMEnvironment

from callbacks.status_file import earlier_segments_wall_s
from core.lightning_internals import hpc_checkpoints
from core.run_layout import CONFIG_FILE, LOCK_FILE, checkpoint, lock_holder, next_version, read_status, run_dir_of_checkpoint, run_name, versions, write_status_record

RUN_DIR_ENV = "CIFAR_RUN_DIR"  # DDP worker processes re-run train.py: they join rank 0's directory ...
RESUME_CKPT_ENV = "CIFAR_RESUME_CKPT"  # ... and resume from the same checkpoint
SLURM_JOB_FILE = "slurm_job_id"
LAUNCH_LOCK_FILE = ".launch.lock"  # in the runs directory: held while a fit plans and takes its run directory
LAUNCH_WAIT_S = 60.0  # another launch holds it for milliseconds; this long means a stopped or hung process
# Files that make a run directory worth keeping even if the run later failed.
OUTPUT_GLOBS = ("checkpoints/*.ckpt", "hpc_ckpt_*.ckpt", "train_loss.csv", "val_acc.csv", "predictions.csv", "per_class_accuracy.json", "metrics.csv")


@dataclass
class RunPlan:
    run_dir: Path
    ckpt_path: str | None  # the checkpoint this run starts from (resume), if any
    fresh: bool  # created by this process: removed again if the run never produced anything
    resumed_in_place: bool = False
    note: str | None = None  # printed before the run starts


class RunDirUnwritable(RuntimeError):
    """A run directory, or the runs directory it goes in, cannot be created or written (bad input: exit 2)."""


def process_rank() -> int:
    """This process's global rank from the launcher's environment (0 when not distributed)."""
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0


def _unwritable(path: Path, exc: OSError) -> RunDirUnwritable:
    reason = exc.strerror or type(exc).__name__
    return RunDirUnwritable(f"cannot create or write the run directory {path}: {reason} (choose another --runs_dir or --trainer.default_root_dir)")


def runs_dir_problem(runs_dir: str | Path) -> str | None:
    """Why no run directory can be made under ``runs_dir`` (checked before any is: nothing is created here),
    else None. Its nearest existing folder must be a writable directory; a full disk shows only on writing."""
    existing = Path(runs_dir)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):  # also true for root on a read-only file system or an immutable folder
        read_only = hasattr(os, "statvfs") and os.statvfs(existing).f_flag & os.ST_RDONLY
        return f"{existing} is {'on a read-only file system' if read_only else 'not writable'}"
    return None


def new_run_dir(runs_dir: str | Path, name: str) -> Path:
    """``runs_dir/name/version_<k>`` with k one past the highest existing version, created atomically."""
    base = Path(runs_dir) / name
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # read-only, permission denied, a file in the way, disk full
        raise _unwritable(base, exc) from None
    while True:
        candidate = next_version(base)
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:  # another run took it between listing and mkdir
            continue
        except OSError as exc:
            raise _unwritable(candidate, exc) from None


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The run's newest resumable state: ``checkpoints/last.ckpt`` or a SLURM ``hpc_ckpt_<n>.ckpt``."""
    candidates = [p for p in [checkpoint(run_dir, "last"), *hpc_checkpoints(run_dir)] if p.is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime_ns, default=None)


def latest_resumable_run(runs_dir: str | Path, name: str) -> tuple[Path, Path] | None:
    """The newest run of ``name`` with a checkpoint to resume; one still training is refused (:class:`RunDirBusy`),
    checkpoint or not: ``--ckpt_path last`` means that run, and it is taken."""
    for run_dir in reversed(versions(Path(runs_dir) / name)):
        if (holder := lock_holder(run_dir)) is not None:
            raise _busy(run_dir, holder)
        if ckpt := newest_checkpoint(run_dir):
            return run_dir, ckpt
    return None


def slurm_job() -> str | None:
    """``<job>`` or ``<array job>_<task>`` when running as a SLURM batch job (what a requeue keeps)."""
    if not SLURMEnvironment.detect():
        return None
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    return f"{array}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if array else os.environ.get("SLURM_JOB_ID")


def slurm_run_dir(runs_dir: str | Path, name: str, job: str) -> Path | None:
    for run_dir in reversed(versions(Path(runs_dir) / name)):
        marker = run_dir / SLURM_JOB_FILE
        if marker.is_file() and marker.read_text().strip() == job:
            return run_dir
    return None


def is_own_last_checkpoint(ckpt: Path) -> Path | None:
    """The run directory whose newest state ``ckpt`` is (so resuming from it continues that run in place)."""
    ckpt = ckpt.resolve()
    run_dir = run_dir_of_checkpoint(ckpt)
    newest = newest_checkpoint(run_dir) if (run_dir / CONFIG_FILE).is_file() else None
    return run_dir if newest is not None and newest.resolve() == ckpt else None


def plan_run(subcommand: str, runs_dir: str | Path, name: str, ckpt_path: str | None) -> RunPlan:
    """Where this run goes and what it resumes from; see the module docstring for the rules.

    A fit's rank 0 returns holding the run directory's lock (:func:`lock_run_dir` then adopts it), taken
    under the launch lock together with the decision: a second launch of the name either waits for that
    or finds the directory in use (:class:`RunDirBusy`)."""
    if os.environ.get("LOCAL_RANK", "0") != "0" and os.environ.get(RUN_DIR_ENV):
        return RunPlan(Path(os.environ[RUN_DIR_ENV]), os.environ.get(RESUME_CKPT_ENV) or ckpt_path, fresh=False)
    if subcommand != "fit":
        return RunPlan(new_run_dir(runs_dir, run_name(name, subcommand)), ckpt_path, fresh=True)
    if process_rank() != 0:
        return _plan_fit(runs_dir, name, ckpt_path)
    for abandoned in list(_planned):  # planned by an earlier call in this process that never began its run
        unlock_run_dir(abandoned)
    with _launch_lock(Path(runs_dir)):
        plan = _plan_fit(runs_dir, name, ckpt_path)
        try:
            _take_lock(plan.run_dir)
        except (RunDirBusy, RunDirUnwritable):
            discard_if_empty(plan)
            raise
    _planned.add(plan.run_dir)
    return plan


@contextmanager
def _launch_lock(runs_dir: Path, wait_s: float = LAUNCH_WAIT_S) -> Iterator[None]:
    """Exclusive among the launches of fits under ``runs_dir`` (it is never removed, so no launch can lock a
    file another one has just unlinked)."""
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(runs_dir / LAUNCH_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise _unwritable(runs_dir, exc) from None
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RunDirBusy(f"another launch has held {runs_dir / LAUNCH_LOCK_FILE} for {wait_s:.0f} s (a stopped or hung train.py?); stop it, or try again.") from None
                time.sleep(0.05)  # polled, not blocked in flock, so Ctrl-C still stops this process
        yield
    finally:
        os.close(fd)


def _plan_fit(runs_dir: str | Path, name: str, ckpt_path: str | None) -> RunPlan:
    job = slurm_job()
    if job and int(os.environ.get("SLURM_PROCID", "0")) > 0:  # whatever --ckpt_path says, rank 0 alone picks the directory
        return _join_slurm_rank0(runs_dir, name, job, ckpt_path)
    if job and ckpt_path in (None, "last"):
        if (run_dir := slurm_run_dir(runs_dir, name, job)) is not None:
            ckpt = newest_checkpoint(run_dir)
            note = f"SLURM job {job} requeued: resuming {ckpt}" if ckpt else f"SLURM job {job} requeued before its first checkpoint: restarting in {run_dir}"
            return RunPlan(run_dir, str(ckpt) if ckpt else None, fresh=False, resumed_in_place=True, note=note)
    if ckpt_path == "last":
        found = latest_resumable_run(runs_dir, name)
        if found is None:
            plan = RunPlan(new_run_dir(runs_dir, name), None, fresh=True)
            plan.note = f"--ckpt_path last: run '{name}' has no checkpoint under '{runs_dir}' yet, so this starts it fresh in {plan.run_dir}."
            return plan
        run_dir, ckpt = found
        return RunPlan(run_dir, str(ckpt), fresh=False, resumed_in_place=True, note=f"Resuming {ckpt} (in place)")
    if ckpt_path and (run_dir := is_own_last_checkpoint(Path(ckpt_path))) is not None:
        return RunPlan(run_dir, str(Path(ckpt_path).resolve()), fresh=False, resumed_in_place=True, note=f"Resuming {ckpt_path} (in place)")
    plan = RunPlan(new_run_dir(runs_dir, name), ckpt_path, fresh=True)
    if ckpt_path:
        plan.note = f"Starting from {ckpt_path} in a new run directory {plan.run_dir} (the checkpoint is not its run's newest state, so that run is left untouched)."
    return plan


def _join_slurm_rank0(runs_dir: str | Path, name: str, job: str, ckpt_path: str | None, timeout_s: float = 120.0) -> RunPlan:
    """SLURM starts every rank itself; ranks > 0 wait for rank 0 to create (or find) the job's directory and
    start from what rank 0 starts from: the checkpoint given, else (requeue, ``last``) the directory's newest."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (run_dir := slurm_run_dir(runs_dir, name, job)) is not None:
            ckpt = newest_checkpoint(run_dir) if ckpt_path in (None, "last") else ckpt_path
            return RunPlan(run_dir, str(ckpt) if ckpt else None, fresh=False)
        time.sleep(0.5)
    raise RuntimeError(f"SLURM rank {os.environ.get('SLURM_PROCID')}: rank 0 created no run directory for job {job} under {Path(runs_dir) / name} within {timeout_s:.0f} s")


def share_with_workers(plan: RunPlan) -> None:
    """DDP worker processes (started by Lightning re-running train.py) read these to join this run."""
    os.environ[RUN_DIR_ENV] = str(plan.run_dir)
    if plan.ckpt_path:
        os.environ[RESUME_CKPT_ENV] = str(plan.ckpt_path)
    else:
        os.environ.pop(RESUME_CKPT_ENV, None)
    if job := slurm_job():
        (plan.run_dir / SLURM_JOB_FILE).write_text(job + "\n")


class RunDirBusy(RuntimeError):
    """Another live process is training in this run directory."""


def _busy(run_dir: Path, holder: str) -> RunDirBusy:
    return RunDirBusy(f"{run_dir} is in use by process {holder}, which is still training there; wait for it or stop it first.")


_held_locks: dict[Path, int] = {}  # open descriptors: the OS also releases them when the process dies, however
_planned: set[Path] = set()  # locked by plan_run, not yet adopted by lock_run_dir


def lock_run_dir(run_dir: Path) -> None:
    """One training process per run directory: a second one (a study re-launched while an orphaned run
    still trains, two shells resuming the same run) is refused instead of interleaving checkpoints.

    A fit's :func:`plan_run` already took the lock; this adopts it."""
    if run_dir in _planned:
        _planned.discard(run_dir)
        return
    _take_lock(run_dir)


def _take_lock(run_dir: Path) -> None:
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise _unwritable(run_dir, exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode().strip() or "another process"
        os.close(fd)
        raise _busy(run_dir, holder) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # the first write into the run directory: a full disk fails here
    except OSError as exc:
        os.close(fd)
        raise _unwritable(run_dir, exc) from None
    _held_locks[run_dir] = fd


def unlock_run_dir(run_dir: Path) -> None:
    _planned.discard(run_dir)
    if (fd := _held_locks.pop(run_dir, None)) is not None:
        os.close(fd)  # closing the descriptor releases the lock


def worth_keeping(run_dir: Path) -> bool:
    return any(next(run_dir.glob(pattern), None) is not None for pattern in OUTPUT_GLOBS)


def discard_if_empty(plan: RunPlan) -> bool:
    """Remove a directory this process created if the run left nothing in it but its config and logger stubs.

    A plan given up before its run began (:func:`plan_run` locked it) is unlocked too."""
    if plan.run_dir in _planned:
        unlock_run_dir(plan.run_dir)
    if not plan.fresh or not plan.run_dir.is_dir() or worth_keeping(plan.run_dir):
        return False
    shutil.rmtree(plan.run_dir, ignore_errors=True)
    base = plan.run_dir.parent
    if base.is_dir() and not any(base.iterdir()):
        base.rmdir()
    return True


def restore_status(run_dir: Path, record: dict, refusal: str) -> None:
    """A resume refused before it trained a step changed nothing in the run: put back the record it had
    (status, step, wall time, segments) and note why the resume was refused."""
    write_status_record(run_dir, {**{k: v for k, v in record.items() if k != "refused_resume"}, "refused_resume": refusal})


def start_segment(run_dir: Path, global_step: int) -> None:
    """Marks ``status.json`` ``running`` for a new training segment (a first launch or a resume).

    A segment killed outright (SIGKILL, a node failure) never reaches :func:`write_status`; the next segment
    finds its ``running`` record and credits it with the time up to its newest ``last.ckpt`` (the work the
    resume builds on), so ``wall_s`` and ``segments`` stay true after any kind of interruption."""
    previous = read_status(run_dir)
    wall = earlier_segments_wall_s(previous)
    if previous.get("status") == "running" and "segment_started" in previous:
        last = checkpoint(run_dir, "last")
        if last.is_file():
            wall += max(0.0, last.stat().st_mtime - float(previous["segment_started"]))
    record = {"status": "running", "global_step": int(global_step), "wall_s": round(wall, 1),
              "segments": int(previous.get("segments", 0)) + 1, "segment_started": time.time()}
    write_status_record(run_dir, record)


def write_status(run_dir: Path, status: str, global_step: int, seconds: float, error: str | None = None) -> None:
    """``status.json``: how the run ended (completed, interrupted, diverged, failed), its step, and its wall time
    summed over every resumed segment. Scripts that run many runs (studies) read it."""
    previous = read_status(run_dir)
    counted = previous.get("status") == "running"  # start_segment already counted this segment
    record = {"status": status, "global_step": int(global_step), "wall_s": round(earlier_segments_wall_s(previous) + seconds, 1),
              "segments": int(previous.get("segments", 0)) + (0 if counted else 1)}
    if error:
        record["error"] = error
    write_status_record(run_dir, record)
