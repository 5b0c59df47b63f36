"""``scripts/compare_runs.py RUN_DIR...``: any run directories side by side, from studies or single runs.

The table shows only the config keys whose values differ between the runs (everything else was the
same; an argument only one class has, at its default, is no difference: ``studies/config_diff.py``), then
best and last validation accuracy, test accuracy (when the run was evaluated: an evaluation of one of its
checkpoints, found by the checkpoint it recorded, ``studies/evaluations.py``, or a test entry in the run's
own ``per_class_accuracy.json``), steps and wall time. Written as ``comparison.md`` and ``comparison.csv``
with an overlay of the learning curves (one label per run, each different, naming the model class when the
models differ), into ``--out`` (default: a new ``runs/compare/version_<k>``, so no comparison overwrites another).
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
from core.run_layout import CONFIG_FILE, read_status, versions
from studies.config_diff import differing_keys, flatten, labels
from studies.evaluations import credited_test
from studies.naming import format_value
from studies.plots import colors, smooth
from studies.results import read_curve


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


class NotARun(ValueError):
    """A path given to compare_runs.py that holds no run directory (the message is one line)."""


def check_run_dir(path: Path) -> None:
    """Raise NotARun naming the path and what to pass instead."""
    if not path.exists():
        raise NotARun(f"{path} does not exist")
    if not path.is_dir():
        raise NotARun(f"{path} is a file, not a run directory; pass runs/<name>/version_<k>")
    if not (path / "config.yaml").is_file():
        inside = [p.name for p in versions(path) if (p / CONFIG_FILE).is_file()]
        hint = f"it holds {', '.join(inside)}: pass {path / inside[-1]}" if inside else "pass runs/<name>/version_<k>"
        raise NotARun(f"{path} is not a run directory (no config.yaml); {hint}")


def load_run(path: Path) -> RunInfo:
    """Everything the table and the plot show of one run; NotARun (one line) for a path that holds none."""
    check_run_dir(path)
    try:
        info = RunInfo(path, flatten(yaml.safe_load((path / "config.yaml").read_text()) or {}))
        status = read_status(path) or None
        own = path / "per_class_accuracy.json"
        own_test = json.loads(own.read_text()).get("test") if own.is_file() else None
    except (yaml.YAMLError, ValueError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise NotARun(f"{path}: unreadable run files ({type(exc).__name__}: {first})") from None
    info.steps, info.loss = read_curve(path / "train_loss.csv")
    info.val_steps, info.val_acc = read_curve(path / "val_acc.csv")
    if status is not None:
        info.global_step, info.wall_s, info.status = status.get("global_step"), status.get("wall_s"), status.get("status", "")
    elif info.steps:
        info.global_step = info.steps[-1]
    test = credited_test(path) or own_test  # an evaluation of its own checkpoints, else a test the fit ran itself
    info.test_acc = test["overall_accuracy"] if test else None
    return info


def _common_parent(paths: list[Path]) -> Path:
    common: list[str] = []
    for part in zip(*(p.resolve().parts for p in paths)):
        if len(set(part)) > 1:
            break
        common.append(part[0])
    return Path(*common) if common else Path("/")


def rows(runs: list[RunInfo], keys: list[str]) -> tuple[list[str], list[list[str]]]:
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


def compare(runs: list[RunInfo], out: Path) -> str:
    """Write comparison.csv/.md and learning_curves.png into ``out``; return the Markdown table."""
    configs = [r.config for r in runs]
    keys = differing_keys(configs)
    header, body = rows(runs, keys)
    with open(out / "comparison.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([header, *body])
    table = "\n".join(["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * (len(header) - 5) + ["---:"] * 5) + "|", *("| " + " | ".join(row) + " |" for row in body)])
    overlay(runs, labels(configs, keys, [row[0] for row in body]), out / "learning_curves.png")
    (out / "comparison.md").write_text(f"# Comparison of {len(runs)} runs\n\n{table}\n")
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/compare_runs.py", description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run directories (runs/<name>/version_<k>, or a study's DIR/<cell>/seed<k>/version_<n>)")
    ap.add_argument("--out", type=Path, default=None, help="where the table and plot go (default: a new runs/compare/version_<k>)")
    args = ap.parse_args(argv)
    try:
        runs = [load_run(p) for p in args.runs]
    except NotARun as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        print(f"error: --out {args.out} is a file; pass a folder for the table and plot", file=sys.stderr)
        return 2
    out = args.out or new_run_dir("runs", "compare")
    out.mkdir(parents=True, exist_ok=True)
    print(compare(runs, out))
    print(f"\nWritten: {out / 'comparison.md'}, {out / 'comparison.csv'}, {out / 'learning_curves.png'}")
    return 0
