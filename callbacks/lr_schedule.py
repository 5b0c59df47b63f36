"""Record the learning rate of every param group at every step; plot it at the end of fit.

Works with any scheduler (step, cosine, OneCycle, warm-up; per-step or per-epoch interval) because it
reads ``optimizer.param_groups[i]["lr"]`` right before each optimizer step: the rate actually used. The
rate of the k-th update is recorded at step k (1, 2, ...), the step its training loss is recorded at.
``scripts/plot_lr_schedule.py`` draws the same plot from a config without training.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from callbacks.outputs import plt, run_dir, save_figure
from core.lightning_internals import logs_at_this_step


class LRScheduleMonitor(Callback):
    """Writes ``lr_schedule.csv`` and ``lr_schedule.png`` into the run directory; logs ``lr/<group>`` and the
    figure to the loggers (W&B).

    Args:
        figures: False: the CSV only, no PNG (a study's runs).
    """

    def __init__(self, figures: bool = True) -> None:
        self.figures = figures
        self.steps: list[int] = []
        self.epochs: list[int] = []
        self.lrs: dict[str, list[float]] = {}

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step + 1  # the update this batch is about to make
        self.steps.append(step)
        self.epochs.append(trainer.current_epoch)
        current = {}
        for i, opt in enumerate(trainer.optimizers):
            for j, group in enumerate(opt.param_groups):
                current[f"opt{i}_group{j}"] = float(group["lr"])
                self.lrs.setdefault(f"opt{i}_group{j}", []).append(current[f"opt{i}_group{j}"])
        if trainer.loggers and logs_at_this_step(trainer):
            # Straight to the loggers (W&B, CSV, ...) on the steps that log anyway; plain floats, no sync.
            for logger in trainer.loggers:
                logger.log_metrics({f"lr/{k}": v for k, v in current.items()}, step=step)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero and self.steps:
            write_lr_schedule(run_dir(trainer), self.steps, self.epochs, self.lrs, trainer, figure=self.figures)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self.on_fit_end(trainer, pl_module)

    # Kept in checkpoints so a resumed run plots its whole schedule.
    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "epochs": self.epochs, "lrs": self.lrs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.epochs, self.lrs = list(state["steps"]), list(state["epochs"]), {k: list(v) for k, v in state["lrs"].items()}


def write_lr_schedule(
    out_dir: Path, steps: Sequence[int], epochs: Sequence[int], lrs: dict[str, Sequence[float]], trainer: Trainer | None = None, figure: bool = True
) -> Path | None:
    """``lr_schedule.csv`` (step, epoch, one column per group) and, with ``figure``, ``lr_schedule.png``; returns the PNG path."""
    names = sorted(lrs)
    with open(out_dir / "lr_schedule.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "epoch", *names])
        for k, (s, e) in enumerate(zip(steps, epochs)):
            writer.writerow([s, e, *(lrs[n][k] for n in names)])
    if not figure:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for n in names:
        ax.plot(steps, lrs[n], label=n, lw=1.5)
    values = [v for n in names for v in lrs[n] if v > 0]
    if values and max(values) / min(values) >= 100:  # spans two decades or more
        ax.set_yscale("log")
    boundaries = [s for k, s in enumerate(steps) if k > 0 and epochs[k] != epochs[k - 1]]
    for b in boundaries if len(boundaries) <= 60 else []:
        ax.axvline(b, color="0.85", lw=0.8, zorder=0)
    ax.set_xlabel("step" + (" (grey lines: epoch starts)" if 0 < len(boundaries) <= 60 else ""))
    ax.set_ylabel("learning rate")
    ax.set_title("Learning-rate schedule")
    if len(names) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, out_dir / "lr_schedule.png", trainer, "lr_schedule")
