"""``checkpoints/last.ckpt``: always the newest training state, written atomically; also on Ctrl-C/SIGTERM.

Lightning's ``ModelCheckpoint(save_last=True)`` refreshes ``last.ckpt`` only when it also saves a top-k
checkpoint, so after a validation that did not improve ``val/acc`` the file is stale, and a resumed
run silently repeats work. This callback saves after every validation during fit, every
``every_n_train_steps`` steps (mid-epoch, for long epochs), at the end of training, and when the run is
interrupted (see ``callbacks.interrupts``). It writes to a temporary file and renames it, so a run killed
while saving never leaves a truncated ``last.ckpt``. Each save also brings ``status.json``'s step and wall
time up to date (``callbacks.status_file``), so a running or killed run's record says how far it got.

It subclasses Lightning's ``Checkpoint`` so that Lightning runs it *after* every other callback's hook:
the saved state then includes what the other callbacks recorded at the same step (the learning curves'
validation point, for one). Its own state carries the RNG states (torch, CUDA, NumPy, Python) at the
moment of saving, so a resumed run draws the same dropout masks as an uninterrupted one.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jsonargparse.typing import NonNegativeInt
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.trainer.states import TrainerFn

from callbacks.interrupts import STOP, RunInterrupted, StopSignals
from callbacks.status_file import record_progress

DDP_INTERRUPT_CHECK_EVERY = 10  # steps; agreeing on a signal across ranks costs a collective


class LastCheckpoint(Checkpoint):
    def __init__(self, dirpath: str | None = None, every_n_train_steps: NonNegativeInt = 0, filename: str = "last.ckpt"):
        self.dirpath, self.every_n_train_steps, self.filename = dirpath, every_n_train_steps, filename
        self._saved_step = -1
        self._validated_step = -1
        self._stop_pending = False

    @property
    def interrupts(self) -> StopSignals:
        return STOP  # the process's one handler, also when this callback was copied

    @property
    def path(self) -> Path:
        if self.dirpath is None:
            raise RuntimeError("LastCheckpoint.dirpath was not set")
        return Path(self.dirpath) / self.filename

    def save(self, trainer: Trainer) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run or trainer.state.fn != TrainerFn.FITTING:
            return
        # A validation at an already saved step changes the state (its curve point, the loop's progress): save again.
        if trainer.global_step == self._saved_step and self._validated_step != trainer.global_step:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        trainer.save_checkpoint(tmp, weights_only=False)  # collective: every rank calls it, rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
            record_progress(Path(trainer.default_root_dir), trainer.global_step)
        trainer.strategy.barrier("last_checkpoint")
        self._saved_step = trainer.global_step
        self._validated_step = -1

    # ------------------------------------------------------------------ when to save
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.interrupts.training(trainer)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        due = bool(self.every_n_train_steps) and trainer.global_step % self.every_n_train_steps == 0
        if self._interrupt_requested(trainer):
            # Saved now, at the step boundary; the stop itself waits until this step's logging (and a validation
            # due at this step) has happened, so nothing the uninterrupted run would record at this step is lost.
            self._stop_pending = True
            due = True
        if due:
            self.save(trainer)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if self._stop_pending:
            self._stop(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._validated_step = trainer.global_step
        self.save(trainer)
        if self._stop_pending or self._interrupt_requested(trainer):
            self._stop(trainer)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.save(trainer)
        self.interrupts.closing()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self.interrupts.closing()

    def _interrupt_requested(self, trainer: Trainer) -> bool:
        local = self.interrupts.signum is not None
        if trainer.world_size == 1:
            return local
        if trainer.global_step % DDP_INTERRUPT_CHECK_EVERY:
            return False
        return trainer.strategy.reduce_boolean_decision(local, all=False)  # any rank signalled -> all stop together

    def _stop(self, trainer: Trainer) -> None:
        self._stop_pending = False
        self.interrupts.closing()
        raise RunInterrupted(self.interrupts.signum or 2, trainer.global_step, str(self.path))

    # ------------------------------------------------------------------ state: RNGs
    def state_dict(self) -> dict[str, Any]:
        name, keys, pos, has_gauss, cached = np.random.get_state()
        version, internal, gauss = random.getstate()
        return {
            "rng_states": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                # NumPy's and Python's states as tensors/ints: the checkpoint stays loadable with weights_only=True.
                "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
                "python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
            }
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        states = state.get("rng_states")
        if not states:
            return
        torch.set_rng_state(states["torch"])
        if states.get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])
        name, keys, pos, has_gauss, cached = states["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        if "python" in states:
            version, internal, gauss = states["python"]
            internal = internal.tolist() if isinstance(internal, torch.Tensor) else internal  # older checkpoints: a tuple
            random.setstate((version, tuple(int(v) for v in internal), gauss))
