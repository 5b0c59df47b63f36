"""The study's figures: metric vs each varied flag (error bars over seeds), every cell's mean learning
curve with a band over seeds, and per-class test accuracy per cell (the course's "Accuracy of plane" table).

Diverged and failed runs are drawn (red/grey crosses at the bottom of the metric plots, dashed curves),
never dropped: a learning rate that diverges is a result.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from callbacks.outputs import plt, save_figure
from studies.naming import format_value, safe_name, short_keys
from studies.summary import CellSummary, stat
from studies.spec import StudySpec


def _numeric(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def colors(n: int) -> list[Any]:
    return list(plt.cm.tab10(np.arange(n) % 10)) if n <= 10 else list(plt.cm.viridis(np.linspace(0, 0.95, n)))


def metric_plots(summaries: list[CellSummary], spec: StudySpec, out: Path) -> list[Path]:
    """``metric_vs_<flag>.png`` for every coordinate of the cells; one line per value of the other coordinates."""
    dims = list(dict.fromkeys(k for s in summaries for k in s.cell.coords))
    short = {**short_keys([d for d in dims if d != "cell"]), "cell": "cell"}
    paths = []
    for dim in dims:
        values = list(dict.fromkeys(_key(s.cell.coords.get(dim)) for s in summaries))
        raw = {_key(s.cell.coords.get(dim)): s.cell.coords.get(dim) for s in summaries}
        numeric = _numeric([raw[v] for v in values])
        positions = {v: raw[v] if numeric else i for i, v in enumerate(values)}
        groups: dict[str, list[CellSummary]] = defaultdict(list)
        for s in summaries:
            rest = ",".join(f"{short[d]}={format_value(v)}" for d, v in s.cell.coords.items() if d != dim)
            groups[rest].append(s)
        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        for (label, members), color in zip(groups.items(), colors(len(groups))):
            members = sorted(members, key=lambda s: positions[_key(s.cell.coords.get(dim))])
            xs = [positions[_key(s.cell.coords.get(dim))] for s in members]
            for what, style, getter in (("best val acc" if spec.metric == "val/acc" else spec.metric, "o-", lambda s: s.metric(spec.metric)), ("test acc", "s--", CellSummary.test)):
                if what == "test acc" and not spec.test:
                    continue
                stats = [getter(s) for s in members]
                pts = [(x, st) for x, st in zip(xs, stats) if st.n]
                if pts:
                    name = f"{what}" + (f" ({label})" if label else "")
                    ax.errorbar([x for x, _ in pts], [st.mean for _, st in pts], yerr=[st.std for _, st in pts], fmt=style, color=color, capsize=4, ms=5, lw=1.2, label=name)
            _mark_bad(ax, members, xs)
        if numeric and all(v > 0 for v in positions.values()) and max(positions.values()) / min(positions.values()) >= 100:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(list(positions.values()), [format_value(raw[v]) for v in values], rotation=20 if len(values) > 4 else 0, ha="right" if len(values) > 4 else "center")
        ax.set_xlabel(short[dim] if dim == "cell" else f"{short[dim]}  ({dim})")
        ax.set_ylabel(spec.metric if spec.metric != "val/acc" else "accuracy (mean ± std over seeds)")
        ax.set_title(f"{spec.name}: {spec.metric} vs {short[dim]} ({len(spec.seeds)} seed{'s' * (len(spec.seeds) > 1)})")
        ax.grid(alpha=0.3, which="both")
        _dedupe_legend(ax)
        paths.append(save_figure(fig, out / f"metric_vs_{safe_name(short[dim])}.png"))
    return paths


def _key(value: Any) -> str:
    return repr(value)


def _mark_bad(ax: Any, members: list[CellSummary], xs: list[Any]) -> None:
    """Red (diverged) / grey (failed) crosses along the bottom edge, with how many seeds."""
    for s, x in zip(members, xs):
        counts = s.counts()
        for status, color in (("diverged", "tab:red"), ("failed", "tab:gray")):
            if counts.get(status):
                ax.plot([x], [0.04], "X", color=color, ms=11, mew=1, transform=ax.get_xaxis_transform(), label=status, clip_on=False)
                ax.annotate(f"{counts[status]}/{len(s.runs)}\n{status}", (x, 0.09), xycoords=("data", "axes fraction"), ha="center", fontsize=7, color=color)


def _dedupe_legend(ax: Any) -> None:
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    if unique:
        ax.legend(unique.values(), unique.keys(), fontsize=7, loc="best")


def _mean_curve(curves: list[tuple[list[int], list[float]]], window: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Steps, and the mean, min and max over runs at every step any run reached (finite values only),
    optionally smoothed. A min-max band stays positive, so it also works on a log axis."""
    by_step: dict[int, list[float]] = defaultdict(list)
    for steps, values in curves:
        if window > 1:
            values = smooth(values, window)
        for s, v in zip(steps, values):
            if math.isfinite(v):
                by_step[s].append(v)
    steps = sorted(by_step)
    mean = np.array([statistics.fmean(by_step[s]) for s in steps])
    return np.array(steps), mean, np.array([min(by_step[s]) for s in steps]), np.array([max(by_step[s]) for s in steps])


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing running mean (a non-finite value stays non-finite: divergence remains visible)."""
    out, acc, queue = [], 0.0, []
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        queue.append(v)
        acc += v
        if len(queue) > window:
            acc -= queue.pop(0)
        out.append(acc / len(queue))
    return out


def learning_curves(summaries: list[CellSummary], spec: StudySpec, out: Path) -> Path:
    """Per cell: training loss (running mean) and validation accuracy, mean over completed seeds with a
    min-max band; a cell with no completed run shows its diverged/failed runs dashed. Both panels share one
    step axis from 0, so a run validated once shows its point at its step, not alone on a 96-104 axis; a
    single validation point is a large marker with its min-max as an error bar (a band of one point is
    invisible)."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(13, 4.8), sharex=True)
    top: list[float] = []
    bottom: list[float] = []
    for s, color in zip(summaries, colors(len(summaries))):
        runs = s.ok or [r for r in s.runs if r.steps]
        if not runs:
            continue
        style = "-" if s.ok else "--"
        label = s.cell.name + ("" if s.ok else f" ({', '.join(s.counts())})")
        longest = max(len(r.steps) for r in runs)
        steps, mean, low, high = _mean_curve([(r.steps, r.loss) for r in runs], window=max(1, longest // 60))
        if len(steps):
            ax_loss.plot(steps, mean, style, color=color, lw=1.2, label=label)
            if s.ok:
                ax_loss.fill_between(steps, low, high, color=color, alpha=0.15, lw=0)
                top.append(float(np.nanmax(high)))
                bottom.append(float(np.nanmin(low)))
        steps, mean, low, high = _mean_curve([(r.val_steps, r.val_acc) for r in runs])
        if len(steps) == 1:
            ax_acc.errorbar(steps, mean, yerr=[mean - low, high - mean], fmt="o", ms=7, capsize=4, color=color, label=label)
        elif len(steps):
            ax_acc.plot(steps, mean, style, marker="o", ms=3, color=color, lw=1.2, label=label)
            ax_acc.fill_between(steps, low, high, color=color, alpha=0.15, lw=0)
    if top and min(bottom) > 0 and max(top) / min(bottom) >= 100:  # cells whose losses differ by decades
        ax_loss.set_yscale("log")
        ax_loss.set_ylim(0.8 * min(bottom), 1.5 * max(top))
    elif top:
        ax_loss.set_ylim(0, 1.1 * max(top))  # diverged runs' losses leave through the top
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss (running mean)" + (", log scale" if ax_loss.get_yscale() == "log" else ""))
    ax_loss.set_title("training loss: mean over seeds, band min-max")
    ax_acc.set_xlabel("step")
    ax_acc.set_ylabel("validation accuracy")
    ax_acc.set_title("validation accuracy: mean over seeds, band min-max")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    ax_loss.set_xlim(left=0)  # shared with ax_acc
    if ax_loss.get_legend_handles_labels()[0]:  # a study whose runs have drawn no curve yet has nothing to label
        ax_loss.legend(fontsize=7, loc="best", ncol=1 + len(summaries) // 8)
    fig.suptitle(f"{spec.name}: learning curves per cell")
    return save_figure(fig, out / "learning_curves.png")


def per_class_plot(summaries: list[CellSummary], spec: StudySpec, out: Path) -> Path | None:
    """Grouped bars: per-class test accuracy of every cell (mean over its completed seeds, ± std)."""
    tested = [(s, [r.test_per_class for r in s.ok if r.test_per_class]) for s in summaries]
    tested = [(s, per) for s, per in tested if per]
    if not tested:
        return None
    classes = list(tested[0][1][0])
    width = 0.8 / len(tested)
    fig, ax = plt.subplots(figsize=(max(8.0, 1.1 * len(classes) + 0.35 * len(classes) * len(tested) / 3), 4.5))
    for i, ((s, per), color) in enumerate(zip(tested, colors(len(tested)))):
        stats = [stat([p[c] for p in per]) for c in classes]
        xs = np.arange(len(classes)) - 0.4 + width * (i + 0.5)
        ax.bar(xs, [st.mean for st in stats], width, yerr=[st.std for st in stats], color=color, capsize=2, error_kw={"lw": 0.7}, label=f"{s.cell.name} ({s.test().mean:.3f})")
    ax.set_xticks(range(len(classes)), classes)
    ax.set_ylim(0, 1)
    ax.set_ylabel("test accuracy (mean ± std over seeds)")
    ax.set_title(f"{spec.name}: per-class test accuracy per cell (legend: overall)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, ncol=1 + len(tested) // 6, loc="upper left")
    return save_figure(fig, out / "per_class_accuracy.png")


def all_plots(summaries: list[CellSummary], spec: StudySpec, out: Path) -> list[Path]:
    paths = [*metric_plots(summaries, spec, out), learning_curves(summaries, spec, out)]
    if spec.test and (p := per_class_plot(summaries, spec, out)) is not None:
        paths.append(p)
    return paths
