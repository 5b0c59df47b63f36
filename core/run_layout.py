"""A run's layout and outcome, as data: where its files are, its status, and why its process stopped.

Every tool that finds or judges a run imports this module instead of knowing the rules itself: ``train.py``
and ``cli/run_dirs.py`` (which make the directories), the study launchers (local processes or SLURM jobs,
which have no console of the run to read), ``studies/results.py``, the benchmarks and the tests.

Layout: a fit is ``<runs_dir>/<name>/version_<k>/``; an evaluation (``validate``/``test``/``predict``) of
run ``<name>`` is ``<runs_dir>/<name>-<subcommand>/version_<k>/``. A run directory holds ``config.yaml``,
``status.json`` (how far it got and how it ended), ``checkpoints/`` (``last.ckpt``, ``best.ckpt``) and
``.lock`` (held by the process training there, its pid inside).

Outcome: the process's exit code (:class:`ExitCode`, or 128+N for a signal) and, when a launcher asks for
it through ``CIFAR_OUTCOME_FILE``, a JSON record ``{"exit_code": .., "error": ..}`` with the one-line error
the console showed. A launcher decides what to do next from these two, never from the console's text.
"""

from __future__ import annotations

import enum
import fcntl
import json
import os
import re
import signal
from pathlib import Path
from typing import Any

VERSION_PREFIX = "version_"
CONFIG_FILE = "config.yaml"
STATUS_FILE = "status.json"
LOCK_FILE = ".lock"
CHECKPOINT_DIR = "checkpoints"
FIT = "fit"
OUTCOME_ENV = "CIFAR_OUTCOME_FILE"
_VERSION_RE = re.compile(rf"{VERSION_PREFIX}(\d+)")


class ExitCode(enum.IntEnum):
    """``train.py``'s exit codes; a signal N ends it with ``128 + N`` (:func:`signal_of`)."""

    OK = 0
    FAILED = 1  # an unexpected error (a traceback): a bug or a broken environment
    BAD_INPUT = 2  # a flag, file or path the user gave is wrong (one line names it)
    DIVERGED = 3  # the loss became NaN/inf: a result of the recipe, not an error
    BUSY = 75  # the run directory is in use by another live process: try again later (sysexits' EX_TEMPFAIL)


def signal_of(exit_code: int) -> int | None:
    """The signal that stopped a process, from its exit code (``128 + N`` or Popen's ``-N``), else None."""
    if exit_code < 0:
        return -exit_code
    if 128 < exit_code < 128 + signal.NSIG:
        return exit_code - 128
    return None


def is_result(exit_code: int) -> bool:
    """The run ended by itself with something to report: it completed or it diverged."""
    return exit_code in (ExitCode.OK, ExitCode.DIVERGED)


# --------------------------------------------------------------------------- where a run's files are
def run_name(name: str, subcommand: str = FIT) -> str:
    """The folder of a run's versions: ``<name>`` for a fit, ``<name>-<subcommand>`` for an evaluation of it."""
    return name if subcommand == FIT else f"{name}-{subcommand}"


def version_number(path: Path) -> int | None:
    match = _VERSION_RE.fullmatch(Path(path).name)
    return int(match.group(1)) if match else None


def versions(base: Path) -> list[Path]:
    """``base/version_<k>`` folders, oldest first (by k, not by name: version_10 after version_9)."""
    base = Path(base)
    if not base.is_dir():
        return []
    return sorted((p for p in base.iterdir() if version_number(p) is not None), key=lambda p: version_number(p) or 0)


def next_version(base: Path) -> Path:
    """The version folder a new run of ``base`` takes: one past the highest existing one."""
    existing = versions(base)
    return Path(base) / f"{VERSION_PREFIX}{(version_number(existing[-1]) or 0) + 1 if existing else 0}"


def run_versions(runs_dir: str | Path, name: str, subcommand: str = FIT) -> list[Path]:
    return versions(Path(runs_dir) / run_name(name, subcommand))


def newest_run(runs_dir: str | Path, name: str, subcommand: str = FIT) -> Path | None:
    found = run_versions(runs_dir, name, subcommand)
    return found[-1] if found else None


def checkpoint(run_dir: Path, name: str = "last") -> Path:
    """``run_dir/checkpoints/<name>.ckpt`` (``last``, ``best``, or an epoch file's stem)."""
    return Path(run_dir) / CHECKPOINT_DIR / f"{name}.ckpt"


def run_dir_of_checkpoint(ckpt: Path) -> Path:
    """The run directory a checkpoint file belongs to (``checkpoints/x.ckpt`` or a SLURM ``hpc_ckpt`` beside it)."""
    ckpt = Path(ckpt)
    return ckpt.parent.parent if ckpt.parent.name == CHECKPOINT_DIR else ckpt.parent


# --------------------------------------------------------------------------- its status
def read_status(run_dir: Path) -> dict:
    """The run's ``status.json`` record ({} when there is none yet, or it cannot be read)."""
    path = Path(run_dir) / STATUS_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_status_record(run_dir: Path, record: dict) -> None:
    """Atomically: a reader (a study, ``cat``) never sees half a record."""
    path = Path(run_dir) / STATUS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def lock_holder(run_dir: Path) -> str | None:
    """The pid of the live process (this one included) that holds the run directory's lock, else None."""
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return os.read(fd, 32).decode().strip() or "another process"
    finally:
        os.close(fd)  # also releases the probe's own lock


# --------------------------------------------------------------------------- why its process stopped
def write_outcome(exit_code: int, error: str | None) -> None:
    """Record how this process ends where the launcher asked (``$CIFAR_OUTCOME_FILE``); a no-op otherwise."""
    path = os.environ.get(OUTCOME_ENV)
    if not path:
        return
    record = {"exit_code": int(exit_code), "error": error}
    tmp = Path(f"{path}.tmp")
    try:
        tmp.write_text(json.dumps(record) + "\n")
        os.replace(tmp, path)
    except OSError:
        pass  # the launcher then has the exit code alone; never turn a run's result into a crash here


def read_outcome(path: Path, exit_code: int) -> dict[str, Any]:
    """What the child wrote through :func:`write_outcome`, if it got that far and its code matches; else the
    exit code alone (a process killed outright writes nothing)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        record = {}
    if record.get("exit_code") != exit_code:
        record = {}
    return {"exit_code": exit_code, "error": record.get("error")}
