"""The course figure: training loss at every step and validation accuracy at every validation.

Values are collected from the training step's outputs and ``trainer.callback_metrics``, so the figure
is the same whichever logger is used (W&B offline, CSV, none). Per-step losses stay on the device and
are copied to the host in chunks, so on a GPU this adds no synchronisation per step.

At the end of a run the data comes first: both CSVs are written atomically (a temporary file, then a
rename), the figure after them, as optional closing work that a Ctrl-C while the run closes may cut short
(``callbacks.interrupts``); a resume draws it again from the checkpoint's copy of the values.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

from callbacks.interrupts import STOP
from callbacks.outputs import plt, run_dir, save_figure

_CHUNK = 1000


class LearningCurves(Callback):
    """Writes ``learning_curves.png``, ``train_loss.csv`` and ``val_acc.csv`` into the run directory.

    Args:
        figures: False: the CSVs only, no PNG (a study's runs: the study draws every cell's curves in one figure).
    """

    def __init__(self, figures: bool = True) -> None:
        self.figures = figures
        self.train_steps: list[int] = []
        self.train_loss: list[float] = []
        self._pending: list[torch.Tensor] = []
        self.val_steps: list[int] = []
        self.val_acc: list[float] = []

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        self.train_steps.append(trainer.global_step)
        self._pending.append(loss.detach().float().reshape(()))
        if len(self._pending) >= _CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self.train_loss.extend(torch.stack(self._pending).cpu().tolist())
            self._pending = []

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or "val/acc" not in trainer.callback_metrics:
            return
        self.val_steps.append(trainer.global_step)
        self.val_acc.append(float(trainer.callback_metrics["val/acc"]))

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._flush()
        if trainer.is_global_zero and self.train_steps:
            self.write(run_dir(trainer), trainer)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self.on_fit_end(trainer, pl_module)  # a diverged or interrupted run still gets its curves

    def write(self, out_dir: Path, trainer: Trainer | None = None) -> Path | None:
        """The CSVs, then the figure (None if not drawn: ``figures`` False, or a signal while the run closes cut it short)."""
        write_csv(out_dir / "train_loss.csv", ("step", "train_loss"), zip(self.train_steps, self.train_loss))
        write_csv(out_dir / "val_acc.csv", ("step", "val_acc"), zip(self.val_steps, self.val_acc))
        path = out_dir / "learning_curves.png"
        if not self.figures:
            return None
        return STOP.optional(path.name, lambda: plot_learning_curves(self.train_steps, self.train_loss, self.val_steps, self.val_acc, path, trainer))

    def state_dict(self) -> dict[str, Any]:
        self._flush()
        return {"train_steps": self.train_steps, "train_loss": self.train_loss, "val_steps": self.val_steps, "val_acc": self.val_acc}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, list(value))


def write_csv(path: Path, header: tuple[str, ...], rows: Any) -> None:
    """Atomically: a run stopped while writing keeps the previous complete file, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    os.replace(tmp, path)


def plot_learning_curves(steps: list[int], loss: list[float], val_steps: list[int], val_acc: list[float], path: Path, trainer: Trainer | None = None) -> Path:
    """Training loss on a log axis whenever it is positive (a cross-entropy always is): one early spike would
    otherwise flatten the rest of the curve. Validation accuracy on the right axis, 0..1."""
    fig, ax_loss = plt.subplots(figsize=(7, 4))
    try:
        return _draw(fig, ax_loss, steps, loss, val_steps, val_acc, path, trainer)
    except BaseException:
        plt.close(fig)  # cut short while the run closes: no half-drawn figure left open
        raise


def _draw(fig: Any, ax_loss: Any, steps: list[int], loss: list[float], val_steps: list[int], val_acc: list[float], path: Path, trainer: Trainer | None) -> Path:
    finite = [(s, v) for s, v in zip(steps, loss) if math.isfinite(v)]
    if finite:
        ax_loss.plot(*zip(*finite), color="tab:blue", lw=0.8, alpha=0.8, label="train loss (per step)")
    if len(finite) < len(loss):
        first_bad = next(s for s, v in zip(steps, loss) if not math.isfinite(v))
        ax_loss.axvline(first_bad, color="red", ls="--", label=f"diverged at step {first_bad}")
    log = bool(finite) and all(v > 0 for _, v in finite)
    if log:
        log_axis(ax_loss.yaxis, [v for _, v in finite])
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss" + (" (log scale)" if log else ""), color="tab:blue")
    ax_acc = ax_loss.twinx()
    if val_steps:
        ax_acc.plot(val_steps, val_acc, "o-", color="tab:orange", label="validation accuracy")
    ax_acc.set_ylabel("validation accuracy", color="tab:orange")
    ax_acc.set_ylim(0, 1)
    handles = ax_loss.get_legend_handles_labels()[0] + ax_acc.get_legend_handles_labels()[0]
    ax_loss.legend(handles, [h.get_label() for h in handles], loc="center right", fontsize=8)
    ax_loss.grid(alpha=0.3)
    ax_loss.set_title("Learning curves")
    return save_figure(fig, path, trainer, "learning_curves")



def log_axis(axis: Any, values: list[float]) -> None:
    """A log scale with plain numbers (0.5, 2, 10, not 10^0); within one decade nice linear steps, since the
    log locator would place one tick there, or none."""
    axis.axes.set_yscale("log")
    if max(values) / min(values) < 10:
        axis.set_major_locator(MaxNLocator(nbins=6))
        axis.set_minor_locator(NullLocator())
    else:
        axis.set_minor_formatter(FuncFormatter(_two_and_five))
    axis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))


def _two_and_five(value: float, _pos: int) -> str:
    """Minor ticks labelled at 2 and 5 of each decade."""
    mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
    return f"{value:g}" if any(abs(mantissa - m) < 1e-6 for m in (2, 5)) else ""
