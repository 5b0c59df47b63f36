"""One test per Lightning detail the project relies on without a public API (see core/lightning_internals.py),
plus the public-looking rules we re-implemented, pinned against Lightning's own decision.

A Lightning upgrade that changes one of them fails here, by name, instead of in a user's run.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L

from core.lightning_internals import HOOK_NAME_ATTRIBUTE, QuietWandbLogger, hpc_checkpoints, logs_at_this_step


def test_slurm_requeue_checkpoints_are_named_hpc_ckpt_n_in_default_root_dir(tmp_path: Path) -> None:
    trainer = L.Trainer(default_root_dir=tmp_path, logger=False, enable_progress_bar=False)
    path = Path(trainer._checkpoint_connector.hpc_save_path(tmp_path))
    assert path.parent == tmp_path and path.name == "hpc_ckpt_1.ckpt"
    path.write_bytes(b"x")
    assert hpc_checkpoints(tmp_path) == [path]


def test_lightning_still_names_the_running_hook_in_current_fx_name(batches_dir: Path, tmp_path: Path) -> None:
    """FastHookNameMixin intercepts this attribute; if Lightning renamed it, the mixin would silently do nothing."""
    from lit_models import MLPClassifier

    seen: list[str] = []

    class Spy(MLPClassifier):
        def training_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
            seen.append(self.__dict__.get(HOOK_NAME_ATTRIBUTE))
            return super().training_step(batch, batch_idx)

    from datamodules import CIFAR10DataModule

    trainer = L.Trainer(max_steps=1, logger=False, enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(Spy(hidden_sizes=[4]), CIFAR10DataModule(str(batches_dir), download=False, val_size=30, batch_size=20))
    assert seen == ["training_step"]


def test_lightning_wandb_logger_still_passes_anonymous_none_and_ours_drops_it(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import WandbLogger

    assert "anonymous" in WandbLogger(save_dir=tmp_path, offline=True)._wandb_init
    assert "anonymous" not in QuietWandbLogger(save_dir=tmp_path, offline=True)._wandb_init


def test_our_logging_step_rule_is_lightnings(batches_dir: Path, tmp_path: Path) -> None:
    from datamodules import CIFAR10DataModule
    from lit_models import MLPClassifier

    decisions: list[tuple[bool, bool]] = []

    class Compare(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):  # noqa: ANN001
            decisions.append((logs_at_this_step(trainer), trainer._logger_connector.should_update_logs))

    trainer = L.Trainer(max_steps=13, log_every_n_steps=3, callbacks=[Compare()], logger=False, enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(MLPClassifier(hidden_sizes=[4]), CIFAR10DataModule(str(batches_dir), download=False, val_size=30, batch_size=20))
    assert len(decisions) == 13 and [ours for ours, _ in decisions] == [theirs for _, theirs in decisions], decisions
    assert sum(ours for ours, _ in decisions) == 4, "steps 3, 6, 9, 12"


def test_checkpoint_callbacks_run_after_all_others() -> None:
    """LastCheckpoint relies on Lightning moving Checkpoint subclasses to the end of the callback list."""
    from callbacks.last_checkpoint import LastCheckpoint
    from callbacks.learning_curves import LearningCurves

    last, curves = LastCheckpoint(), LearningCurves()
    trainer = L.Trainer(callbacks=[last, curves], logger=False, enable_progress_bar=False, enable_model_summary=False)
    order = [type(cb) for cb in trainer.callbacks]
    assert order.index(LastCheckpoint) > order.index(LearningCurves)


BACKGROUND_START = """
import signal, sys, threading
import wandb
seen = []
init = wandb.init
wandb.init = lambda **kw: (seen.append(threading.current_thread().name), init(**kw))[1]
from core.lightning_internals import QuietWandbLogger
logger = QuietWandbLogger(save_dir={save_dir!r}, offline=True, project="t", **{extra})
logger.start_in_background()
logger.log_hyperparams({{"a": 1, "b": 1}})
logger.log_hyperparams({{"b": 2}})  # before the run exists: kept, applied in order
{body}
"""

USED = """
run = logger.experiment
print("RUN", seen, logger._experiment is run, sorted(dict(run.config).items()))
run.finish()
"""

FAILED = """
logger.finalize("failed")  # the first use: nothing to finalize, and quiet (the start's own error is the one reported)
errors = []
for _ in range(2):
    try:
        logger.experiment
    except Exception as exc:
        errors.append(type(exc).__name__)
print("RAISED", errors, seen)  # the same error each time, and wandb.init called once
"""

INTERRUPTED = """
def stop(signum, frame):
    raise KeyboardInterrupt
signal.signal(signal.SIGALRM, stop)
signal.setitimer(signal.ITIMER_REAL, 0.02)  # Ctrl-C while the main thread waits for the start
try:
    logger.experiment
    print("NOT INTERRUPTED")
except KeyboardInterrupt:
    logger.finalize("interrupted")  # the session's close: waits for the thread, so the run can be finished
    print("FINISHED" if wandb.run is not None and logger._experiment is wandb.run else "LOST", seen)
    wandb.run.finish()
"""


def _background_start(tmp_path: Path, body: str, extra: str = "{}") -> str:
    import subprocess
    import sys

    code = BACKGROUND_START.format(save_dir=str(tmp_path), extra=extra, body=body)
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout.strip().splitlines()[-1]


def test_a_background_wandb_start_fills_lightnings_experiment_and_gets_the_earlier_hyperparameters(tmp_path: Path) -> None:
    """Lightning's getter still stores the run in ``_experiment`` (so it is started once, in the thread)."""
    assert _background_start(tmp_path, USED) == "RUN ['wandb-start'] True [('a', 1), ('b', 2)]"


def test_a_failed_background_start_raises_its_own_error_at_every_use_and_never_starts_again(tmp_path: Path) -> None:
    assert _background_start(tmp_path, FAILED, "{'mode': 'no-such-mode'}") == "RAISED ['ValidationError', 'ValidationError'] ['wandb-start']"


def test_a_signal_during_the_wait_leaves_the_start_to_the_closing_finalize(tmp_path: Path) -> None:
    assert _background_start(tmp_path, INTERRUPTED) == "FINISHED ['wandb-start']"


class _WithExample(L.LightningModule):
    """A model whose FLOPs Lightning counts (it has an example_input_array)."""

    def __init__(self) -> None:
        super().__init__()
        import torch

        self.layer = torch.nn.Linear(4, 3)
        self.example_input_array = torch.zeros(2, 4)

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.layer(x)


def test_lightnings_summary_table_ends_in_total_flops_and_ours_drops_that_line_and_the_flops_column() -> None:
    from lightning.pytorch.utilities.model_summary import summarize
    from lightning.pytorch.utilities.model_summary.model_summary import _format_summary_table

    from core.lightning_internals import summary_table_without_flops

    summary = summarize(_WithExample())
    data = summary._get_summary_data()
    args = (summary.total_parameters, summary.trainable_parameters, summary.model_size, summary.total_training_modes)
    theirs = _format_summary_table(*args, summary.total_flops, *data)
    assert theirs.splitlines()[-1].endswith("Total Flops") and "FLOPs" in theirs.splitlines()[0]
    ours = summary_table_without_flops(data, *args)
    assert "FLOPs" not in ours and "Total Flops" not in ours and ours.splitlines()[-1].endswith("Modules in eval mode")
    assert "| layer | Linear | 15 " in ours and "Trainable params" in ours


def test_a_model_summary_callback_keeps_its_max_depth_and_extra_arguments_in_private_fields() -> None:
    from lightning.pytorch.callbacks import ModelSummary

    from core.lightning_internals import summary_settings

    assert summary_settings(ModelSummary(max_depth=3, some_option=1)) == (3, {"some_option": 1})
