"""The decoded-image cache: one ``.npz`` per data source, so a second run skips decoding 60,000 images.

Where it lives is the user's choice (``--data.cache_dir``): by default beside the data (found again by
every later run and every study subprocess without configuration, and deleted with the data), or in a
folder of its own (a data folder on a read-only or slow share). The file name carries the source's
fingerprint (names, sizes, mtimes), so copies of the same data extracted alike share one cache.

A cache that cannot be written costs speed, never the run: the writer is opened *before* decoding, so an
unwritable place is known at once, noted in one line, and the images are decoded without a cache.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from datamodules.sources import RawCIFAR10

Notify = Callable[[str], None]


def cache_path(root: Path, fingerprint: str, cache_dir: str | os.PathLike | None) -> Path:
    """Beside the data (hidden, as before: a listing of the data folder shows the data), or in ``cache_dir``."""
    if cache_dir is None:
        return root / f".cifar10_cache_{fingerprint}.npz"
    return Path(cache_dir).expanduser() / f"cifar10_cache_{fingerprint}.npz"


def read_cache(path: Path) -> dict[str, Any] | None:
    """``RawCIFAR10``'s fields but ``source`` (a cache shared by two copies of the same data belongs to both), or
    None, and the file removed, for a half-written or foreign cache: never trusted."""
    try:
        with np.load(path, allow_pickle=False) as z:
            has_test = bool(z["has_test"])
            return {
                "train_x": z["train_x"],
                "train_y": z["train_y"],
                "test_x": z["test_x"] if has_test else None,
                "test_y": z["test_y"] if has_test else None,
                "test_names": z["test_names"].tolist() if has_test else None,
            }
    except Exception:
        path.unlink(missing_ok=True)
        return None


class CacheWriter:
    """A temporary file opened next to the cache; :meth:`commit` fills it and renames it into place (atomic)."""

    def __init__(self, path: Path, tmp: Path, fh: IO[bytes]):
        self.path, self._tmp, self._fh = path, tmp, fh

    @classmethod
    def open(cls, path: Path, notify: Notify) -> CacheWriter | None:
        """None, with a one-line note, where the cache cannot be written (read-only folder, no permission)."""
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return cls(path, tmp, open(tmp, "wb"))
        except OSError as exc:
            notify(
                f"Note: no decoded-image cache: cannot write '{path.parent}' ({exc.strerror or exc}); every run decodes the "
                "images again. --data.cache_dir DIR keeps the cache in a writable folder."
            )
            return None

    def commit(self, raw: RawCIFAR10, notify: Notify) -> None:
        empty_x, empty_y = np.zeros((0, 3, 32, 32), np.uint8), np.zeros(0, np.int64)
        try:
            with self._fh:  # straight to disk: no second in-memory copy of the arrays
                np.savez(
                    self._fh,
                    train_x=raw.train_x,
                    train_y=raw.train_y,
                    test_x=raw.test_x if raw.test_x is not None else empty_x,
                    test_y=raw.test_y if raw.test_y is not None else empty_y,
                    has_test=np.array(raw.test_x is not None),
                    source=np.array(raw.source),
                    test_names=np.array(raw.test_names or [], dtype=str),
                )
            os.replace(self._tmp, self.path)
        except OSError as exc:  # disk full, quota: the run goes on without a cache
            self._tmp.unlink(missing_ok=True)
            notify(f"Note: the decoded-image cache was not written to '{self.path}' ({exc.strerror or exc}); every run decodes the images again.")
            return
        size_mb = self.path.stat().st_size / 1e6
        notify(f"Decoded images cached in '{self.path}' ({size_mb:,.1f} MB; --data.cache_dir DIR puts it elsewhere, false turns it off).")

    def discard(self) -> None:
        """Decoding failed: leave no temporary file behind."""
        self._fh.close()
        self._tmp.unlink(missing_ok=True)
