"""Where callbacks put their files, and how their figures reach W&B: one place for both."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("MPLBACKEND", "Agg")  # headless: figures go to files, never to a window

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from lightning.pytorch import Trainer  # noqa: E402


def run_dir(trainer: Trainer) -> Path:
    """The run directory (``runs/<name>/version_k``); ``train.py`` sets it as ``default_root_dir``."""
    path = Path(trainer.default_root_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_figure(fig: Any, path: Path, trainer: Trainer | None = None, key: str | None = None) -> Path:
    """Write ``fig`` as PNG, close it, and log it to W&B as ``key`` when a W&B logger is attached."""
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    if trainer is not None and key is not None:
        log_image(trainer, key, path)
    return path


def log_image(trainer: Trainer, key: str, path: Path) -> None:
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[str(path)], step=trainer.global_step)
