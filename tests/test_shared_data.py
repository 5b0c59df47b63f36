"""Images a study process read once are what the runs it forks train on: no second fingerprint, read or
decode in the run, the same tensors as a run that reads them itself; anything else reads its own."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import datamodules.cifar10 as cifar10_module
import datamodules.sources as sources
from datamodules import CIFAR10DataModule
from datamodules.shared_data import shared, shared_with_forked_runs


def _fit_data(data_dir: Path) -> CIFAR10DataModule:
    dm = CIFAR10DataModule(data_dir=str(data_dir), val_size=6, batch_size=4)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_a_run_inside_the_block_trains_on_the_images_read_for_it_and_they_are_the_same(image_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process here (a fork would inherit the same module state; this process's torch threads make forking
    it unsafe); tests/test_forked_runs.py checks a forked study run against the same run alone, bit for bit."""
    alone = _fit_data(image_folder)  # also writes the cache, as a study's first run would
    with shared_with_forked_runs(image_folder) as loaded:
        assert loaded

        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError("the run fingerprinted or read the data again")

        monkeypatch.setattr(cifar10_module, "locate", refuse)
        monkeypatch.setattr(cifar10_module, "load_cifar10", refuse)
        inside = _fit_data(image_folder)
        for key in ("images", "labels", "test_x", "test_y", "train_idx", "val_idx", "mean", "std"):
            assert torch.equal(getattr(inside, key), getattr(alone, key)), key
        assert inside.test_names == alone.test_names
    assert shared(image_folder, True) is None, "the block's end lets the images go"


def test_other_settings_a_missing_folder_or_no_cache_read_their_own(image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with shared_with_forked_runs(image_folder) as loaded:
        assert loaded and shared(image_folder, True) is not None
        assert shared(image_folder, str(tmp_path / "caches")) is None, "another --data.cache_dir is another data set"
        assert shared(tmp_path / "other", True) is None
    downloads: list[object] = []
    monkeypatch.setattr(sources, "_download", lambda *a: downloads.append(a))
    with shared_with_forked_runs(tmp_path / "missing") as loaded:
        assert not loaded and not downloads, "never a download: the runs report a missing folder themselves"
    with shared_with_forked_runs(image_folder, cache_dir=False) as loaded:
        assert not loaded and shared(image_folder, False) is None
