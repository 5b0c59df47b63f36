"""Run directories ``runs_dir/<run_name>/version_<k>/``: one per run, never reused by another run.

A run is *resumed in place* (same directory) from its own newest state: ``--ckpt_path last``, the
directory's ``checkpoints/last.ckpt`` named explicitly, or a SLURM requeue of the same job (Lightning
then leaves an ``hpc_ckpt_<n>.ckpt`` there). Any other checkpoint starts a new version that branches from
it, so no file of an earlier run changes. A run that fails or is refused before it produced anything
(no checkpoint, no curve, no prediction) leaves no directory behind.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from lightning.fabric.plugins.environments import SLURMEnvironment

from callbacks.status_file import earlier_segments_wall_s, read_status, write_status_record
from core.lightning_internals import hpc_checkpoints

RUN_DIR_ENV = "CIFAR_RUN_DIR"  # DDP worker processes re-run train.py: they join rank 0's directory ...
RESUME_CKPT_ENV = "CIFAR_RESUME_CKPT"  # ... and resume from the same checkpoint
CONFIG_FILE = "config.yaml"
SLURM_JOB_FILE = "slurm_job_id"
# Files that make a run directory worth keeping even if the run later failed.
OUTPUT_GLOBS = ("checkpoints/*.ckpt", "hpc_ckpt_*.ckpt", "train_loss.csv", "val_acc.csv", "predictions.csv", "per_class_accuracy.json", "metrics.csv")


@dataclass
class RunPlan:
    run_dir: Path
    ckpt_path: str | None  # the checkpoint this run starts from (resume), if any
    fresh: bool  # created by this process: removed again if the run never produced anything
    resumed_in_place: bool = False
    note: str | None = None  # printed before the run starts


def _version(path: Path) -> int:
    return int(path.name.split("_", 1)[1])


def versions(base: Path) -> list[Path]:
    if not base.is_dir():
        return []
    return sorted((p for p in base.iterdir() if re.fullmatch(r"version_\d+", p.name)), key=_version)


def new_run_dir(runs_dir: str | Path, name: str) -> Path:
    """``runs_dir/name/version_<k>`` with k one past the highest existing version, created atomically."""
    base = Path(runs_dir) / name
    base.mkdir(parents=True, exist_ok=True)
    while True:
        existing = versions(base)
        candidate = base / f"version_{_version(existing[-1]) + 1 if existing else 0}"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:  # another run took it between listing and mkdir
            continue


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The run's newest resumable state: ``checkpoints/last.ckpt`` or a SLURM ``hpc_ckpt_<n>.ckpt``."""
    candidates = [p for p in [run_dir / "checkpoints" / "last.ckpt", *hpc_checkpoints(run_dir)] if p.is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime_ns, default=None)


def latest_resumable_run(runs_dir: str | Path, name: str) -> tuple[Path, Path] | None:
    for run_dir in reversed(versions(Path(runs_dir) / name)):
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
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    newest = newest_checkpoint(run_dir) if (run_dir / CONFIG_FILE).is_file() else None
    return run_dir if newest is not None and newest.resolve() == ckpt else None


def plan_run(subcommand: str, runs_dir: str | Path, name: str, ckpt_path: str | None) -> RunPlan:
    """Where this run goes and what it resumes from; see the module docstring for the rules."""
    if os.environ.get("LOCAL_RANK", "0") != "0" and os.environ.get(RUN_DIR_ENV):
        return RunPlan(Path(os.environ[RUN_DIR_ENV]), os.environ.get(RESUME_CKPT_ENV) or ckpt_path, fresh=False)
    if subcommand != "fit":
        return RunPlan(new_run_dir(runs_dir, f"{name}-{subcommand}"), ckpt_path, fresh=True)
    job = slurm_job()
    if job and ckpt_path in (None, "last"):
        if int(os.environ.get("SLURM_PROCID", "0")) > 0:
            return _join_slurm_rank0(runs_dir, name, job)
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


def _join_slurm_rank0(runs_dir: str | Path, name: str, job: str, timeout_s: float = 120.0) -> RunPlan:
    """SLURM starts every rank itself; ranks > 0 wait for rank 0 to create (or find) the job's directory."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (run_dir := slurm_run_dir(runs_dir, name, job)) is not None:
            ckpt = newest_checkpoint(run_dir)
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


_held_locks: dict[Path, int] = {}  # open descriptors: the OS also releases them when the process dies, however


def lock_run_dir(run_dir: Path) -> None:
    """One training process per run directory: a second one (a study re-launched while an orphaned run
    still trains, two shells resuming the same run) is refused instead of interleaving checkpoints."""
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode().strip() or "another process"
        os.close(fd)
        raise RunDirBusy(f"{run_dir} is in use by process {holder}, which is still training there; wait for it or stop it first.") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held_locks[run_dir] = fd


def unlock_run_dir(run_dir: Path) -> None:
    if (fd := _held_locks.pop(run_dir, None)) is not None:
        os.close(fd)  # closing the descriptor releases the lock


def worth_keeping(run_dir: Path) -> bool:
    return any(next(run_dir.glob(pattern), None) is not None for pattern in OUTPUT_GLOBS)


def discard_if_empty(plan: RunPlan) -> bool:
    """Remove a directory this process created if the run left nothing in it but its config and logger stubs."""
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
        last = run_dir / "checkpoints" / "last.ckpt"
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
