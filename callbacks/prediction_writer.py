"""Writes ``predict`` output as CSV: ``index,image,true_class,predicted_class,p_airplane,...,p_truck``.

``image`` names each image (its path for image folders and ``--data.predict_dir``, ``test_batch[i]`` for the
official release); ``true_class`` is empty where the label is unknown (a folder of unlabelled images).
Rows are in the data's own order (``index``), whatever order the images were evaluated in. Files of
``--data.predict_dir`` that could not be classified go to ``skipped.csv`` beside it (``image,reason``), so
the two files together account for every file in the folder.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback


class PredictionCSVWriter(Callback):
    """Collects per-batch softmax outputs and image indices; rank 0 writes one CSV sorted by index.

    A plain callback rather than a ``BasePredictionWriter``: the batches carry their image indices, so
    Lightning need not (and, for an in-memory loader, cannot) infer them.
    """

    def __init__(self, path: str | Path, datamodule: Any):
        self.path, self.datamodule = Path(path), datamodule
        self._rows: list[tuple[torch.Tensor, torch.Tensor]] = []

    def on_predict_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._rows.append((batch[2].cpu(), outputs.float().cpu()))

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
        classes = list(self.datamodule.classes)
        names, labels = self.datamodule.prediction_targets()
        order = index.argsort()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["index", "image", "true_class", "predicted_class", *(f"p_{c}" for c in classes)])
            for i in order.tolist():
                k, p = int(index[i]), probs[i]
                truth = classes[labels[k]] if labels is not None and labels[k] >= 0 else ""
                writer.writerow([k, names[k], truth, classes[int(p.argmax())], *(f"{v:.6f}" for v in p.tolist())])
        print(f"Predictions for {len(order)} images written to {self.path}")
        self._write_skipped()

    def _write_skipped(self) -> None:
        skipped = getattr(self.datamodule, "prediction_skipped_files", list)()
        if not skipped:
            return
        path = self.path.with_name("skipped.csv")
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["image", "reason"])
            writer.writerows(skipped)
        print(f"{len(skipped)} skipped files (listed above) written to {path}")
