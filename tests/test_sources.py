"""Every accepted layout loads to the same arrays; every bad input fails with a message naming the path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import datamodules.sources as sources
from datamodules.sources import CLASSES, DataError, load_cifar10
from tests.conftest import N_TEST, PER_BATCH, write_batches, write_image_folder


def test_batches_dir_loads_uint8_nchw(batches_dir: Path) -> None:
    raw = load_cifar10(batches_dir, download=False)
    assert raw.train_x.shape == (5 * PER_BATCH, 3, 32, 32) and raw.train_x.dtype == np.uint8
    assert raw.test_x is not None and raw.test_x.shape == (N_TEST, 3, 32, 32)
    assert raw.train_y.dtype == np.int64 and set(np.unique(raw.train_y)) <= set(range(10))


def test_archive_is_verified_and_extracted(fake_archive: tuple[Path, str]) -> None:
    data_dir, digest = fake_archive
    raw = load_cifar10(data_dir, download=False, archive_md5=digest)
    assert (data_dir / "cifar-10-batches-py" / "data_batch_1").is_file()
    assert raw.train_x.shape[0] == 5 * PER_BATCH


def test_archive_and_batches_give_identical_arrays(tmp_path: Path, fake_archive: tuple[Path, str]) -> None:
    data_dir, digest = fake_archive
    a = load_cifar10(data_dir, download=False, archive_md5=digest, use_cache=False)
    write_batches(tmp_path / "again")  # same seed -> same content
    b = load_cifar10(tmp_path / "again", download=False, use_cache=False)
    np.testing.assert_array_equal(a.train_x, b.train_x)
    np.testing.assert_array_equal(a.test_y, b.test_y)


def test_tampered_archive_is_refused(fake_archive: tuple[Path, str]) -> None:
    data_dir, digest = fake_archive
    archive = data_dir / "cifar-10-python.tar.gz"
    blob = bytearray(archive.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    archive.write_bytes(bytes(blob))
    with pytest.raises(DataError, match=r"Checksum mismatch for '.*cifar-10-python.tar.gz'"):
        load_cifar10(data_dir, download=False, archive_md5=digest)


def test_truncated_archive_is_refused(fake_archive: tuple[Path, str]) -> None:
    data_dir, digest = fake_archive
    archive = data_dir / "cifar-10-python.tar.gz"
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(DataError, match="truncated, corrupted"):
        load_cifar10(data_dir, download=False, archive_md5=digest)
    # Without a checksum the damage still surfaces as a clear error, not a tarfile traceback.
    with pytest.raises(DataError, match="damaged"):
        load_cifar10(data_dir, download=False, archive_md5=None)


def test_official_checksum_is_the_default(fake_archive: tuple[Path, str]) -> None:
    data_dir, _ = fake_archive
    with pytest.raises(DataError, match=sources.OFFICIAL_MD5):
        load_cifar10(data_dir, download=False)


def test_missing_data_without_download(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"No CIFAR-10 data found in '.*empty'.*download true"):
        load_cifar10(tmp_path / "empty", download=False)


def test_download_failure_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.utils as tv_utils

    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tv_utils, "download_url", offline)
    with pytest.raises(DataError, match=r"Could not download CIFAR-10 .*Without network access"):
        load_cifar10(tmp_path / "dl", download=True)


def test_download_verifies_md5(tmp_path: Path, fake_archive: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    import torchvision.datasets.utils as tv_utils

    src, digest = fake_archive

    def fake_download(url: str, root: str, filename: str, md5: object = None) -> None:
        assert url == sources.OFFICIAL_URL
        shutil.copy(src / "cifar-10-python.tar.gz", Path(root) / filename)

    monkeypatch.setattr(tv_utils, "download_url", fake_download)
    raw = load_cifar10(tmp_path / "dl_ok", download=True, archive_md5=digest)
    assert raw.train_x.shape[0] == 5 * PER_BATCH
    with pytest.raises(DataError, match="Checksum mismatch"):
        load_cifar10(tmp_path / "dl_bad", download=True)  # fake archive != official MD5
    assert not (tmp_path / "dl_bad" / "cifar-10-python.tar.gz").exists(), "a bad download must not be left behind"


def test_image_folder_png_and_jpg(tmp_path: Path) -> None:
    for suffix in (".png", ".jpg"):
        root = write_image_folder(tmp_path / suffix[1:], per_class=3, suffix=suffix)
        raw = load_cifar10(root, download=False)
        assert raw.train_x.shape == (30, 3, 32, 32) and raw.test_x is not None
        assert list(np.bincount(raw.train_y)) == [3] * 10  # class order = CLASSES order
    img = np.asarray(Image.open(tmp_path / "png" / "train" / "bird" / "0001.png"))
    raw = load_cifar10(tmp_path / "png", download=False)
    np.testing.assert_array_equal(raw.train_x[2 * 3 + 1], img.transpose(2, 0, 1))


def test_image_folder_without_test_split(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "f", per_class=2, splits=("train",))
    assert load_cifar10(root, download=False).test_x is None


@pytest.mark.parametrize("problem", ["missing", "extra"])
def test_image_folder_wrong_classes(tmp_path: Path, problem: str) -> None:
    root = write_image_folder(tmp_path / "f", per_class=1)
    if problem == "missing":
        import shutil

        shutil.rmtree(root / "train" / "cat")
        expected = r"missing: \['cat'\]"
    else:
        (root / "train" / "unicorn").mkdir()
        expected = r"unexpected: \['unicorn'\]"
    with pytest.raises(DataError, match=expected):
        load_cifar10(root, download=False)


def test_unreadable_image(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "f", per_class=1)
    (root / "train" / "dog" / "0000.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"Cannot read image '.*dog/0000.png'"):
        load_cifar10(root, download=False)


def test_wrong_image_size(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "f", per_class=1)
    Image.new("RGB", (64, 48)).save(root / "train" / "ship" / "0000.png")
    with pytest.raises(DataError, match=r"'.*ship/0000.png' is 64x48; CIFAR-10 images must be 32x32"):
        load_cifar10(root, download=False)


def test_cache_is_reused_and_invalidated(image_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_cifar10(image_folder, download=False)
    assert list(image_folder.glob(".cifar10_cache_*.npz")), "decoded arrays must be cached"

    def no_decoding(*a: object, **k: object) -> None:
        raise AssertionError("second load must come from the cache")

    monkeypatch.setattr(sources, "_decode_split", no_decoding)
    monkeypatch.setattr(sources, "read_cache", lambda p: pytest.fail("prepare_only must not read the cache"))
    assert load_cifar10(image_folder, download=False, prepare_only=True) is None
    monkeypatch.undo()
    monkeypatch.setattr(sources, "_decode_split", no_decoding)
    second = load_cifar10(image_folder, download=False)
    np.testing.assert_array_equal(first.train_x, second.train_x)
    # Changing the folder changes the fingerprint: the stale cache is not used.
    Image.new("RGB", (32, 32), "red").save(image_folder / "train" / "cat" / "9999.png")
    with pytest.raises(AssertionError, match="cache"):
        load_cifar10(image_folder, download=False)


def test_batches_refuse_code_in_pickles(batches_dir: Path, tmp_path: Path) -> None:
    import pickle

    class Evil:
        def __reduce__(self):  # noqa: ANN204
            return (Path.touch, (tmp_path / "pwned",))

    with open(batches_dir / "cifar-10-batches-py" / "data_batch_3", "wb") as fh:
        pickle.dump({b"data": Evil(), b"labels": []}, fh)
    with pytest.raises(DataError, match="data_batch_3"):
        load_cifar10(batches_dir, download=False, use_cache=False)
    assert not (tmp_path / "pwned").exists()


def test_classes_are_cifar_order() -> None:
    assert CLASSES[0] == "airplane" and CLASSES[-1] == "truck" and len(CLASSES) == 10
