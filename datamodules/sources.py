"""Turn whatever CIFAR-10 lives in ``data_dir`` into uint8 arrays, once.

Three layouts are accepted, checked in this order:

1. ``cifar-10-batches-py/`` (the official archive, extracted),
2. ``cifar-10-python.tar.gz`` (verified by MD5, then extracted next to itself; read in place if the
   folder is read-only),
3. an image folder ``train/<class>/*.{png,jpg,jpeg}`` with an optional ``test/<class>/*``, or ``test/``
   alone (evaluating a checkpoint needs no training images: it carries their statistics).

If none is present and downloading is allowed, the official archive is fetched through torchvision
and verified. Decoded arrays are cached as an ``.npz`` keyed by a fingerprint of the source
(``datamodules.cache``), so a second run starts in about a second instead of decoding 60,000 images again.

Every failure raises :class:`DataError` with one paragraph that names the path and what was expected,
because a bare traceback from deep inside pickle or PIL tells a researcher nothing.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from datamodules.cache import CacheWriter, Notify, cache_path, read_cache

CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
ARCHIVE_NAME = "cifar-10-python.tar.gz"
BATCHES_DIR = "cifar-10-batches-py"
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
BATCH_NAMES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
CACHE_VERSION = 2  # 2: test-image names (file paths / official indices) for prediction files


class DataError(RuntimeError):
    """Raised for any data problem a user can fix; the message says what and where."""


@dataclass
class RawCIFAR10:
    """Decoded images as uint8 NCHW arrays; ``test_x`` is None when the source has no test split.

    ``test_names`` say which image each test row is: its path relative to the data folder, or
    ``test_batch[i]`` (i = its index in the official test set) for the official release.
    ``class_folders``: the training rows were read class by class (an image folder), so their order is no
    file order across classes (``--data.split ordered`` interleaves the classes instead).
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray | None
    test_y: np.ndarray | None
    source: str
    test_names: list[str] | None = None
    class_folders: bool = False


@dataclass(frozen=True)
class Location:
    """What ``data_dir`` holds (``batches``, ``archive`` or ``folder``) and its fingerprint (the cache's name)."""

    root: Path
    kind: str
    fingerprint: str


def locate(data_dir: str | os.PathLike, download: bool = True, archive_md5: str | None = OFFICIAL_MD5) -> Location:
    """Find the source in ``data_dir``, extracting or downloading the official archive when needed.

    An image folder's fingerprint stats every file (50,000 for CIFAR-10), so a caller that loads twice
    (``prepare_data``, then ``setup``) passes the first call's location to the second.
    """
    root = Path(data_dir).expanduser()
    return Location(root, *_detect_source(root, download, archive_md5))


def load_cifar10(
    data_dir: str | os.PathLike,
    download: bool = True,
    archive_md5: str | None = OFFICIAL_MD5,
    use_cache: bool = True,
    prepare_only: bool = False,
    cache_dir: str | os.PathLike | None = None,
    notify: Notify = print,
    location: Location | None = None,
) -> RawCIFAR10 | None:
    """Load CIFAR-10 from ``data_dir`` (see module docstring for the accepted layouts).

    ``prepare_only``: download/extract/decode and cache as needed, but skip reading an existing cache
    (``prepare_data`` on one process; each process's ``setup`` then reads it once). Returns None then.
    ``cache_dir``: where the decoded-image cache lives (None: in ``data_dir``); ``use_cache`` False: none.
    ``notify`` gets the one-line notes (cache written, cache impossible); the DataModule prints them on rank 0.
    ``location``: :func:`locate`'s answer for this ``data_dir``, found earlier in this process.
    """
    if location is None:
        location = locate(data_dir, download, archive_md5)
    root, kind, fingerprint = location.root, location.kind, location.fingerprint
    cache = cache_path(root, fingerprint, cache_dir) if use_cache else None
    if cache is not None and cache.is_file():
        if prepare_only:
            return None
        if (cached := read_cache(cache)) is not None:
            return RawCIFAR10(**cached, source=source_name(root, kind), class_folders=kind == "folder")
    # Opened before decoding: an unwritable place is known at once. prepare_only stays quiet about it, since
    # it then has nothing to prepare and the setup that decodes says it.
    writer = CacheWriter.open(cache, (lambda _: None) if prepare_only else notify) if cache is not None else None
    if prepare_only and writer is None:
        return None
    try:
        raw = _decode(root, kind)
    except BaseException:
        if writer is not None:
            writer.discard()
        raise
    if writer is not None:
        writer.commit(raw, notify)
    return None if prepare_only else raw


def _decode(root: Path, kind: str) -> RawCIFAR10:
    if kind == "batches":
        return _read_batches(root / BATCHES_DIR)
    if kind == "archive":
        return _read_archive(root / ARCHIVE_NAME)
    return _read_image_folder(root)


def source_name(root: Path, kind: str) -> str:
    return str({"batches": root / BATCHES_DIR, "archive": root / ARCHIVE_NAME}.get(kind, root))


# --------------------------------------------------------------------------- source detection


def _detect_source(root: Path, download: bool, archive_md5: str | None) -> tuple[str, str]:
    """Return (kind, fingerprint); extracts or downloads the official archive when needed."""
    batches = root / BATCHES_DIR
    if batches.is_dir():
        return "batches", _fingerprint_files(sorted(p for p in batches.iterdir() if p.is_file()), root)
    archive = root / ARCHIVE_NAME
    if archive.is_file():
        _verify_md5(archive, archive_md5)
        if not _extract(archive, root):
            return "archive", _fingerprint_files([archive], root)
        return _detect_source(root, download=False, archive_md5=archive_md5)
    # An image folder: train/ (+ test/), or test/ alone, which serves `test` and `predict` from a checkpoint.
    if (root / "train").is_dir() or (root / "test").is_dir():
        files = _image_folder_files(root)
        return "folder", _fingerprint_files(files, root)
    if not download:
        raise DataError(
            f"No CIFAR-10 data found in '{root}'. Expected one of: '{root / BATCHES_DIR}/' (the official "
            f"batches), '{archive}' (the official archive), or an image folder '{root / 'train'}/<class>/*.png|jpg' "
            "(+ optional test/<class>/, or test/ alone for test and predict) with the ten CIFAR-10 class folders. Put "
            "the data there, or pass --data.download true to fetch the official archive."
        )
    _download(root, archive_md5)
    return _detect_source(root, download=False, archive_md5=archive_md5)


def _download(root: Path, archive_md5: str | None) -> None:
    from torchvision.datasets.utils import download_url

    root.mkdir(parents=True, exist_ok=True)
    try:
        download_url(OFFICIAL_URL, str(root), filename=ARCHIVE_NAME, md5=None)
    except Exception as exc:  # URLError, socket timeouts, SSL errors: all mean "no data"
        (root / ARCHIVE_NAME).unlink(missing_ok=True)
        raise DataError(
            f"Could not download CIFAR-10 from {OFFICIAL_URL} into '{root}' ({type(exc).__name__}: {exc}). "
            f"Without network access, copy '{ARCHIVE_NAME}' (or an image folder train/<class>/*.png) into "
            f"'{root}' and run again with --data.download false."
        ) from exc
    try:
        _verify_md5(root / ARCHIVE_NAME, archive_md5)
    except DataError:
        (root / ARCHIVE_NAME).unlink(missing_ok=True)
        raise


def _verify_md5(path: Path, expected: str | None) -> None:
    if expected is None:
        return
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected.lower():
        raise DataError(
            f"Checksum mismatch for '{path}': MD5 is {digest.hexdigest()}, expected {expected}. The archive is "
            "truncated, corrupted or not the official CIFAR-10 release. Delete it and download it again "
            "(or pass --data.archive_md5 null only if you deliberately use a modified archive)."
        )


def _extract(archive: Path, root: Path) -> bool:
    """Extract next to the archive; False if the folder is read-only (the archive is then read in place)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(root, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        read_only = isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
        if read_only and not (root / BATCHES_DIR).exists():
            return False
        raise DataError(f"Could not extract '{archive}' ({exc}); the archive is damaged. Delete it and fetch it again.") from exc
    if not (root / BATCHES_DIR).is_dir():
        raise DataError(f"'{archive}' does not contain '{BATCHES_DIR}/'; it is not the CIFAR-10 python archive.")
    return True


def _fingerprint_files(files: list[str] | list[Path], root: Path) -> str:
    """Cheap identity of a source: names, sizes and mtimes (not contents), plus the cache format version."""
    h = hashlib.sha1(f"v{CACHE_VERSION}".encode())
    prefix = len(str(root)) + 1
    for p in files:
        st = os.stat(p)
        h.update(f"{str(p)[prefix:]}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- official batches


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """The official batches are pickles; refuse anything but the numpy types they contain."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle API
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"Missing '{path}'. '{path.parent}' must hold data_batch_1..5 and test_batch.")
    with open(path, "rb") as fh:
        return _parse_batch(fh, str(path))


def _parse_batch(fh: IO[bytes], where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = _NumpyOnlyUnpickler(fh, encoding="bytes").load()
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = np.asarray(d[b"labels"], dtype=np.int64)
    except Exception as exc:
        raise DataError(f"'{where}' is not a readable CIFAR-10 batch ({type(exc).__name__}: {exc}).") from exc
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DataError(f"'{where}' has data of shape {data.shape} and {len(labels)} labels; expected (N, 3072) and N.")
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= len(CLASSES):
        raise DataError(f"'{where}' has labels outside 0..9.")
    return data.reshape(-1, 3, 32, 32), labels


def _batches_raw(parts: dict[str, tuple[np.ndarray, np.ndarray]], source: str) -> RawCIFAR10:
    train = [parts[f"data_batch_{i}"] for i in range(1, 6)]
    test_x, test_y = parts["test_batch"]
    return RawCIFAR10(
        train_x=np.concatenate([p[0] for p in train]),
        train_y=np.concatenate([p[1] for p in train]),
        test_x=test_x,
        test_y=test_y,
        source=source,
        test_names=[f"test_batch[{i}]" for i in range(len(test_y))],
    )


def _read_batches(folder: Path) -> RawCIFAR10:
    return _batches_raw({name: _read_batch(folder / name) for name in BATCH_NAMES}, str(folder))


def _read_archive(archive: Path) -> RawCIFAR10:
    """The batches straight from the archive, in one pass over the stream: a read-only data folder cannot
    hold them extracted."""
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and member.name == f"{BATCHES_DIR}/{name}" and name in BATCH_NAMES:
                    parts[name] = _parse_batch(tar.extractfile(member), f"{archive}:{member.name}")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"Could not read '{archive}' ({exc}); the archive is damaged. Delete it and fetch it again.") from exc
    if missing := [n for n in BATCH_NAMES if n not in parts]:
        raise DataError(f"'{archive}' lacks {BATCHES_DIR}/{missing[0]}; it is not the CIFAR-10 python archive.")
    return _batches_raw(parts, str(archive))


# --------------------------------------------------------------------------- image folder


def _image_folder_files(root: Path) -> list[str]:
    files: list[str] = []
    for split in ("train", "test"):
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        present = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
        missing = [c for c in CLASSES if c not in present]
        extra = [c for c in present if c not in CLASSES]
        if missing or extra:
            raise DataError(
                f"Image folder '{split_dir}' must have exactly the ten CIFAR-10 class folders {list(CLASSES)}; "
                f"missing: {missing or 'none'}, unexpected: {extra or 'none'}."
            )
        files.extend(p for p, _ in _class_files(split_dir))
    return files


def _class_files(split_dir: Path) -> list[tuple[str, int]]:
    """(path, label) of every image in ``split_dir/<class>/``, class by class, sorted within each class."""
    paths: list[tuple[str, int]] = []
    for y, c in enumerate(CLASSES):
        # Strings via scandir: sorting 50,000 Path objects alone took seconds.
        with os.scandir(split_dir / c) as entries:
            imgs = sorted(e.path for e in entries if e.name.lower().endswith(IMAGE_SUFFIXES))
        if not imgs:
            raise DataError(f"Class folder '{split_dir / c}' holds no .png/.jpg images.")
        paths += [(p, y) for p in imgs]
    return paths


def read_images(paths: list[str], desc: str) -> np.ndarray:
    """Decode 32x32 RGB image files into one uint8 NCHW array; any unreadable or wrong-size file is named."""
    from PIL import Image, UnidentifiedImageError
    from tqdm.auto import tqdm

    out = np.empty((len(paths), 32, 32, 3), dtype=np.uint8)
    for i, path in enumerate(tqdm(paths, desc=desc, unit="img", mininterval=1.0, disable=len(paths) < 2000)):
        try:
            with Image.open(path) as im:
                if im.size != (32, 32):
                    raise DataError(f"Image '{path}' is {im.size[0]}x{im.size[1]}; CIFAR-10 images must be 32x32.")
                out[i] = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise DataError(f"Cannot read image '{path}' ({type(exc).__name__}: {exc}); delete or replace it.") from exc
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def _decode_split(split_dir: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    files = _class_files(split_dir)
    images = read_images([p for p, _ in files], desc=f"decoding {split_dir}")
    labels = np.array([y for _, y in files], dtype=np.int64)
    root = split_dir.parent
    return images, labels, [os.path.relpath(p, root) for p, _ in files]


def _read_image_folder(root: Path) -> RawCIFAR10:
    """train/ and test/ as found; a missing train/ gives an empty training split (the DataModule says which
    commands need one)."""
    train_x, train_y = np.zeros((0, 3, 32, 32), np.uint8), np.zeros(0, np.int64)
    if (root / "train").is_dir():
        train_x, train_y, _ = _decode_split(root / "train")
    test_x = test_y = names = None
    if (root / "test").is_dir():
        test_x, test_y, names = _decode_split(root / "test")
    return RawCIFAR10(train_x, train_y, test_x, test_y, source=str(root), test_names=names, class_folders=True)
