"""The `slurm` tests' gate, without a SLURM: a fake ``sinfo``/``squeue`` on PATH answers as a cluster would."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.slurm_helpers import REQUIRE_ENV, SlurmCluster, find_cluster, job_state, reachable_cluster


def fake_tool(bin_dir: Path, name: str, stdout: str, rc: int = 0) -> None:
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f"#!/bin/sh\nprintf '{stdout}'\nexit {rc}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH holding only the fake tools (and the shell they need)."""
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}/bin{os.pathsep}/usr/bin")
    return tmp_path / "bin"


def test_an_idle_node_is_a_cluster_and_a_down_one_is_not(bin_dir: Path) -> None:
    fake_tool(bin_dir, "sinfo", "vm idle 2\\nother down* 8\\n")
    assert find_cluster() == (SlurmCluster((("vm", 2),)), "")
    fake_tool(bin_dir, "sinfo", "vm down* 2\\n")
    assert find_cluster() == (None, "no node is up: vm down*")


def test_no_slurm_skips_with_the_reason_and_fails_when_ci_requires_it(bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if Path("/bin/sinfo").exists() or Path("/usr/bin/sinfo").exists():
        fake_tool(bin_dir, "sinfo", "", rc=1)  # shadow the real one: "sinfo: exit 1"
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"^no SLURM reachable \(.+\); start one with scripts/local_slurm.sh start$"):
        reachable_cluster()
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=rf"^{REQUIRE_ENV}=1 but no SLURM reachable"):
        reachable_cluster()


def test_a_job_squeue_no_longer_knows_is_gone(bin_dir: Path) -> None:
    fake_tool(bin_dir, "squeue", "RUNNING\\n")
    assert job_state("7") == "RUNNING"
    fake_tool(bin_dir, "squeue", "")  # finished, not yet purged: squeue lists only queued and running jobs
    assert job_state("7") is None
    fake_tool(bin_dir, "squeue", "slurm_load_jobs error: Invalid job id specified", rc=1)  # purged
    assert job_state("7") is None
