"""Writes ``predict`` output as CSV: ``index,predicted_class,p_airplane,...,p_truck``."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import BasePredictionWriter


class PredictionCSVWriter(BasePredictionWriter):
    """Collects per-batch softmax outputs and image indices; rank 0 writes one CSV sorted by index."""

    def __init__(self, path: str | Path, classes: Sequence[str]):
        super().__init__(write_interval="batch")
        self.path, self.classes = Path(path), list(classes)
        self._rows: list[tuple[torch.Tensor, torch.Tensor]] = []

    def write_on_batch_end(self, trainer: Any, pl_module: Any, prediction: Any, batch_indices: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        index = batch[2] if len(batch) > 2 else torch.arange(len(prediction)) + batch_idx * len(prediction)
        self._rows.append((index.cpu(), prediction.float().cpu()))

    def on_predict_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not self._rows:
            return
        index = torch.cat([r[0] for r in self._rows])
        probs = torch.cat([r[1] for r in self._rows])
        if trainer.world_size > 1:
            index = pl_module.all_gather(index.to(pl_module.device)).reshape(-1).cpu()
            probs = pl_module.all_gather(probs.to(pl_module.device)).reshape(-1, probs.shape[-1]).cpu()
        self._rows = []
        if not trainer.is_global_zero:
            return
        order = index.argsort()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["index", "predicted_class", *(f"p_{c}" for c in self.classes)])
            for i in order.tolist():
                p = probs[i]
                writer.writerow([int(index[i]), self.classes[int(p.argmax())], *(f"{v:.6f}" for v in p.tolist())])
        print(f"Predictions for {len(order)} images written to {self.path}")
