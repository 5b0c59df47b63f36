"""Images decoded once by a process that forks runs (a study), found again by every run it forks.

Why: a forked run would otherwise fingerprint the source (a ``stat`` of each of 50,000 image files), read the
150 MB cache and check it, ~0.3-0.5 s of each run of a study on a 2-core CPU, the same work every time. A fork
inherits the study process's memory (copy-on-write: shared until written), so what the study read before
forking is already in each run.

What stays as it was: a run started any other way (``python train.py``, a subprocess, a SLURM job) finds
nothing here and reads its data itself; a forked run whose data settings differ from the shared ones (another
``--data.data_dir`` or ``--data.cache_dir``) does too. The price: the runs a study forks see the data as it was
when that launch of the study read it, one fingerprint for the launch, not one per run; a re-run of the study
reads it again.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace
from collections.abc import Iterator
from pathlib import Path

from datamodules.sources import OFFICIAL_MD5, DataError, Location, RawCIFAR10, load_cifar10, locate, source_name

CacheSetting = bool | str | None
Key = tuple[str, CacheSetting, str | None]
_SHARED: dict[Key, tuple[Location, RawCIFAR10]] = {}


def _key(data_dir: str | os.PathLike, cache_dir: CacheSetting, archive_md5: str | None) -> Key:
    """Paths resolved (a relative one against the working directory: the repository, in a study's runs)."""
    cache = str(Path(cache_dir).expanduser().resolve()) if isinstance(cache_dir, str) else cache_dir
    return str(Path(data_dir).expanduser().resolve()), cache, archive_md5


def shared(data_dir: str | os.PathLike, cache_dir: CacheSetting, archive_md5: str | None = OFFICIAL_MD5) -> tuple[Location, RawCIFAR10] | None:
    """The data this process was given to share for these settings (a forked run's), or None; named as the
    caller spells ``data_dir``, so the run says where its data is as it would have alone."""
    found = _SHARED.get(_key(data_dir, cache_dir, archive_md5)) if _SHARED else None
    if found is None:
        return None
    location, raw = found
    root = Path(data_dir).expanduser()
    return replace(location, root=root), replace(raw, source=source_name(root, location.kind))


@contextlib.contextmanager
def shared_with_forked_runs(data_dir: str | os.PathLike | None, cache_dir: CacheSetting = True, archive_md5: str | None = OFFICIAL_MD5) -> Iterator[bool]:
    """Read ``data_dir``'s images now, for the runs forked inside the block; yields whether it did.

    The settings are the runs' ``--data.*`` ones. Only a source already on disk is read, never downloaded, and
    only with the cache kept: decoded the first time, the images are cached here once instead of by each of
    the first runs at once. Anything else, or any error, is left to the runs, which report it themselves.
    """
    key = _key(data_dir, cache_dir, archive_md5) if data_dir is not None else None
    loaded = False
    if key is not None and cache_dir not in (False, None) and key not in _SHARED:
        try:
            location = locate(data_dir, download=False, archive_md5=archive_md5)
            raw = load_cifar10(data_dir, download=False, archive_md5=archive_md5, cache_dir=cache_dir if isinstance(cache_dir, str) else None, location=location)
            if raw is not None:
                _SHARED[key] = (location, raw)
                loaded = True
        except (DataError, OSError, ValueError):
            loaded = False
    try:
        yield loaded
    finally:
        if loaded:
            _SHARED.pop(key, None)
