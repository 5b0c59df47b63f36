"""The fixed-constant preprocessing modes the course recipes use, checked value by value on a known image.

``minus_one_one`` is torchvision's ``ToTensor()`` then ``Normalize(0.5, 0.5)`` (reports 002b, 003b);
``fixed_channel_stats`` is ``ToTensor()`` then ``Normalize(channel_mean, channel_std)``, by default CIFAR-10's
published statistics (report 004). Neither depends on the training split, and both travel with the checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import transforms

from datamodules import CIFAR10DataModule
from datamodules.cifar10 import CIFAR10_MEAN, CIFAR10_STD
from tests.cli_helpers import base_args, refusal, run_cli

# One known 32x32 image: each channel a ramp 0..255 (every value once per channel, then 0 for the rest).
VALUES = np.concatenate([np.arange(256), np.zeros(1024 - 256, dtype=np.int64)])


def known_image() -> np.ndarray:
    """HWC uint8, channel c = the ramp rolled by 7c, so the channels differ."""
    return np.stack([np.roll(VALUES, 7 * c).reshape(32, 32) for c in range(3)], axis=-1).astype(np.uint8)


def served(dm: CIFAR10DataModule, image_hwc: np.ndarray) -> torch.Tensor:
    """The image as the DataModule's loaders normalise it (the training split's loader, no augmentation)."""
    from datamodules.augment import normalize

    x = torch.from_numpy(np.ascontiguousarray(image_hwc.transpose(2, 0, 1)))[None]
    return normalize(x, dm.mean, dm.std)[0]


def datamodule(batches_dir: Path, **kwargs: object) -> CIFAR10DataModule:
    dm = CIFAR10DataModule(data_dir=str(batches_dir), download=False, val_size=30, **kwargs)
    dm.setup("fit")
    return dm


def test_minus_one_one_is_totensor_then_normalize_half_half(batches_dir: Path) -> None:
    image = known_image()
    ours = served(datamodule(batches_dir, preprocessing="minus_one_one"), image)
    theirs = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])(image)
    assert ours.dtype == torch.float32 and ours.shape == (3, 32, 32)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-6)
    expected = torch.from_numpy(image.transpose(2, 0, 1).astype(np.float64) / 255 * 2 - 1)
    assert torch.allclose(ours.double(), expected, rtol=0, atol=1e-6), "x / 255 * 2 - 1"
    ramp = ours[0].flatten()[:256]
    assert ramp[0] == -1.0 and ramp[255] == 1.0, "0 -> -1 and 255 -> 1 exactly"


def test_fixed_channel_stats_are_cifar10s_published_mean_and_std(batches_dir: Path) -> None:
    assert CIFAR10_MEAN == (0.491, 0.482, 0.447) and CIFAR10_STD == (0.247, 0.243, 0.262)
    image = known_image()
    ours = served(datamodule(batches_dir, preprocessing="fixed_channel_stats"), image)
    theirs = transforms.Compose([transforms.ToTensor(), transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)])(image)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-5)
    # pixel value 0 of channel c (position 256 of every ramp) is -mean_c / std_c
    assert ours[0].flatten()[300].item() == pytest.approx(-0.491 / 0.247, abs=1e-6)
    assert ours[2].flatten()[14 + 255].item() == pytest.approx((1 - 0.447) / 0.262, abs=1e-6), "255 in channel 2 (rolled by 14)"


def test_fixed_channel_stats_take_any_given_constants(batches_dir: Path) -> None:
    image = known_image()
    dm = datamodule(batches_dir, preprocessing="fixed_channel_stats", channel_mean=[0.1, 0.2, 0.3], channel_std=[0.5, 0.25, 2.0])
    theirs = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1, 0.2, 0.3), (0.5, 0.25, 2.0))])(image)
    assert torch.allclose(served(dm, image), theirs, rtol=0, atol=1e-5)


def test_fixed_modes_do_not_depend_on_the_training_split(batches_dir: Path, image_folder: Path) -> None:
    for mode in ("minus_one_one", "fixed_channel_stats"):
        a, b = datamodule(batches_dir, preprocessing=mode), datamodule(image_folder, preprocessing=mode)
        assert torch.equal(a.mean, b.mean) and torch.equal(a.std, b.std)
        assert a.mean.shape == (3, 1, 1)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--data.channel_mean", "[0.5, 0.5, 0.5]"], "--data.channel_mean"),
        (["--data.preprocessing", "fixed_channel_stats", "--data.channel_std", "[0.2, 0.0, 0.2]"], "--data.channel_std"),
        (["--data.preprocessing", "fixed_channel_stats", "--data.channel_mean", "[0.5, 0.5]"], "--data.channel_mean"),
    ],
)
def test_channel_constants_are_checked_in_one_line(capsys: pytest.CaptureFixture, batches_dir: Path, tmp_path: Path, extra: list[str], words: str) -> None:
    msg = refusal(capsys, "fit", *base_args(batches_dir, tmp_path / "runs", *extra))
    assert words in msg and "\n" not in msg, msg


def test_checkpoint_carries_the_mode_and_its_constants(batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_epochs", "1", "--data.preprocessing", "minus_one_one", "--run_name", "m"))
    ckpt = runs / "m" / "version_0" / "checkpoints" / "last.ckpt"
    ev = run_cli("test", "--ckpt_path", ckpt, "--data.data_dir", batches_dir, "--runs_dir", runs, "--trainer.logger", "false")
    assert ev.datamodule.hparams.preprocessing == "minus_one_one"
    assert torch.allclose(ev.datamodule.mean.flatten(), torch.full((3,), 127.5)) and torch.allclose(ev.datamodule.std.flatten(), torch.full((3,), 127.5))
