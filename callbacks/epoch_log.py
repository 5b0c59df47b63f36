"""One line per training epoch, printed and written to ``epoch_log.csv`` in the run directory.

Columns: ``epoch, step, train_loss`` (mean over the epoch's steps), ``train_acc``, ``val_acc`` (when
validation ran), ``train_seconds`` (the epoch's wall time without validation) and ``total_train_seconds``
(their running sum). The yardstick for speed comparisons: time spent validating is excluded, as in
airbench's log. Losses are summed on the device; the host waits for the device (CUDA) only at epoch and
validation boundaries, so timing is exact without a per-step sync.
"""

from __future__ import annotations

import csv
import time
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from callbacks.outputs import run_dir

COLUMNS = ("epoch", "step", "train_loss", "train_acc", "val_acc", "train_seconds", "total_train_seconds")


def _sync(module: LightningModule) -> None:
    if module.device.type == "cuda":
        torch.cuda.synchronize(module.device)


class EpochLog(Callback):
    def __init__(self, filename: str = "epoch_log.csv") -> None:
        self.filename = filename
        self.rows: list[dict[str, Any]] = []
        self._pending: dict[str, Any] | None = None
        self._loss_sum: torch.Tensor | None = None
        self._steps = 0
        self._start = self._val_start = 0.0
        self._val_seconds = 0.0

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._flush(trainer)  # the previous epoch's train/acc is logged by now
        _sync(pl_module)
        self._start, self._val_seconds, self._loss_sum, self._steps = time.perf_counter(), 0.0, None, 0

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            loss = loss.detach().float()
            self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
            self._steps += 1

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            _sync(pl_module)
            self._val_start = time.perf_counter()

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            _sync(pl_module)
            self._val_seconds += time.perf_counter() - self._val_start

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        _sync(pl_module)
        seconds = time.perf_counter() - self._start - self._val_seconds
        total = (self.rows[-1]["total_train_seconds"] if self.rows else 0.0) + seconds
        loss = float(self._loss_sum) / max(self._steps, 1) if self._loss_sum is not None else float("nan")
        self._pending = {"epoch": trainer.current_epoch, "step": trainer.global_step, "train_loss": loss, "train_seconds": seconds, "total_train_seconds": total}

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._flush(trainer)

    def _flush(self, trainer: Trainer) -> None:
        if self._pending is None:
            return
        row, self._pending = self._pending, None
        metrics = trainer.callback_metrics
        for key, name in (("train_acc", "train/acc"), ("val_acc", "val/acc")):
            row[key] = float(metrics[name]) if name in metrics else float("nan")
        self.rows.append(row)
        if trainer.is_global_zero:
            print("epoch_log " + "  ".join(f"{k}={row[k]:.4f}" if isinstance(row[k], float) else f"{k}={row[k]}" for k in COLUMNS), flush=True)
            with open(run_dir(trainer) / self.filename, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=COLUMNS)
                writer.writeheader()
                writer.writerows(self.rows)

    # Kept in checkpoints so a resumed run's log covers the whole run.
    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state_dict["rows"]]
