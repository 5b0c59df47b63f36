"""One line per training epoch, printed and written to ``epoch_log.csv`` in the run directory.

Columns: ``epoch, step, train_loss`` (mean over the epoch's steps, all DDP ranks together), ``train_acc``, ``val_acc`` (when
validation ran), ``train_seconds`` (the epoch's wall time without validation) and ``total_train_seconds``
(their running sum). The yardstick for speed comparisons: time spent validating is excluded, as in
airbench's log. Losses are summed on the device; the host waits for the device (CUDA) only at epoch and
validation boundaries, so timing is exact without a per-step sync.

The rows and the current epoch's running loss sum are part of the callback's checkpoint state, so a run
interrupted mid-epoch (``last.ckpt`` on SIGINT/SIGTERM) and resumed writes the same losses and accuracies
as an uninterrupted one; only the seconds differ (time before the interruption is kept, the restart is not).
Under DDP the checkpoint holds rank 0's partial sum only (collecting the others would need a collective inside
checkpoint saving, which SLURM's signal handler may run at any point on each rank), so every rank resumes
from it: the interrupted epoch's ``train_loss`` stands in rank 0's steps before the interruption for all
ranks', close to but not equal to the uninterrupted value. Every other epoch's is exact.
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
        self._val_acc = float("nan")  # the latest validation's accuracy (kept in checkpoints: not re-run on resume)
        self._restored: dict[str, Any] | None = None  # the current epoch's partial state from a checkpoint
        self._trainer: Trainer | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._trainer = trainer

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._flush(trainer)  # the previous epoch's train/acc is logged by now
        _sync(pl_module)
        self._start, self._val_seconds, self._loss_sum, self._steps = time.perf_counter(), 0.0, None, 0
        self._continue_restored(trainer, pl_module)

    def _continue_restored(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Resumed mid-epoch: continue the saved sum in the same order, so the epoch's mean is bit-identical.
        Applied at the first training hook after the restore (Lightning may not restart the epoch's start)."""
        restored, self._restored = self._restored, None
        if restored is None or restored["epoch"] != trainer.current_epoch or restored["steps"] <= 0:
            return
        loss_sum = restored["loss_sum"]
        self._loss_sum = None if loss_sum is None else loss_sum.to(pl_module.device)
        self._steps = restored["steps"]
        self._start = time.perf_counter() - restored["seconds"]
        self._val_seconds = 0.0

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._restored is not None:
            self._continue_restored(trainer, pl_module)
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
            if "val/acc" in trainer.callback_metrics:
                self._val_acc = float(trainer.callback_metrics["val/acc"])

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._restored is not None:
            self._continue_restored(trainer, pl_module)
        _sync(pl_module)
        seconds = time.perf_counter() - self._start - self._val_seconds
        total = (self.rows[-1]["total_train_seconds"] if self.rows else 0.0) + seconds
        loss = self._mean_loss_over_ranks(trainer, pl_module)
        self._pending = {"epoch": trainer.current_epoch, "step": trainer.global_step, "train_loss": loss, "train_seconds": seconds, "total_train_seconds": total}

    def _mean_loss_over_ranks(self, trainer: Trainer, pl_module: LightningModule) -> float:
        """The epoch's mean loss over every step of every rank (under DDP each rank sees its own shard;
        rank 0's mean alone would describe half the data). One all-reduce per epoch, on every rank."""
        loss_sum = self._loss_sum if self._loss_sum is not None else torch.zeros((), device=pl_module.device)
        stats = torch.stack([loss_sum.float(), torch.tensor(float(self._steps), device=loss_sum.device)])
        total, steps = trainer.strategy.reduce(stats, reduce_op="sum").tolist()
        return total / steps if steps > 0 else float("nan")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._flush(trainer)

    def _with_metrics(self, row: dict[str, Any], trainer: Trainer) -> dict[str, Any]:
        if "train_acc" not in row:  # a row restored from a checkpoint has its values already
            metrics = trainer.callback_metrics
            row["train_acc"] = float(metrics["train/acc"]) if "train/acc" in metrics else float("nan")
            row["val_acc"] = self._val_acc
        return row

    def _flush(self, trainer: Trainer) -> None:
        if self._pending is None:
            return
        row, self._pending = self._with_metrics(self._pending, trainer), None
        self.rows.append(row)
        if trainer.is_global_zero:
            print("epoch_log " + "  ".join(f"{k}={row[k]:.4f}" if isinstance(row[k], float) else f"{k}={row[k]}" for k in COLUMNS), flush=True)
            with open(run_dir(trainer) / self.filename, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=COLUMNS)
                writer.writeheader()
                writer.writerows(self.rows)

    # Kept in checkpoints so a resumed run's log covers the whole run, the interrupted epoch included.
    def state_dict(self) -> dict[str, Any]:
        trainer = self._trainer
        pending = self._pending
        if pending is not None and trainer is not None:
            pending = self._with_metrics(dict(pending), trainer)  # a per-epoch checkpoint after on_train_epoch_end
        epoch = trainer.current_epoch if trainer is not None else -1
        seconds = time.perf_counter() - self._start - self._val_seconds if self._steps else 0.0
        loss_sum = None if self._loss_sum is None else self._loss_sum.detach().clone()
        return {"rows": self.rows, "pending": pending, "epoch": epoch, "steps": self._steps, "loss_sum": loss_sum, "seconds": seconds, "val_acc": self._val_acc}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state_dict["rows"]]
        self._pending = dict(state_dict["pending"]) if state_dict.get("pending") is not None else None
        self._val_acc = float(state_dict.get("val_acc", float("nan")))
        if "steps" in state_dict:
            self._restored = {k: state_dict[k] for k in ("epoch", "steps", "loss_sum", "seconds")}
