"""``scripts/compare_runs.py RUN_DIR...``: any run directories side by side, from studies or single runs.

The table shows only the config keys whose values differ between the runs (everything else was the
same), then best and last validation accuracy, test accuracy (when the run was evaluated: a study's
``eval-test`` next to it, or a test entry in the run's own ``per_class_accuracy.json``), steps and wall
time. Written as ``comparison.md`` and ``comparison.csv`` with an overlay of the learning curves, into
``--out`` (default: a new ``runs/compare/version_<k>``, so no comparison overwrites another).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from callbacks.outputs import plt, save_figure
from cli.run_dirs import new_run_dir
from studies.naming import format_value
from studies.plots import colors, smooth
from studies.results import read_curve, test_result

IGNORED = ("run_name", "runs_dir")  # differ between any two runs by construction; the run column names them


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config -> dotted keys; lists stay values (``model.init_args.hidden_sizes: [100]``)."""
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


@dataclass
class RunInfo:
    path: Path
    config: dict[str, Any]
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    test_acc: float | None = None
    global_step: int | None = None
    wall_s: float | None = None
    status: str = ""

    @property
    def best_val(self) -> float:
        finite = [v for v in self.val_acc if math.isfinite(v)]
        return max(finite) if finite else math.nan

    @property
    def last_val(self) -> float:
        return self.val_acc[-1] if self.val_acc else math.nan


def load_run(path: Path) -> RunInfo:
    if not (path / "config.yaml").is_file():
        raise FileNotFoundError(f"{path} is not a run directory (no config.yaml); pass runs/<name>/version_<k>")
    info = RunInfo(path, flatten(yaml.safe_load((path / "config.yaml").read_text()) or {}))
    info.steps, info.loss = read_curve(path / "train_loss.csv")
    info.val_steps, info.val_acc = read_curve(path / "val_acc.csv")
    if (path / "status.json").is_file():
        status = json.loads((path / "status.json").read_text())
        info.global_step, info.wall_s, info.status = status.get("global_step"), status.get("wall_s"), status.get("status", "")
    elif info.steps:
        info.global_step = info.steps[-1]
    test = test_result(path.parent)  # a study's evaluation (DIR/<cell>/seed<k>/eval-test) next to the run
    own = path / "per_class_accuracy.json"
    if test is None and own.is_file():
        test = json.loads(own.read_text()).get("test")
    info.test_acc = test["overall_accuracy"] if test else None
    return info


def differing_keys(runs: list[RunInfo]) -> list[str]:
    keys = list(dict.fromkeys(k for r in runs for k in r.config))
    return [k for k in keys if k not in IGNORED and len({json.dumps(r.config.get(k, "<unset>"), sort_keys=True, default=str) for r in runs}) > 1]


def _common_parent(paths: list[Path]) -> Path:
    common: list[str] = []
    for part in zip(*(p.resolve().parts for p in paths)):
        if len(set(part)) > 1:
            break
        common.append(part[0])
    return Path(*common) if common else Path("/")


def rows(runs: list[RunInfo]) -> tuple[list[str], list[list[str]]]:
    keys = differing_keys(runs)
    base = _common_parent([r.path for r in runs]) if len(runs) > 1 else runs[0].path.resolve().parent.parent
    header = ["run", *keys, "status", "best val acc", "last val acc", "test acc", "steps", "wall s"]
    body = []
    for r in runs:
        body.append([str(r.path.resolve().relative_to(base)), *(format_value(r.config.get(k)) for k in keys), r.status or "—",
                     _fmt(r.best_val), _fmt(r.last_val), _fmt(r.test_acc), "—" if r.global_step is None else str(r.global_step),
                     "—" if r.wall_s is None else f"{r.wall_s:.0f}"])  # fmt: skip
    return header, body


def _fmt(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.4f}"


def overlay(runs: list[RunInfo], labels: list[str], path: Path) -> Path:
    """Training loss (running mean) and validation accuracy of every run; diverged runs dashed, their
    exploding losses leaving through the top of the axis."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.5))
    top = []
    for r, label, color in zip(runs, labels, colors(len(runs))):
        diverged = r.status == "diverged"
        label += " (diverged)" if diverged else ""
        finite = [(s, v) for s, v in zip(r.steps, smooth(r.loss, max(1, len(r.loss) // 60))) if math.isfinite(v)]
        ax_loss.plot(*(zip(*finite) if finite else ([], [])), "--" if diverged else "-", color=color, lw=1, label=label)
        if finite and not diverged:
            top.append(max(v for _, v in finite))
        if r.val_steps:
            ax_acc.plot(r.val_steps, r.val_acc, "o-", ms=3, color=color, lw=1, label=label)
    if top:
        ax_loss.set_ylim(0, 1.1 * max(top))
    ax_loss.set(xlabel="step", ylabel="training loss (running mean)", title="training loss")
    ax_acc.set(xlabel="step", ylabel="validation accuracy", title="validation accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    ax_loss.legend(fontsize=7)
    return save_figure(fig, path)


def compare(paths: list[Path], out: Path) -> str:
    runs = [load_run(p) for p in paths]
    header, body = rows(runs)
    with open(out / "comparison.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([header, *body])
    table = "\n".join(["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * (len(header) - 5) + ["---:"] * 5) + "|", *("| " + " | ".join(row) + " |" for row in body)])
    keys = differing_keys(runs)
    labels = [", ".join(f"{k.rsplit('.', 1)[-1]}={format_value(r.config.get(k))}" for k in keys[:3]) or row[0] for r, row in zip(runs, body)]
    overlay(runs, labels, out / "learning_curves.png")
    (out / "comparison.md").write_text(f"# Comparison of {len(runs)} runs\n\n{table}\n")
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/compare_runs.py", description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run directories (runs/<name>/version_<k>, or a study's DIR/<cell>/seed<k>/version_0)")
    ap.add_argument("--out", type=Path, default=None, help="where the table and plot go (default: a new runs/compare/version_<k>)")
    args = ap.parse_args(argv)
    missing = [p for p in args.runs if not (p / "config.yaml").is_file()]
    if missing:
        print(f"error: {missing[0]} is not a run directory (no config.yaml); pass runs/<name>/version_<k>", file=sys.stderr)
        return 2
    out = args.out or new_run_dir("runs", "compare")
    out.mkdir(parents=True, exist_ok=True)
    print(compare(args.runs, out))
    print(f"\nWritten: {out / 'comparison.md'}, {out / 'comparison.csv'}, {out / 'learning_curves.png'}")
    return 0
