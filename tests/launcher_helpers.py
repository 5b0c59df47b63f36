"""What the launcher tests share (submitit's local executor here, a real SLURM in test_slurm_launcher.py): a tiny
study, its summary without the wall-clock columns, and the processes of a running job."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from tests.cli_helpers import ROOT, script_env

SPEC = """name: tiny
config: {root}/configs/mlp.yaml
flags: {{data.preprocessing: standardize}}
grid:
  model.init_args.optimizer.init_args.lr: [0.05, 1.0e6]
seeds: {seeds}
metric: val/acc
test: true
"""
PAUSED_SPEC = """name: one
config: {root}/configs/mlp.yaml
flags:
  data.preprocessing: standardize
  trainer.callbacks: [{{class_path: tests.helpers.pause_at_step.PauseAtStep, init_args: {{step: {step}}}}}]
seeds: {seeds}
"""  # one run that waits at ``step`` while $PAUSE_AT_STEP_MARKER names a file that does not exist yet
TIMED_COLUMNS = ("wall_s",)


def study_file(tmp_path: Path, seeds: str = "[0, 1]", text: str = SPEC, **fields: object) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(text.format(root=ROOT, seeds=seeds, **fields))
    return path


def tiny_args(data: Path, steps: int = 200, every: int = 50) -> list[str]:
    from tests.test_studies import tiny_args as study_tiny_args

    return study_tiny_args(data, steps, every)


def summary_rows(out: Path) -> list[dict[str, str]]:
    """``summary.csv`` without what depends on the clock (and on where the study directory is)."""
    with open(out / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{k: v.replace(str(out), "DIR") for k, v in row.items() if not any(t in k for t in TIMED_COLUMNS)} for row in rows]


def recorded_jobs(out: Path) -> dict[str, str]:
    return json.loads((out / ".slurm" / "jobs.json").read_text())


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[1])


def wait_for_file(path: Path, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while not path.is_file() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout_s:.0f} s"
        time.sleep(0.1)
    return path.read_text().strip()


def wait_until(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} within {timeout_s:.0f} s"
        time.sleep(0.2)


def pid_gone(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] == "Z"
    except OSError:
        return True


def assert_resumed_once_like_the_reference(out: Path, reference_out: Path) -> None:
    """The study's one run stopped once and resumed in place, and ended bit-identical to the uninterrupted one."""
    import torch

    from core.run_layout import checkpoint, read_status

    run_dir, reference = out / "one" / "seed0" / "version_0", reference_out / "one" / "seed0" / "version_0"
    assert read_status(run_dir)["status"] == "completed" and read_status(run_dir)["segments"] == 2, "stopped once, resumed in place"
    a, b = (torch.load(checkpoint(d, "last"), weights_only=True) for d in (run_dir, reference))
    assert a["global_step"] == b["global_step"] == 200
    for key, value in b["state_dict"].items():
        assert torch.equal(a["state_dict"][key], value), f"{key} differs after the requeue"
    assert (run_dir / "val_acc.csv").read_bytes() == (reference / "val_acc.csv").read_bytes()
    assert summary_rows(out) == summary_rows(reference_out)


REFERENCES = {  # name: (study file text, its fields, tiny_args' steps): the uninterrupted studies launchers are held to
    "grid": (SPEC, {"seeds": "[0, 1]"}, 200),
    "paused": (PAUSED_SPEC, {"seeds": "[0]", "step": 120}, 200),
}


def shared_reference(tmp_path_factory: pytest.TempPathFactory, name: str) -> tuple[Path, Path, Path]:
    """(study file, data, DIR) of an uninterrupted local study, run once per test session whichever xdist worker
    asks first (a file lock in the workers' common temp folder): the submitit and SLURM tests compare with it.
    A ``scripts/study.py`` process starts its runs (forked, its default), one thread each, as in those tests."""
    from tests.conftest import write_batches

    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / f"reference-{name}"
    text, fields, steps = REFERENCES[name]
    with FileLock(f"{root}.lock"):
        if not (root / "done").is_file():
            if root.exists():
                shutil.rmtree(root)
            root.mkdir()
            write_batches(root / "data")
            spec = study_file(root, text=text, **fields)
            done = subprocess.run([sys.executable, str(ROOT / "scripts" / "study.py"), str(spec), "--out", str(root / "out"), "--jobs", "2",
                                   *map(str, tiny_args(root / "data", steps=steps))], cwd=ROOT, capture_output=True, text=True,
                                  env=script_env({"OMP_NUM_THREADS": "1"}), timeout=900)  # fmt: skip
            assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
            (root / "done").write_text("")
    return root / "tiny.yaml", root / "data", root / "out"
