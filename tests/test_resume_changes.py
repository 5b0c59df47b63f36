"""A flag changed on resume is honoured or refused, never recorded as applied and then ignored.

Lightning restores the optimizer and scheduler states over the objects the new flags built, so a changed
``--model.optimizer.lr`` used to be written into ``config.resume-1.yaml`` while ``lr_schedule.csv`` kept
the old rate to the end. A refused resume leaves the run exactly as it was (no config file, no status
change, no W&B segment, no ``Outputs:`` line); an honoured one says which flags it changed, in the console
and at the top of the segment's config file.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest

from cli.resume_changes import ResumeChangeError, flatten, refusal_reason
from tests.cli_helpers import base_args, only_run_dir, run_cli
from tests.conftest import write_batches

STEPS = ("--trainer.max_steps", "6", "--trainer.val_check_interval", "3", "--trainer.check_val_every_n_epoch", "null")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_batches(root)
    return root


def snapshot(run_dir: Path) -> dict[str, str]:
    """Every file of the run and its content hash: a refused resume must change none and add none."""
    return {str(p.relative_to(run_dir)): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture()
def finished(data: Path, tmp_path: Path) -> Path:
    """A completed 6-step run ``r1`` with the default logger (W&B, offline)."""
    run_cli("fit", *base_args(data, tmp_path / "runs", *STEPS, "--run_name", "r1", logger=None))
    return only_run_dir(tmp_path / "runs")


def lrs(run_dir: Path) -> list[float]:
    with open(run_dir / "lr_schedule.csv", newline="") as fh:
        return [float(row["opt0_group0"]) for row in csv.DictReader(fh)]


@pytest.mark.parametrize(
    "flags,message",
    [
        (("--model.optimizer.lr", "0.01"), "--model.optimizer.lr 0.05 -> 0.01: cannot change on resume (the checkpoint's optimizer and LR-scheduler states"),
        (("--model.optimizer", "torch.optim.Adam"), "--model.optimizer.class_path torch.optim.SGD -> torch.optim.Adam"),
        (("--model.hidden_sizes", "[50]"), "--model.hidden_sizes [16] -> [50]: cannot change on resume (the checkpoint's weights belong to the model"),
        (("--model.activation", "tanh"), "--model.activation relu -> tanh"),  # same shapes: the load would not have noticed
        (("--data.batch_size", "10"), "--data.batch_size 20 -> 10: cannot change on resume (the epoch in progress resumes at a saved position"),
        (("--data.val_size", "40"), "--data.val_size 30 -> 40: cannot change on resume (it changes the train/validation split"),
        (("--seed_everything", "1"), "--seed_everything 0 -> 1"),
    ],
)
def test_a_flag_the_restored_state_would_override_is_refused_and_the_run_is_left_as_it_was(
    finished: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture, flags: tuple[str, ...], message: str
) -> None:
    before = snapshot(finished)
    capsys.readouterr()
    with pytest.raises(ResumeChangeError) as exc:
        run_cli("fit", *base_args(data, tmp_path / "runs", *STEPS, "--run_name", "r1", "--ckpt_path", "last", "--trainer.max_steps", "9", *flags, logger=None))
    text = str(exc.value)
    assert message in text and "\n" not in text, text
    assert "nothing of the run was changed" in text and f"--ckpt_path {finished / 'checkpoints' / 'last.ckpt'}" in text
    assert snapshot(finished) == before, "the refused resume changed the run"
    out = capsys.readouterr()
    assert "Outputs:" not in out.out + out.err and "wandb sync" not in out.out + out.err
    assert [p.name for p in (tmp_path / "runs" / "r1").iterdir()] == ["version_0"]


def test_honoured_changes_are_applied_and_named_in_the_console_and_the_segment_config(finished: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    run_cli("fit", *base_args(data, tmp_path / "runs", *STEPS, "--run_name", "r1", "--ckpt_path", "last", "--trainer.max_steps", "9", "--model.tta", "flip", logger=None))
    assert only_run_dir(tmp_path / "runs") == finished, "resumed in place"
    out = capsys.readouterr().out
    assert "resumed with changed flags, all honoured: --trainer.max_steps 6 -> 9, --model.tta none -> flip" in out, out
    header = (finished / "config.resume-1.yaml").read_text().splitlines()[0]
    assert header.startswith("# Resumed at step 6 ") and header.endswith("changed flags, all honoured: --trainer.max_steps 6 -> 9, --model.tta none -> flip")
    assert len(lrs(finished)) == 9, "trained on to the new max_steps"
    # The next resume compares with the newest segment's config: the same flags again change nothing.
    capsys.readouterr()
    run_cli("fit", *base_args(data, tmp_path / "runs", *STEPS, "--run_name", "r1", "--ckpt_path", "last", "--trainer.max_steps", "9", "--model.tta", "flip", logger=None))
    assert "changed flags" not in capsys.readouterr().out


def test_branching_from_an_older_checkpoint_with_another_lr_is_refused_and_leaves_no_new_version(finished: Path, data: Path, tmp_path: Path) -> None:
    best = finished / "checkpoints" / "best.ckpt"
    (finished / "checkpoints" / "last.ckpt").touch()  # last.ckpt newer than best.ckpt: best.ckpt branches into a new version
    with pytest.raises(ResumeChangeError, match=r"--model.optimizer.lr 0.05 -> 0.5"):
        run_cli("fit", *base_args(data, tmp_path / "runs", *STEPS, "--run_name", "r1", "--ckpt_path", str(best), "--model.optimizer.lr", "0.5"))
    assert [p.name for p in (tmp_path / "runs" / "r1").iterdir()] == ["version_0"]


def test_flatten_and_the_classes_of_flags() -> None:
    config = {"model": {"class_path": "M", "init_args": {"optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1}}, "hidden_sizes": [1, 2]}}, "trainer": {"max_steps": 5}}
    assert flatten(config) == {"model.class_path": "M", "model.optimizer.class_path": "torch.optim.SGD", "model.optimizer.lr": 0.1, "model.hidden_sizes": [1, 2], "trainer.max_steps": 5}
    honoured = ["trainer.max_steps", "trainer.limit_val_batches", "trainer.precision", "model.tta", "model.compile", "data.data_dir", "data.augment", "last_checkpoint.every_n_train_steps", "divergence.check_every_n_steps"]
    refused = ["model.optimizer.lr", "model.scheduler.max_lr", "model.lr_multipliers", "model.init", "model.class_path", "data.split_seed", "data.preprocessing", "data.batch_size", "seed_everything", "checkpoint.monitor"]
    assert [k for k in honoured if refusal_reason(k)] == []
    assert [k for k in refused if not refusal_reason(k)] == []
