"""The private Lightning details this project relies on, in one place, each pinned by a test in
``tests/test_lightning_internals.py``: a Lightning upgrade that changes one fails that test by name
instead of a user's run.

Everything else uses public APIs. What is here has no public route:

* SLURM auto-requeue writes ``hpc_ckpt_<n>.ckpt`` into ``default_root_dir`` (``_CheckpointConnector.hpc_save_path``);
  requeued runs must find it to resume in their own run directory.
* Lightning sets ``LightningModule._current_fx_name`` around every hook it calls (~44 times per training
  step); :class:`FastHookNameMixin` keeps that assignment off ``nn.Module.__setattr__``.
* Lightning's ``WandbLogger`` always passes ``anonymous=None`` to ``wandb.init`` (in ``_wandb_init``), which
  wandb >= 0.22 answers with a deprecation warning on every run; :class:`QuietWandbLogger` leaves it out.
* Which training steps' logged values reach the loggers is decided inside Lightning's logger connector
  (``should_update_logs``); :func:`logs_at_this_step` is that rule written with public values.

It sits in ``core/`` because the models (the hook-name mixin, the logging rule), the callbacks (the logging
rule) and the command line (requeue checkpoints, the W&B logger) all use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger

from core.wandb_internals import skip_unstaged_launch_inputs

HPC_CHECKPOINT_GLOB = "hpc_ckpt_*.ckpt"
HOOK_NAME_ATTRIBUTE = "_current_fx_name"


def hpc_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints Lightning's SLURM requeue handler (SIGUSR1) saved into the run directory."""
    return sorted(run_dir.glob(HPC_CHECKPOINT_GLOB))


def logs_at_this_step(trainer: L.Trainer) -> bool:
    """True on the training steps whose logged values reach the loggers (every ``log_every_n_steps``)."""
    if trainer.log_every_n_steps <= 1:
        return True
    return (trainer.global_step + 1) % trainer.log_every_n_steps == 0 or trainer.should_stop


class FastHookNameMixin:
    """``nn.Module.__setattr__`` checks parameters, buffers and submodules on every assignment (~3.7 us vs
    0.4 us for a plain attribute on a 2-core CPU): for Lightning's hook-name bookkeeping that is ~0.15 ms
    per step, ~4% of a course-MLP step. Mix in before ``LightningModule``."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == HOOK_NAME_ATTRIBUTE:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)


class QuietWandbLogger(LightningWandbLogger):
    """Lightning's WandbLogger, without the ``anonymous=None`` that makes wandb print a deprecation warning, and
    without the import of wandb's Launch machinery that finds no Launch inputs (``core/wandb_internals.py``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
        skip_unstaged_launch_inputs()
