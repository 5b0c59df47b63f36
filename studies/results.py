"""What each run of a study left behind, read back from its directory (the summary is derived from these).

Layout of one run: ``DIR/<cell>/seed<k>/`` holds ``version_<n>/`` (the ``train.py fit`` run directory),
``eval-test/version_<n>/`` (its best checkpoint evaluated on the test split), ``train.log`` (both
commands' console output, appended) and ``study_run.json`` (the exit code and error line of the last
launch of each command, for failures that happen before a run directory exists).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.run_layout import STATUS_FILE, checkpoint, read_status, run_versions, signal_of, versions

LOG_FILE, LAUNCH_FILE, TEST_RUN_NAME = "train.log", "study_run.json", "eval"
STATUS_OF = {"completed": "ok", "diverged": "diverged", "failed": "failed"}  # status.json -> summary status


def seed_dir(out: Path, cell: str, seed: int) -> Path:
    return out / cell / f"seed{seed}"


def fit_run_dir(seed_path: Path) -> Path | None:
    """The newest version that got anywhere (a status or a checkpoint); a version killed before its first
    checkpoint is left behind by train.py and a later launch starts the next one."""
    found = versions(seed_path)
    useful = [v for v in found if (v / STATUS_FILE).is_file() or checkpoint(v, "last").is_file()]
    return (useful or found or [None])[-1]


def fit_status(seed_path: Path) -> str | None:
    """``completed``/``diverged``/``failed``/``interrupted`` from the run's status.json; None if it never ended."""
    run_dir = fit_run_dir(seed_path)
    return read_status(run_dir).get("status") if run_dir is not None else None


def test_result(seed_path: Path) -> dict[str, Any] | None:
    """The ``test`` entry of the newest finished test evaluation (overall and per-class accuracy)."""
    for version in reversed(run_versions(seed_path, TEST_RUN_NAME, "test")):
        path = version / "per_class_accuracy.json"
        if path.is_file() and "test" in (data := json.loads(path.read_text())):
            return data["test"]
    return None


def read_launch(seed_path: Path) -> dict[str, Any]:
    path = seed_path / LAUNCH_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def record_launch(seed_path: Path, command: str, exit_code: int, error: str | None) -> None:
    record = read_launch(seed_path)
    record[command] = {"exit_code": exit_code, "error": error}
    seed_path.mkdir(parents=True, exist_ok=True)
    (seed_path / LAUNCH_FILE).write_text(json.dumps(record, indent=2) + "\n")


def read_curve(path: Path) -> tuple[list[int], list[float]]:
    if not path.is_file():
        return [], []
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    return [int(r[0]) for r in rows], [float(r[1]) for r in rows]


@dataclass
class RunResult:
    cell: str
    seed: int
    status: str  # ok | diverged | failed | pending
    best_val_acc: float = math.nan
    best_step: int | None = None
    test_acc: float | None = None
    test_per_class: dict[str, float] | None = None
    final_train_loss: float = math.nan
    wall_s: float | None = None
    run_dir: Path | None = None
    error: str | None = None
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)

    def metric(self, name: str) -> float:
        return {"val/acc": self.best_val_acc, "train/loss": self.final_train_loss}[name]

    def value(self, name: str) -> float | None:
        """A figure comparable with a report's: ``test/acc`` (the tested checkpoint, best or last, on the test split),
        ``val/acc`` (the best validation accuracy) or ``val/acc_last`` (the one after the last step)."""
        if name == "test/acc":
            return self.test_acc
        if name == "val/acc_last":
            return self.val_acc[-1] if self.val_acc else None
        return self.metric(name)


def read_run(out: Path, cell: str, seed: int) -> RunResult:
    seed_path = seed_dir(out, cell, seed)
    result = RunResult(cell, seed, "pending")
    launch = read_launch(seed_path)
    run_dir = fit_run_dir(seed_path)
    if run_dir is not None:
        result.run_dir = run_dir
        result.steps, result.loss = read_curve(run_dir / "train_loss.csv")
        result.val_steps, result.val_acc = read_curve(run_dir / "val_acc.csv")
        finite = [(v, s) for s, v in zip(result.val_steps, result.val_acc) if math.isfinite(v)]
        if finite:
            best = max(v for v, _ in finite)
            result.best_val_acc, result.best_step = best, next(s for v, s in finite if v == best)
        tail = result.loss[-20:]
        result.final_train_loss = sum(tail) / len(tail) if tail else math.nan
        if status := read_status(run_dir):
            result.wall_s = status.get("wall_s")
            result.status = STATUS_OF.get(status.get("status"), "pending")
            result.error = status.get("error")
            if result.status == "diverged" and result.error:  # a result, not an error: keep its first sentence
                result.error = result.error.removeprefix("DivergenceError: ").split(". ")[0]
    fit_launch = launch.get("fit") or {}
    if result.status == "pending" and fit_launch.get("exit_code") not in (None, 0) and signal_of(fit_launch["exit_code"]) is None:
        result.status, result.error = "failed", fit_launch.get("error")  # refused before a run directory existed
    if result.status == "failed" and not result.error:
        result.error = fit_launch.get("error") or "failed (see train.log)"
    if (test := test_result(seed_path)) is not None:
        result.test_acc, result.test_per_class = test["overall_accuracy"], test["per_class_accuracy"]
    elif result.status == "ok" and (test_launch := launch.get("test")) and test_launch.get("exit_code"):
        result.error = f"test evaluation failed: {test_launch.get('error')}"
    return result
