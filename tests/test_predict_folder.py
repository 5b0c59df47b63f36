"""``predict --data.predict_dir`` on a real-world folder: every readable image is classified, every other file
is listed once with its reason (console and skipped.csv), other sizes are resized only when asked."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules import DataError
from tests.cli_helpers import base_args, run_cli
from tests.conftest import write_image_folder


def read_predict_folder(folder: Path, resize: bool) -> object:
    from datamodules.predict_folder import read_predict_folder as read  # imported late: the CLI test runs without it

    return read(folder, resize)


def _photo_folder(root: Path) -> Path:
    """A good 32x32 PNG, a grayscale and an RGBA one, a 64x64 PNG, a 40x48 JPEG, a truncated PNG, a text file."""
    rng = np.random.default_rng(0)
    (root / "sub").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / "good.png")
    Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(root / "gray.png")
    Image.fromarray(rng.integers(0, 256, (32, 32, 4), dtype=np.uint8)).save(root / "sub" / "rgba.png")
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / "big.png")
    Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(root / "photo.jpg")
    good = (root / "good.png").read_bytes()
    (root / "corrupt.png").write_bytes(good[: len(good) // 2])
    (root / "notes.txt").write_text("not a picture\n")
    return root


def test_every_readable_32x32_image_is_kept_and_every_other_file_is_listed_with_its_reason(tmp_path: Path) -> None:
    folder = _photo_folder(tmp_path / "photos")
    found = read_predict_folder(folder, resize=False)
    assert found.names == ["good.png", "gray.png", "sub/rgba.png"] and found.images.shape == (3, 3, 32, 32)
    np.testing.assert_array_equal(found.images[0], np.asarray(Image.open(folder / "good.png")).transpose(2, 0, 1))
    gray = np.asarray(Image.open(folder / "gray.png"))
    assert all(np.array_equal(found.images[1][c], gray) for c in range(3)), "grayscale becomes RGB"
    reasons = dict(found.skipped)
    assert list(reasons) == ["big.png", "corrupt.png", "notes.txt", "photo.jpg"]
    assert reasons["big.png"] == "not 32x32: 64x64 (--data.predict_resize true resizes it)"
    assert reasons["photo.jpg"].startswith("not 32x32: 40x48")
    assert reasons["corrupt.png"].startswith("unreadable image: OSError")
    assert reasons["notes.txt"].startswith("not an image")
    report = found.skipped_report(folder).splitlines()
    assert report[0] == f"Skipped 4 of 7 files under '{folder}' (not 32x32: 2, unreadable image: 1, not an image: 1):"
    assert report[1:] == [f"  {name}: {reason}" for name, reason in found.skipped]


def test_resize_turns_any_size_into_32x32_bicubic(tmp_path: Path) -> None:
    folder = _photo_folder(tmp_path / "photos")
    found = read_predict_folder(folder, resize=True)
    assert found.names == ["big.png", "good.png", "gray.png", "photo.jpg", "sub/rgba.png"]
    assert [name for name, _ in found.skipped] == ["corrupt.png", "notes.txt"]
    expected = np.asarray(Image.open(folder / "big.png").resize((32, 32), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(found.images[0], expected.transpose(2, 0, 1))
    np.testing.assert_array_equal(found.images[1], read_predict_folder(folder, resize=False).images[0]), "32x32 stays as is"


def test_a_folder_with_nothing_classifiable_is_one_line_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (64, 64)).save(folder / "big.png")
    (folder / "notes.txt").write_text("x")
    with pytest.raises(DataError) as exc:
        read_predict_folder(folder, resize=False)
    message = str(exc.value)
    assert "\n" not in message and f"'{folder}'" in message
    assert "none of its 2 files can be classified (not 32x32: 1, not an image: 1); --data.predict_resize true resizes" in message
    (folder / "big.png").unlink()
    with pytest.raises(DataError, match=r"none of its 1 files can be classified \(not an image: 1\)\.$"):
        read_predict_folder(folder, resize=True)


def test_predict_classifies_the_readable_images_and_writes_skipped_csv(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = write_image_folder(tmp_path / "data", per_class=3)
    runs = tmp_path / "runs"
    run_cli("fit", *base_args(data, runs, "--trainer.max_steps", "2", "--data.val_size", "10", "--run_name", "f"))
    ckpt = runs / "f" / "version_0" / "checkpoints" / "last.ckpt"
    photos = _photo_folder(tmp_path / "photos")
    capsys.readouterr()
    predict = ["predict", "--ckpt_path", ckpt, "--data.predict_dir", photos, "--runs_dir", runs, "--trainer.logger", "false", "--trainer.enable_progress_bar", "false"]
    run_cli(*predict)
    out = capsys.readouterr().out
    run_dir = runs / "f-predict" / "version_0"
    rows = list(csv.DictReader(open(run_dir / "predictions.csv")))
    assert [r["image"] for r in rows] == ["good.png", "gray.png", "sub/rgba.png"]
    skipped = list(csv.DictReader(open(run_dir / "skipped.csv")))
    assert [(r["image"], r["reason"].split(":")[0]) for r in skipped] == [
        ("big.png", "not 32x32"), ("corrupt.png", "unreadable image"), ("notes.txt", "not an image"), ("photo.jpg", "not 32x32"),
    ]
    assert out.count("Skipped 4 of 7 files") == 1 and out.count("  notes.txt: not an image") == 1, out
    assert f"4 skipped files (listed above) written to {run_dir / 'skipped.csv'}" in out

    run_cli(*predict, "--data.predict_resize", "true")
    rows = list(csv.DictReader(open(runs / "f-predict" / "version_1" / "predictions.csv")))
    assert [r["image"] for r in rows] == ["big.png", "good.png", "gray.png", "photo.jpg", "sub/rgba.png"]
    assert [r["image"] for r in csv.DictReader(open(runs / "f-predict" / "version_1" / "skipped.csv"))] == ["corrupt.png", "notes.txt"]
