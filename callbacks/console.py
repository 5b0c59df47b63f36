"""What a run prints besides the progress bar: what it runs before it starts, what it reached at the end.

Header (once the data is loaded): run directory, data source and split sizes, model and parameter count.
Footer after fit: best and last validation accuracy with their steps, and the checkpoint to evaluate.
(Lightning prints test/validate results itself; ``train.py`` adds where the outputs are.)

Every command printed for the user to copy is built by :func:`command_for_user`, so that it works as printed
in the directory it was printed in, whichever that is.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint


ENTRY_POINT = Path(__file__).resolve().parents[1] / "train.py"


def _count(n: int) -> str:
    return f"{n:,}"


def path_for_user(path: str | Path) -> str:
    """``path`` as typed in the current directory: relative when it lies below it, else absolute."""
    absolute, here = os.path.abspath(path), os.getcwd()
    return os.path.relpath(absolute, here) if absolute.startswith(here.rstrip(os.sep) + os.sep) else absolute


def _python() -> str:
    """``python`` when that is this interpreter (an activated venv), else this interpreter's path (``.venv/bin/python``)."""
    found = shutil.which("python")
    return "python" if found and os.path.abspath(found) == os.path.abspath(sys.executable) else path_for_user(sys.executable)


def command_for_user(*args: str | Path) -> str:
    """``python train.py ARGS``, runnable as printed from the current directory: the interpreter that runs now,
    ``train.py`` by its absolute path unless this is the repository root, and every :class:`~pathlib.Path`
    argument by :func:`path_for_user` (a checkpoint under ``runs/`` stays ``runs/...``); all shell-quoted."""
    script = "train.py" if Path.cwd().resolve() == ENTRY_POINT.parent else str(ENTRY_POINT)
    words = [path_for_user(a) if isinstance(a, Path) else str(a) for a in args]
    return " ".join(map(shlex.quote, [_python(), script, *words]))


class RunReport(Callback):
    def __init__(self, run_dir: Path, note: str | None = None):
        self.run_dir, self.note = run_dir, note

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not trainer.is_global_zero:
            return
        lines = [f"Run:   {self.run_dir}  ({getattr(stage, 'value', stage)})"]
        if self.note:
            lines.append(f"       {self.note}")
        dm = trainer.datamodule
        if dm is not None and getattr(dm, "source", None):
            lines.append(f"Data:  {dm.source}: {self._split_sizes(dm, stage)}")
        # The NumPy models hold their weights as buffers shared with NumPy arrays, not as parameters.
        params = sum(p.numel() for p in pl_module.parameters()) or sum(b.numel() for b in getattr(pl_module, "net", pl_module).buffers())
        lines.append(f"Model: {type(pl_module).__module__}.{type(pl_module).__qualname__}, {_count(params)} parameters")
        print("\n".join(lines), flush=True)

    @staticmethod
    def _split_sizes(dm: Any, stage: str) -> str:
        if stage == "predict" and getattr(dm, "predict_x", None) is not None:
            return f"{_count(len(dm.predict_x))} images to classify"
        parts = []
        if getattr(dm, "train_idx", None) is not None:
            parts += [f"{_count(len(dm.train_idx))} train", f"{_count(len(dm.val_idx))} validation"]
        if getattr(dm, "test_x", None) is not None:
            parts.append(f"{_count(len(dm.test_x))} test")
        return " / ".join(parts) + f" {getattr(dm, 'item_name', 'images')}"

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        lines = [f"Trained {_count(trainer.global_step)} steps."]
        best = next((cb for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint) and cb.best_model_path), None)
        last = trainer.callback_metrics.get("val/acc")
        if best is not None and best.best_model_score is not None:
            lines.append(f"Best val/acc {float(best.best_model_score):.4f} ({best.best_model_path})" + (f"; last {float(last):.4f}" if last is not None else ""))
            lines.append(f"Evaluate it: {command_for_user('test', '--ckpt_path', Path(best.best_model_path))}")
        elif last is not None:
            lines.append(f"Last val/acc {float(last):.4f}")
        print("\n".join(lines), flush=True)
