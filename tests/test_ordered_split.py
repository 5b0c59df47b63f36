"""``--data.split ordered``: the Sapienza split (report 002a), the first images for training and the last
``val_size`` for validation, in file order instead of a seeded random draw.

The official batches have a file order (data_batch_1 ... data_batch_5, row by row). An image folder does not:
it is read class by class, so its "first 49,000" would be nine classes and its validation split all trucks.
There the order interleaves the classes by position within each class (the first image of every class, then
the second, ...), so the validation split is the last ``val_size / 10`` files of each class.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from datamodules import CIFAR10DataModule
from tests.cli_helpers import base_args, refusal, run_cli
from tests.conftest import PER_BATCH, write_image_folder


def test_ordered_split_on_the_official_batches_is_their_file_order(batches_dir: Path) -> None:
    dm = CIFAR10DataModule(data_dir=str(batches_dir), download=False, val_size=20, split="ordered")
    dm.setup("fit")
    n = 5 * PER_BATCH
    assert dm.train_idx.tolist() == list(range(n - 20)), "the first n - val_size images train, in file order"
    assert sorted(dm.val_idx.tolist()) == list(range(n - 20, n)), "the next val_size validate"
    batch5 = pickle.load(open(batches_dir / "cifar-10-batches-py" / "data_batch_5", "rb"), encoding="bytes")
    last = torch.tensor(batch5[b"data"][-20:]).view(-1, 3, 32, 32)
    assert torch.equal(dm.images[sorted(dm.val_idx.tolist())], last), "validation = the last 20 rows of data_batch_5"


def test_ordered_split_ignores_split_seed_but_validation_is_visited_class_mixed(batches_dir: Path) -> None:
    a = CIFAR10DataModule(data_dir=str(batches_dir), download=False, val_size=20, split="ordered", split_seed=1)
    b = CIFAR10DataModule(data_dir=str(batches_dir), download=False, val_size=20, split="ordered", split_seed=2)
    a.setup("fit"), b.setup("fit")
    assert torch.equal(a.train_idx, b.train_idx) and sorted(a.val_idx.tolist()) == sorted(b.val_idx.tolist())
    assert a.val_idx.tolist() != sorted(a.val_idx.tolist()), "visited in a seeded order: any prefix is an unbiased sample"


def test_random_split_is_still_the_default(batches_dir: Path) -> None:
    dm = CIFAR10DataModule(data_dir=str(batches_dir), download=False, val_size=20)
    dm.setup("fit")
    assert dm.hparams.split == "random" and dm.train_idx.tolist() != list(range(130))


def test_ordered_split_on_a_class_folder_interleaves_the_classes(tmp_path: Path) -> None:
    """6 images per class (read class by class: index = 6 * class + position); val_size 20 = the last 2 of each class."""
    folder = write_image_folder(tmp_path / "f", per_class=6)
    dm = CIFAR10DataModule(data_dir=str(folder), download=False, val_size=20, split="ordered")
    dm.setup("fit")
    assert sorted(dm.val_idx.tolist()) == sorted(6 * c + p for c in range(10) for p in (4, 5))
    assert dm.train_idx.tolist() == sorted(6 * c + p for c in range(10) for p in range(4))
    assert torch.bincount(dm.val_y, minlength=10).tolist() == [2] * 10, "balanced, not ten trucks"


def test_ordered_split_with_val_size_not_a_multiple_of_the_classes(tmp_path: Path) -> None:
    """Interleaved order: the last 13 are position 5 of all ten classes and position 4 of the last three."""
    folder = write_image_folder(tmp_path / "f", per_class=6)
    dm = CIFAR10DataModule(data_dir=str(folder), download=False, val_size=13, split="ordered")
    dm.setup("fit")
    assert sorted(dm.val_idx.tolist()) == sorted([6 * c + 5 for c in range(10)] + [6 * c + 4 for c in (7, 8, 9)])


def test_split_is_checked_and_travels_with_the_checkpoint(capsys: pytest.CaptureFixture, batches_dir: Path, tmp_path: Path) -> None:
    msg = refusal(capsys, "fit", *base_args(batches_dir, tmp_path / "bad", "--data.split", "first"))
    assert "--data.split" in msg and "ordered" in msg
    runs = tmp_path / "runs"
    cli = run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_epochs", "1", "--data.split", "ordered", "--run_name", "o"))
    best = float(cli.trainer.checkpoint_callback.best_model_score)
    ev = run_cli("validate", "--ckpt_path", runs / "o" / "version_0" / "checkpoints" / "best.ckpt", "--data.data_dir", batches_dir, "--runs_dir", runs, "--trainer.logger", "false")
    assert ev.datamodule.hparams.split == "ordered"
    assert sorted(ev.datamodule.val_idx.tolist()) == list(range(120, 150))
    assert float(ev.trainer.callback_metrics["val/acc"]) == best
