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
  Its start in a thread relies on Lightning's ``experiment`` getter storing the run in ``_experiment``.
* Which training steps' logged values reach the loggers is decided inside Lightning's logger connector
  (``should_update_logs``); :func:`logs_at_this_step` is that rule written with public values.
* The model summary's table is drawn by ``_format_summary_table``, which always adds a FLOPs column and a
  "Total Flops" line; :func:`summary_table_without_flops` draws it without them, and :func:`summary_settings`
  reads a ``ModelSummary`` callback's ``max_depth`` and extra arguments (``_max_depth``, ``_summarize_kwargs``).

It sits in ``core/`` because the models (the hook-name mixin, the logging rule), the callbacks (the logging
rule) and the command line (requeue checkpoints, the W&B logger) all use it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.utilities import rank_zero_only

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
    without the import of wandb's Launch machinery that finds no Launch inputs (``core/wandb_internals.py``).

    :meth:`start_in_background` runs ``wandb.init`` in a thread while the Trainer sets itself up. Lightning
    touches every logger's ``experiment`` just before the DataModule's ``setup``, so what overlaps is
    ``wandb.init``'s waiting (for its ``wandb-core`` service to start) with the Trainer's own start; its
    Python work holds the GIL. Measured: training starts 0.1-0.3 s sooner (README, "Performance").
    Whatever needs the run (``experiment``: every log call; ``finalize``) waits for the thread there; a wait
    cut short (Ctrl-C) leaves it to the next one, so the session's closing ``finalize`` still finishes the run.
    ``log_hyperparams`` before the run exists is kept and applied, in order, once it does. A failed start
    raises its own error at every later use, never a second ``wandb.init``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
        self._starting: _InThread | None = None
        self._start_error: BaseException | None = None
        self._pending_hyperparams: list[Any] = []

    def start_in_background(self) -> None:
        """Start the W&B run in a thread now (once; rank 0). Only where no process is forked from this one:
        wandb's threads and service connection do not survive a fork."""
        if self._experiment is None and self._starting is None and rank_zero_only.rank == 0:
            self._starting = _InThread(self._start)

    def _start(self) -> Any:
        skip_unstaged_launch_inputs()
        return LightningWandbLogger.experiment.fget(self)

    def _wait_for_start(self) -> None:
        if self._start_error is not None:
            raise self._start_error
        if self._starting is None:
            return
        error = self._starting.wait()  # a signal here raises out of the wait, and the thread stays to be waited for
        self._starting = None
        if error is not None:
            self._start_error = error
            raise error
        pending, self._pending_hyperparams = self._pending_hyperparams, []
        for params in pending:
            super().log_hyperparams(params)

    @property
    def experiment(self) -> Any:
        self._wait_for_start()
        if self._experiment is None:
            skip_unstaged_launch_inputs()
        return super().experiment

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        if self._starting is not None:
            self._pending_hyperparams.append(params)
        else:
            super().log_hyperparams(params)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        try:
            self._wait_for_start()  # a run that ends before its first log still has its W&B run finished
        except Exception:  # noqa: BLE001 - the start failed: there is no W&B run to finalize
            return
        super().finalize(status)


class _InThread:
    """A call running in a daemon thread; :meth:`wait` waits for it and returns the exception it raised, if any.

    It waits on an ``Event``, not ``Thread.join``: a join cut short by a signal's exception can leave the thread
    marked stopped while it still runs (CPython 3.11's ``_wait_for_tstate_lock``), so the next join would return
    at once; an Event can be waited for again.
    """

    def __init__(self, call: Any) -> None:
        self._error: BaseException | None = None
        self._done = threading.Event()

        def run() -> None:
            try:
                call()
            except BaseException as exc:  # noqa: BLE001 - handed to the thread that waits
                self._error = exc
            finally:
                self._done.set()

        threading.Thread(target=run, name="wandb-start", daemon=True).start()

    def wait(self) -> BaseException | None:
        self._done.wait()
        return self._error


def summary_table_without_flops(summary_data: list[tuple[str, list[str]]], total_parameters: int, trainable_parameters: int,
                                model_size: float, total_training_modes: dict[str, int]) -> str:
    """Lightning's model summary table less its FLOPs column and "Total Flops" line, for a model whose FLOPs were not
    counted (Lightning counts them only through an ``example_input_array``; every other model reads "0")."""
    from lightning.pytorch.utilities.model_summary.model_summary import _format_summary_table

    columns = [column for column in summary_data if column[0] != "FLOPs"]
    lines = _format_summary_table(total_parameters, trainable_parameters, model_size, total_training_modes, 0, *columns).splitlines()
    return "\n".join(lines[:-1] if lines[-1].endswith("Total Flops") else lines)


def summary_settings(callback: Any) -> tuple[int, dict[str, Any]]:
    """A ``ModelSummary`` callback's ``max_depth`` and the extra ``summarize`` arguments it was built with."""
    return callback._max_depth, dict(callback._summarize_kwargs)

