"""Images a study process read once are what the runs it forks train on: no second fingerprint, read or
decode in the run, the same tensors as a run that reads them itself; anything else reads its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import datamodules.cifar10 as cifar10_module
import datamodules.sources as sources
from datamodules import CIFAR10DataModule
from datamodules.shared_data import shared, shared_with_forked_runs
from datamodules.sources import load_cifar10


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


def test_a_relative_data_dir_and_cache_dir_are_the_runs_own_spelling_and_a_study_reads_only_for_forked_runs(
    image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The study reads the folders as its runs (working directory: the repository) will name them; a run that
    names them relatively finds them and says where its data is as it would alone."""
    import argparse

    from jsonargparse import Namespace

    from studies.main import _shared_data
    from studies.spec import ROOT

    cache = tmp_path / "caches"
    load_cifar10(image_folder, download=False, cache_dir=cache, notify=lambda _: None)
    data = Namespace(data_dir=os.path.relpath(image_folder, ROOT), cache_dir=os.path.relpath(cache, ROOT), archive_md5=sources.OFFICIAL_MD5, source="auto")
    forking = argparse.Namespace(launcher="local", fork=True)
    monkeypatch.setattr("studies.main.fork_refusal", lambda gpus: None)  # this test process has torch threads: pretend it could fork
    monkeypatch.chdir(tmp_path)  # the study may be started anywhere
    with _shared_data(data, forking) as loaded:
        assert loaded and not list(tmp_path.glob("*.npz")), "nothing read or written relative to where the study started"
        monkeypatch.chdir(ROOT)  # where its runs work
        found = shared(data.data_dir, data.cache_dir, sources.OFFICIAL_MD5)
        assert found is not None and found[1].source == data.data_dir, "the run's own spelling of its data folder"
        assert shared(data.data_dir, data.cache_dir, "0" * 32) is None, "another --data.archive_md5 is another data set"
    for args, source in ((argparse.Namespace(launcher="local", fork=False), "auto"), (argparse.Namespace(launcher="slurm", fork=True), "auto"),
                         (forking, "synthetic")):  # fmt: skip
        with _shared_data(Namespace(**{**vars(data), "source": source}), args) as loaded:
            assert not loaded, (args, source)
