"""``checkpoints/last.ckpt``: always the newest training state, written atomically.

Lightning's ``ModelCheckpoint(save_last=True)`` refreshes ``last.ckpt`` only when it also saves a top-k
checkpoint, so after a validation that did not improve ``val/acc`` the file is stale, and a resumed
run silently repeats work. This callback saves after every validation during fit, every
``every_n_train_steps`` steps (mid-epoch, for long epochs), and at the end of training. It writes to a
temporary file and renames it, so a run killed while saving never leaves a truncated ``last.ckpt``.

Its checkpoint state carries the RNG states (torch, CUDA, NumPy, Python) at the moment of saving, so a
resumed run draws the same dropout masks as an uninterrupted one and ends with identical weights.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn


class LastCheckpoint(Callback):
    def __init__(self, dirpath: str | None = None, every_n_train_steps: int = 0, filename: str = "last.ckpt"):
        if every_n_train_steps < 0:
            raise ValueError(f"--last_checkpoint.every_n_train_steps must be >= 0, got {every_n_train_steps}")
        self.dirpath, self.every_n_train_steps, self.filename = dirpath, every_n_train_steps, filename
        self._saved_step = -1

    @property
    def path(self) -> Path:
        if self.dirpath is None:
            raise RuntimeError("LastCheckpoint.dirpath was not set")
        return Path(self.dirpath) / self.filename

    def save(self, trainer: Trainer) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run or trainer.state.fn != TrainerFn.FITTING:
            return
        if trainer.global_step == self._saved_step:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        trainer.save_checkpoint(tmp)  # collective: every rank calls it, rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
        trainer.strategy.barrier("last_checkpoint")
        self._saved_step = trainer.global_step

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.every_n_train_steps and trainer.global_step % self.every_n_train_steps == 0:
            self.save(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.save(trainer)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.save(trainer)

    def state_dict(self) -> dict[str, Any]:
        states = _collect_rng_states(include_cuda=True)
        # NumPy's state holds an ndarray; stored as a tensor so checkpoints load with weights_only=True.
        name, keys, pos, has_gauss, cached = states["numpy"]
        states["numpy"] = [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]
        return {"rng_states": states}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "rng_states" in state:
            states = dict(state["rng_states"])
            name, keys, pos, has_gauss, cached = states["numpy"]
            states["numpy"] = (name, keys.numpy().astype(np.uint32), pos, has_gauss, cached)
            _set_rng_states(states)
