"""Fixtures that build tiny CIFAR-10 look-alikes on disk; no test downloads or reads real data."""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

from datamodules.sources import BATCHES_DIR, CLASSES  # noqa: E402
from tests.slurm_helpers import slurm_cluster  # noqa: E402,F401  (the fixture of the tests marked `slurm`)

PER_BATCH = 30  # 5 train batches -> 150 train images
N_TEST = 50


def _images(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose mean brightness depends on the label, so a model can learn something in a few steps."""
    labels = rng.integers(0, 10, n)
    base = (labels[:, None] * 20 + 30).astype(np.int64)
    data = np.clip(base + rng.integers(-30, 30, (n, 3072)), 0, 255).astype(np.uint8)
    return data, labels


def write_batches(root: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / BATCHES_DIR
    folder.mkdir(parents=True)
    for name, n in [*((f"data_batch_{i}", PER_BATCH) for i in range(1, 6)), ("test_batch", N_TEST)]:
        data, labels = _images(rng, n)
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": data, b"labels": labels.tolist(), b"batch_label": name.encode()}, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [c.encode() for c in CLASSES]}, fh)
    return folder


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def batches_dir(tmp_path: Path) -> Path:
    """A data_dir holding an extracted fake official release."""
    write_batches(tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture
def fake_archive(tmp_path: Path) -> tuple[Path, str]:
    """(data_dir holding only cifar-10-python.tar.gz, its MD5)."""
    staging = tmp_path / "staging"
    write_batches(staging)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    archive = data_dir / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging / BATCHES_DIR, arcname=BATCHES_DIR)
    return data_dir, md5(archive)


def write_image_folder(root: Path, per_class: int = 6, splits: tuple[str, ...] = ("train", "test"), suffix: str = ".png") -> Path:
    rng = np.random.default_rng(1)
    for split in splits:
        for y, c in enumerate(CLASSES):
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(per_class):
                arr = np.clip(y * 20 + 30 + rng.integers(-30, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(d / f"{i:04d}{suffix}")
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path / "folder")
