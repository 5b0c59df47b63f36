"""What the figures show (axes, ranges, markers), read from the matplotlib figure before it is saved."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import callbacks.learning_curves as run_curves
import studies.plots as study_plots
from studies.results import RunResult
from studies.spec import Cell
from studies.summary import CellSummary


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The figures the plotting functions hand to ``save_figure``, kept open for inspection."""
    kept: list[Any] = []

    def keep(fig: Any, path: Path, *args: Any) -> Path:
        kept.append(fig)
        return path

    monkeypatch.setattr(run_curves, "save_figure", keep)
    monkeypatch.setattr(study_plots, "save_figure", keep)
    return kept


def test_run_learning_curves_use_a_log_loss_axis_so_a_spike_does_not_flatten_them(figures: list[Any], tmp_path: Path) -> None:
    steps = list(range(1, 301))
    loss = [2.3 * math.exp(-s / 120) + 0.6 for s in steps]
    loss[9] = 40.0  # one early spike, 67x the final loss
    run_curves.plot_learning_curves(steps, loss, [100, 200, 300], [0.3, 0.4, 0.45], tmp_path / "curves.png")
    ax_loss = figures[0].axes[0]
    assert ax_loss.get_yscale() == "log"
    low, high = ax_loss.get_ylim()
    assert low <= min(loss) and high >= max(loss)


def test_a_loss_within_one_decade_still_gets_labelled_ticks(figures: list[Any], tmp_path: Path) -> None:
    run_curves.plot_learning_curves(list(range(1, 8)), [2.28, 2.27, 2.27, 2.28, 2.25, 2.25, 2.23], [5, 7], [0.2, 0.25], tmp_path / "c.png")
    ax_loss = figures[0].axes[0]
    figures[0].canvas.draw()
    low, high = ax_loss.get_ylim()
    labels = [t.get_text() for t in ax_loss.get_yticklabels() if t.get_text() and low <= t.get_position()[1] <= high]
    assert ax_loss.get_yscale() == "log" and len(labels) >= 3, labels


def test_a_loss_that_is_not_positive_stays_on_a_linear_axis(figures: list[Any], tmp_path: Path) -> None:
    run_curves.plot_learning_curves([1, 2, 3], [0.5, 0.0, -0.1], [], [], tmp_path / "c.png")
    assert figures[0].axes[0].get_yscale() == "linear"


def test_a_study_cell_validated_once_is_a_visible_point_on_a_step_axis_from_zero(figures: list[Any], tmp_path: Path) -> None:
    """Before: the one validation point at step 100 sat alone on a 96-104 axis, as a 3-pixel dot."""
    runs = [RunResult("lr=0.1", seed, "ok", steps=list(range(1, 101)), loss=[2.3 - 0.005 * k for k in range(100)],
                      val_steps=[100], val_acc=[0.3 + 0.02 * seed]) for seed in (0, 1)]
    study_plots.learning_curves([CellSummary(Cell("lr=0.1", {}, {"lr": 0.1}), runs)], SimpleNamespace(name="one point"), tmp_path)
    ax_acc = figures[0].axes[1]
    low, high = ax_acc.get_xlim()
    assert low == 0 and 100 <= high <= 110
    markers = [line.get_markersize() for line in ax_acc.get_lines() if line.get_marker() not in (None, "None", "")]
    assert markers and max(markers) >= 6, "a visible marker"
