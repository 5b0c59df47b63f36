"""What the launcher tests share (submitit's local executor here, a real SLURM in test_slurm_launcher.py): a tiny
study, its summary without the wall-clock columns, and the processes of a running job."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

from tests.cli_helpers import ROOT

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
