"""Where a search keeps its trials: Optuna's journal file in the study directory, or a database server.

By default ``DIR/optuna.journal``, Optuna's ``JournalStorage`` with its file backend. A cluster's study
directory sits on a network file system, and Optuna advises against SQLite there (SQLite's locking relies
on ``fcntl``, which many NFS implementations break). The journal is an append-only log of operations that
every worker replays; its appends are serialised by ``JournalFileSymlinkLock``, chosen over
``JournalFileOpenLock`` because creating a symbolic link is atomic on every NFS version (NFSv2 on), while
``open(O_CREAT | O_EXCL)`` is only from NFSv3 on (kernel 2.6+); the lock is released by renaming it away
before unlinking, and one left behind by a killed worker is broken after its 30 s grace period. Each append
is fsynced, so a reader on another machine never replays half a line.

``--storage URL`` puts the trials in a database server instead (``postgresql://...``, ``mysql://...``;
``sqlite:///...`` for whoever insists), through Optuna's ``RDBStorage``; workers that open a new database at
once collide creating its tables, so the open is tried again (the later ones find the tables made). A study directory from before the
journal that has ``optuna.db`` keeps using it (one line says so), so no search already under way is lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from studies.store import StudyDirError

JOURNAL_FILE, SQLITE_FILE = "optuna.journal", "optuna.db"
CREATE_ATTEMPTS = 3


class SearchStorageError(StudyDirError):
    """The search's storage (``--storage URL`` or the journal in DIR) cannot be opened."""


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise SystemExit("error: search mode needs Optuna: pip install -e '.[study]' (or '.[dev]')") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def open_storage(out: Path, url: str | None, echo: Callable[[str], None] = print) -> Any:
    """The storage for ``create_study``: ``--storage URL`` if given, else DIR's ``optuna.db`` from before, else the journal."""
    optuna = import_optuna()
    if url is not None:
        return _database(optuna, url)
    if (out / SQLITE_FILE).is_file():
        echo(f"Search: {out / SQLITE_FILE} is this search's storage from before (SQLite: keep to one machine; a new study directory gets {JOURNAL_FILE})")
        return f"sqlite:///{(out / SQLITE_FILE).resolve()}"
    path = out / JOURNAL_FILE
    try:
        return journal(path)
    except OSError as exc:
        raise SearchStorageError(f"{path}: cannot open the search's journal there ({exc.strerror or exc})") from None
    except ValueError as exc:  # a line that is not JSON: the file was edited or is not a journal
        raise SearchStorageError(f"{path}: not a readable Optuna journal ({exc}); move it away to start the search afresh") from None


def journal(path: Path) -> Any:
    """Optuna's journal storage in the file ``path``, appends locked by a symbolic link (safe on NFS)."""
    journal_api = import_optuna().storages.journal
    return import_optuna().storages.JournalStorage(journal_api.JournalFileBackend(str(path), lock_obj=journal_api.JournalFileSymlinkLock(str(path))))


def _database(optuna: Any, url: str) -> Any:
    import sqlalchemy

    try:
        shown = sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - sqlalchemy's ArgumentError / ValueError: not a URL at all
        raise SearchStorageError(f"--storage {url!r}: not a database URL (postgresql://user@host/db, mysql://..., or sqlite:///path)") from None
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            return optuna.storages.RDBStorage(url)
        except sqlalchemy.exc.SQLAlchemyError as exc:  # workers creating the tables at once collide; the later find them made
            error = exc
            time.sleep(attempt)
        except Exception as exc:  # noqa: BLE001 - a missing driver, an unknown dialect
            error = exc
            break
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    raise SearchStorageError(f"--storage {shown}: cannot open the database ({type(error).__name__}: {first})")
