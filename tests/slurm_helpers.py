"""The tests marked ``slurm`` run against a real SLURM (``scripts/local_slurm.sh start`` brings up a one-node
one): the ``slurm_cluster`` fixture finds it or skips, and the helpers here submit and wait on its jobs with
timeouts, so a stuck job fails its test instead of hanging the suite.

Where no SLURM answers, the tests skip with the reason; in CI (``CIFAR_REQUIRE_SLURM=1``, set by ``.ci/run``)
a missing SLURM fails them instead, so a broken cluster cannot pass as "all skipped".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REQUIRE_ENV = "CIFAR_REQUIRE_SLURM"
SINFO_TIMEOUT_S = 5.0
USABLE_STATES = ("idle", "mixed", "allocated", "completing")  # sinfo %T; a trailing "*" means not responding


@dataclass(frozen=True)
class SlurmCluster:
    """The cluster's usable nodes as (name, CPUs), so a test can size its jobs."""

    nodes: tuple[tuple[str, int], ...]

    @property
    def cpus(self) -> int:
        return sum(cpus for _, cpus in self.nodes)


def _run(*cmd: str, timeout_s: float = SINFO_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout_s)


def find_cluster() -> tuple[SlurmCluster | None, str]:
    """The reachable cluster's usable nodes, or None and why not (one line)."""
    if shutil.which("sinfo") is None:
        return None, "sinfo is not installed"
    try:
        out = _run("sinfo", "-h", "-N", "-o", "%N %T %c")
    except subprocess.TimeoutExpired:
        return None, f"sinfo did not answer within {SINFO_TIMEOUT_S:.0f} s"
    if out.returncode != 0:
        line = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        return None, line if line.startswith("sinfo") else f"sinfo: {line}"
    rows = [line.split() for line in out.stdout.splitlines() if line.strip()]
    usable = tuple((name, int(cpus)) for name, state, cpus in rows if state in USABLE_STATES)
    if not usable:
        return None, "no node is up: " + (", ".join(f"{name} {state}" for name, state, _ in rows) or "sinfo lists no node")
    return SlurmCluster(usable), ""


@pytest.fixture(scope="session")
def slurm_cluster() -> SlurmCluster:
    """A reachable SLURM with at least one usable node; else skip (or fail, under ``CIFAR_REQUIRE_SLURM=1``)."""
    return reachable_cluster()


def reachable_cluster() -> SlurmCluster:
    """The fixture's body, callable from a test of it."""
    cluster, reason = find_cluster()
    if cluster is None:
        message = f"no SLURM reachable ({reason}); start one with scripts/local_slurm.sh start"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {message}", pytrace=False)
        pytest.skip(message)
    return cluster


def job_state(job_id: str) -> str | None:
    """The job's state as squeue shows it (PENDING, RUNNING, COMPLETING, ...), or None once it has left the queue
    (finished and past MinJobAge, or never known): squeue's answer, not sacct's, which needs accounting."""
    out = _run("squeue", "-h", "-j", job_id, "-o", "%T")
    if out.returncode != 0:  # "Invalid job id specified": already purged
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None


def wait_until(job_id: str, states: tuple[str, ...], timeout_s: float) -> str | None:
    """Poll until the job is in one of ``states`` (None: gone from the queue); cancels it and fails the test
    if that takes longer than ``timeout_s``. Returns the state reached."""
    deadline = time.monotonic() + timeout_s
    state = job_state(job_id)
    while state not in states:
        if state is None:
            pytest.fail(f"SLURM job {job_id} left the queue while waiting for {' or '.join(states)}", pytrace=False)
        if time.monotonic() > deadline:
            subprocess.run(["scancel", job_id], capture_output=True, timeout=SINFO_TIMEOUT_S)
            pytest.fail(f"SLURM job {job_id} still {state} after {timeout_s:.0f} s (cancelled); waiting for {' or '.join(s or 'gone' for s in states)}", pytrace=False)
        time.sleep(0.25)
        state = job_state(job_id)
    return state


def wait_until_gone(job_id: str, timeout_s: float) -> None:
    """Wait until the job has left the queue (completed, failed or cancelled: ask its outputs which)."""
    wait_until(job_id, (None,), timeout_s)


def sbatch(*args: str, cwd: Path, env: dict | None = None) -> str:
    """Submit with ``sbatch --parsable ARGS`` (e.g. ``--wrap CMD`` or a script path); returns the job id."""
    out = subprocess.run(["sbatch", "--parsable", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"sbatch {' '.join(args)}: {out.stderr.strip()}"
    return out.stdout.strip().split(";")[0]
