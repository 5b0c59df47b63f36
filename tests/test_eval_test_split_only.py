"""Evaluating a checkpoint needs only the split it evaluates: ``test`` on a folder holding only ``test/``
works (no download, no train/, the checkpoint's statistics); ``validate``/``fit`` there say in one line why not."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from datamodules import CIFAR10DataModule, DataError
from tests.cli_helpers import base_args, run_cli, run_script
from tests.conftest import write_image_folder


@pytest.fixture
def no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.utils as tv_utils

    monkeypatch.setattr(tv_utils, "download_url", lambda *a, **k: pytest.fail("evaluating test/ must not download anything"))


def test_test_on_a_folder_with_only_test_uses_the_checkpoint_statistics(tmp_path: Path, no_download: None) -> None:
    full = write_image_folder(tmp_path / "full", per_class=4)
    runs = tmp_path / "runs"
    run_cli("fit", *base_args(full, runs, "--trainer.max_steps", "3", "--data.val_size", "10", "--run_name", "t"))
    ckpt = runs / "t" / "version_0" / "checkpoints" / "last.ckpt"
    only_test = tmp_path / "only_test"
    shutil.copytree(full / "test", only_test / "test")
    # download true, the default (this fit's checkpoint says false): test/ alone must not trigger it.
    common = ("--data.download", "true", "--runs_dir", runs, "--trainer.logger", "false", "--trainer.enable_progress_bar", "false")
    reference = run_cli("test", "--ckpt_path", ckpt, "--data.data_dir", full, *common)
    alone = run_cli("test", "--ckpt_path", ckpt, "--data.data_dir", only_test, *common)
    assert torch.equal(alone.datamodule.mean, torch.load(ckpt, weights_only=True)["CIFAR10DataModule"]["mean"])
    assert alone.datamodule.train_idx is None and len(alone.datamodule.test_x) == 40
    for key in ("test/acc", "test/loss"):
        assert float(alone.trainer.callback_metrics[key]) == float(reference.trainer.callback_metrics[key]), key
    assert not (only_test / "train").exists() and not list(only_test.glob("*.tar.gz"))
    # validate needs the validation split, which is drawn out of train/: one line, exit 2 (python train.py).
    res = run_script("validate", "--ckpt_path", ckpt, "--data.data_dir", only_test, *common)
    assert res.returncode == 2, res.stderr[-2000:]
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "validate evaluates the validation split" in errors[0] and "Traceback" not in res.stderr, res.stderr[-2000:]


def test_validate_and_fit_on_test_alone_say_why_in_one_line(tmp_path: Path, no_download: None) -> None:
    only_test = write_image_folder(tmp_path / "only_test", per_class=2, splits=("test",))
    for stage, expected in (
        ("validate", r"validate evaluates the validation split \(--data.val_size 10 images drawn with --data.split_seed 0\) out of the training images, '.*only_test/train/<class>/', but '.*only_test' has none \(only test/\)\. Evaluate test/ with `python train.py test --ckpt_path X`\."),
        ("fit", r"^fit trains on the training images, '.*only_test/train/<class>/', but .* has none \(only test/\)\.$"),
    ):
        dm = CIFAR10DataModule(str(only_test), val_size=10)  # download true: test/ is data enough not to fetch any
        with pytest.raises(DataError, match=expected):
            dm.setup(stage)
    dm = CIFAR10DataModule(str(only_test), val_size=10)
    dm.setup("test")
    with pytest.raises(DataError, match=r"^without --ckpt_path \(whose checkpoint carries them\) the normalisation statistics come from the training images"):
        dm.test_dataloader()
