"""The study's tables: ``summary.csv`` (one row per run) and ``summary.md`` (one row per cell, mean ± std
over seeds, the best cell marked), both derived from the run directories and rewritten on every run.

Means and standard deviations (sample std, ddof=1) are over the runs that completed (``ok``); diverged
and failed runs are counted in the ``runs`` column, never silently dropped, and drawn in the plots.
A study file's ``reported:`` figures get a second table in ``summary.md`` (and ``reported.csv``): the
report's value, ours over the seeds, and the difference, computed from the same runs as the first.
"""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from studies.naming import format_value
from studies.results import RunResult
from studies.spec import Cell, StudySpec

STATUSES = ("ok", "diverged", "failed", "pending")


@dataclass
class Stat:
    mean: float = math.nan
    std: float = math.nan
    n: int = 0

    def text(self, digits: int = 4) -> str:
        return "—" if self.n == 0 else f"{self.mean:.{digits}f} ± {self.std:.{digits}f} (n={self.n})"


def stat(values: list[float | None]) -> Stat:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return Stat()
    return Stat(statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else 0.0, len(finite))


@dataclass
class CellSummary:
    cell: Cell
    runs: list[RunResult]

    @property
    def ok(self) -> list[RunResult]:
        return [r for r in self.runs if r.status == "ok"]

    def counts(self) -> dict[str, int]:
        return {s: n for s in STATUSES if (n := sum(r.status == s for r in self.runs))}

    def metric(self, name: str) -> Stat:
        return stat([r.metric(name) for r in self.ok])

    def val(self) -> Stat:
        return stat([r.best_val_acc for r in self.ok])

    def test(self) -> Stat:
        return stat([r.test_acc for r in self.ok])


def summarise(cells: list[Cell], results: list[RunResult]) -> list[CellSummary]:
    return [CellSummary(c, [r for r in results if r.cell == c.name]) for c in cells]


def best_cell(summaries: list[CellSummary], spec: StudySpec) -> CellSummary | None:
    candidates = [s for s in summaries if s.metric(spec.metric).n]
    if not candidates:
        return None
    sign = 1 if spec.higher_is_better else -1
    return max(candidates, key=lambda s: sign * s.metric(spec.metric).mean)


def varied_values(cell: Cell, spec: StudySpec) -> dict[str, str]:
    short = spec.short_names()
    return {short[k]: format_value(cell.flags[k]) if k in cell.flags else "" for k in spec.varied_keys()}


def write_csv(path: Path, summaries: list[CellSummary], spec: StudySpec, out: Path) -> Path:
    """One row per run: the varied values, seed, status, metrics, wall time, error line, run directory."""
    columns = ["cell", *spec.short_names().values(), "seed", "status", "best_val_acc", "best_step", *(["test_acc"] if spec.test else []),
               "final_train_loss", "wall_s", "error", "run_dir"]  # fmt: skip
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for s in summaries:
            for r in s.runs:
                row = {"cell": s.cell.name, **varied_values(s.cell, spec), "seed": r.seed, "status": r.status,
                       "best_val_acc": _num(r.best_val_acc), "best_step": "" if r.best_step is None else r.best_step,
                       "final_train_loss": _num(r.final_train_loss), "wall_s": "" if r.wall_s is None else r.wall_s,
                       "error": r.error or "", "run_dir": str(r.run_dir.relative_to(out)) if r.run_dir else ""}  # fmt: skip
                if spec.test:
                    row["test_acc"] = _num(r.test_acc)
                writer.writerow(row)
    return path


def _num(value: float | None) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else repr(value)


def markdown(summaries: list[CellSummary], spec: StudySpec) -> str:
    """One row per cell; the best cell (by the study's metric, over completed runs) in bold and marked."""
    best = best_cell(summaries, spec)
    varied = list(spec.short_names().values())
    show_varied = varied if len(varied) > 1 or spec.named else []  # one grid flag: the cell name says it all
    header = ["cell", *show_varied, "runs", "best val acc", *(["test acc"] if spec.test else []), "best step", "final train loss", "wall s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i < 1 + len(show_varied) + 1 else "---:" for i in range(len(header))) + "|"]
    for s in summaries:
        name = f"**{s.cell.name}** (best)" if s is best else s.cell.name
        runs = ", ".join(f"{n} {status}" for status, n in s.counts().items())
        values = varied_values(s.cell, spec)
        steps = stat([float(r.best_step) for r in s.ok if r.best_step is not None])
        row = [name, *(values[v] for v in show_varied), runs, s.val().text(), *([s.test().text()] if spec.test else []),
               "—" if not steps.n else f"{steps.mean:.0f}", stat([r.final_train_loss for r in s.ok]).text(3).split(" (")[0],
               "—" if not (w := stat([r.wall_s for r in s.runs])).n else f"{w.mean:.0f}"]  # fmt: skip
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def problems(summaries: list[CellSummary]) -> list[str]:
    """Failed runs with their error's last line, test evaluations that failed, runs not finished yet."""
    lines = []
    for s in summaries:
        for r in s.runs:
            if r.status == "failed":
                lines.append(f"FAILED  {s.cell.name} seed {r.seed}: {r.error}")
            elif r.status == "pending":
                lines.append(f"PENDING {s.cell.name} seed {r.seed}: not finished (re-run the study to resume it)")
            elif r.error and r.status != "diverged":
                lines.append(f"ERROR   {s.cell.name} seed {r.seed}: {r.error}")
    return lines


@dataclass
class Comparison:
    cell: str
    reported: float
    ours: Stat

    @property
    def difference(self) -> float:
        return self.ours.mean - self.reported if self.ours.n else math.nan


def comparisons(summaries: list[CellSummary], spec: StudySpec) -> list[Comparison]:
    """The report's figure and ours (over the cell's completed runs) for each cell the report measured."""
    if spec.reported is None:
        return []
    by_name = {s.cell.name: s for s in summaries}
    return [Comparison(cell, value, stat([r.value(spec.reported.metric) for r in by_name[cell].ok]) if cell in by_name else Stat())
            for cell, value in spec.reported.values.items()]  # fmt: skip


def reported_markdown(found: list[Comparison], spec: StudySpec) -> str:
    assert spec.reported is not None
    source = f" ({spec.reported.source})" if spec.reported.source else ""
    lines = [f"## Reported{source} vs ours: {spec.reported.metric}", "", "| cell | reported | ours (mean ± std over seeds) | difference |", "|---|---:|---:|---:|"]
    for c in found:
        diff = "—" if not c.ours.n else f"{100 * c.difference:+.1f} points"
        lines.append(f"| {c.cell} | {c.reported:.4f} | {c.ours.text()} | {diff} |")
    return "\n".join(lines) + "\n"


def write_reported_csv(path: Path, found: list[Comparison], spec: StudySpec) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["cell", "metric", "reported", "ours_mean", "ours_std", "n", "difference", "source"])
        for c in found:
            writer.writerow([c.cell, spec.reported.metric, repr(c.reported), _num(c.ours.mean), _num(c.ours.std), c.ours.n, _num(c.difference), spec.reported.source])
    return path


def write_markdown(path: Path, summaries: list[CellSummary], spec: StudySpec, title: str) -> str:
    text = f"# {title}\n\n{markdown(summaries, spec)}"
    if found := comparisons(summaries, spec):
        text += "\n" + reported_markdown(found, spec)
        write_reported_csv(path.parent / "reported.csv", found, spec)
    if best := best_cell(summaries, spec):
        text += f"\nBest cell by {spec.metric} ({'higher' if spec.higher_is_better else 'lower'} is better): **{best.cell.name}** ({best.metric(spec.metric).text()}).\n"
    if found := problems(summaries):
        text += "\n" + "\n".join(f"- {line}" for line in found) + "\n"
    path.write_text(text)
    return text
