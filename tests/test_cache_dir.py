"""The decoded-image cache: where ``--data.cache_dir`` says, said where when written, off on request, and a
read-only data folder costs the cache (one note), never the run."""

from __future__ import annotations

import errno
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

import datamodules.sources as sources
from datamodules import CIFAR10DataModule
from datamodules.sources import load_cifar10
from tests.cli_helpers import base_args, run_cli


def _read_only(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """chmod a-w; as root (which chmod does not stop) writes under ``path`` also fail as on a read-only mount."""
    path.chmod(0o555)
    if os.geteuid() != 0:
        return
    import builtins

    real_open, real_extractall = builtins.open, tarfile.TarFile.extractall

    def guarded_open(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if any(m in mode for m in "wax+") and Path(str(file)).resolve().is_relative_to(path.resolve()):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, mode, *args, **kwargs)

    def guarded_extractall(self: tarfile.TarFile, target: object = ".", *args: object, **kwargs: object) -> None:
        if Path(str(target)).resolve().is_relative_to(path.resolve()):
            raise PermissionError(errno.EACCES, "Permission denied", str(target))
        return real_extractall(self, target, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(tarfile.TarFile, "extractall", guarded_extractall)


def _count_decoding(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = sources._decode

    def counted(root: Path, kind: str) -> object:
        calls.append(kind)
        return real(root, kind)

    monkeypatch.setattr(sources, "_decode", counted)
    return calls


def test_cache_dir_moves_the_cache_and_says_where(image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notes: list[str] = []
    elsewhere = tmp_path / "caches" / "cifar"
    first = load_cifar10(image_folder, download=False, cache_dir=elsewhere, notify=notes.append)
    written = list(elsewhere.glob("cifar10_cache_*.npz"))
    assert len(written) == 1 and not list(image_folder.glob("*cache*")), "the cache goes to cache_dir only"
    assert len(notes) == 1 and notes[0].startswith(f"Decoded images cached in '{written[0]}' (") and "--data.cache_dir" in notes[0]
    decoded = _count_decoding(monkeypatch)
    again = load_cifar10(image_folder, download=False, cache_dir=elsewhere, notify=notes.append)
    assert decoded == [] and len(notes) == 1, "the second load reads the cache silently"
    np.testing.assert_array_equal(first.train_x, again.train_x)
    assert again.source == str(image_folder)


def test_default_cache_stays_in_data_dir_and_false_disables_it(image_folder: Path, tmp_path: Path) -> None:
    dm = CIFAR10DataModule(str(image_folder), download=False, val_size=10)
    assert dm.hparams.cache_dir is True
    dm.setup("fit")
    assert len(list(image_folder.glob(".cifar10_cache_*.npz"))) == 1
    other = tmp_path / "copy"
    import shutil

    shutil.copytree(image_folder / "train", other / "train")
    for off in (False, None):
        CIFAR10DataModule(str(other), download=False, val_size=10, cache_dir=off).setup("fit")
        assert not [p for p in other.iterdir() if p.is_file()], f"cache_dir={off}: no cache written"


def test_read_only_data_dir_decodes_once_with_one_note(image_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    _read_only(image_folder, monkeypatch)
    try:
        decoded = _count_decoding(monkeypatch)
        dm = CIFAR10DataModule(str(image_folder), download=False, val_size=10)
        dm.prepare_data()  # as Lightning runs it: nothing to prepare when no cache can be written
        dm.setup("fit")
        assert len(dm.train_idx) == 50 and decoded == ["folder"], "decoded once, by setup"
        notes = [line for line in capsys.readouterr().out.splitlines() if "cache" in line]
        assert len(notes) == 1 and notes[0].startswith(f"Note: no decoded-image cache: cannot write '{image_folder}'") and "--data.cache_dir DIR" in notes[0]
        assert not list(image_folder.glob("*cache*")) and not list(image_folder.glob("*.tmp*"))
    finally:
        image_folder.chmod(0o755)


def test_read_only_data_dir_with_a_cache_dir_caches_there(image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _read_only(image_folder, monkeypatch)
    try:
        cli = run_cli("fit", *base_args(image_folder, tmp_path / "runs", "--trainer.fast_dev_run", "true", "--data.val_size", "10", "--data.cache_dir", tmp_path / "c"))
        assert cli.datamodule.hparams.cache_dir == str(tmp_path / "c")
        assert len(list((tmp_path / "c").glob("cifar10_cache_*.npz"))) == 1
    finally:
        image_folder.chmod(0o755)


def test_read_only_folder_holding_only_the_archive_is_read_in_place(fake_archive: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir, digest = fake_archive
    _read_only(data_dir, monkeypatch)
    try:
        raw = load_cifar10(data_dir, download=False, archive_md5=digest, notify=lambda _: None)
        assert raw.train_x.shape == (150, 3, 32, 32) and raw.test_x.shape == (50, 3, 32, 32)
        assert raw.source == str(data_dir / "cifar-10-python.tar.gz") and not (data_dir / "cifar-10-batches-py").exists()
    finally:
        data_dir.chmod(0o755)
    extracted = load_cifar10(data_dir, download=False, archive_md5=digest, use_cache=False)
    np.testing.assert_array_equal(raw.train_x, extracted.train_x)
    np.testing.assert_array_equal(raw.test_y, extracted.test_y)
