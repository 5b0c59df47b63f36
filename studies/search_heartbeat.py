"""Whether a search trial's worker is still there, on this machine or another one: the trial's heartbeat.

Optuna's own mechanism does not cover this search. In Optuna 5.0 only ``RDBStorage`` has heartbeats
(``heartbeat_interval``, ``grace_period``, ``RetryHeartbeatStaleTrialCallback``); ``JournalStorage``, the
default storage here, is not a heartbeat storage at all. And even on ``RDBStorage`` the heartbeat thread and
the stale-trial check run only inside ``Study.optimize`` (``Study.ask`` warns that a heartbeat storage is
meant for ``optimize``), while this search is ask/tell: a trial is a cell that the study runner runs for
every seed, interruptibly, and gives back with its values. So the search keeps its own heartbeat, the same
on every storage and through Optuna's public API only: while a trial's cell runs, a thread writes the time
into the trial's user attribute ``heartbeat`` every ``HEARTBEAT_S`` seconds, and a ``RUNNING`` trial whose
latest heartbeat (or its start, before the first one) is older than ``GRACE_S`` belongs to a worker that is gone, wherever it ran.
On this host a dead owner's pid tells at once. The grace period is ten missed heartbeats, so a slow network
file system does not make a live worker look dead, and it is far above the clock skew of NTP-synced nodes
(each heartbeat is its writer's clock, compared with the reader's).

The thread makes the study process multi-threaded while it forks its ``train.py`` children; that is safe
because the children's ``preexec_fn`` only calls ``prctl`` and ``getppid``, no lock the thread could hold.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from types import TracebackType
from typing import Any

WORKER, HEARTBEAT = "worker", "heartbeat"
HEARTBEAT_S, GRACE_S = 30.0, 300.0


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_gone(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def is_gone(trial: Any, now: float) -> bool:
    """``trial`` (a RUNNING ``FrozenTrial``) has no worker any more: its pid is dead on this host, or it has
    not beaten for ``GRACE_S`` seconds (a worker on another machine, killed or lost with it)."""
    host, _, pid = str(trial.user_attrs.get(WORKER, "")).rpartition(":")
    if host == socket.gethostname() and _pid_gone(pid):
        return True
    if HEARTBEAT in trial.user_attrs:
        return now - float(trial.user_attrs[HEARTBEAT]) > GRACE_S
    return trial.datetime_start is not None and now - trial.datetime_start.timestamp() > GRACE_S  # its worker stopped before the first beat


class Heartbeat:
    """``with Heartbeat(trial):`` marks ``trial`` as this worker's and keeps it beating until the block ends."""

    def __init__(self, trial: Any, interval: float = HEARTBEAT_S) -> None:
        self.trial, self.interval = trial, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-trial-{trial.number}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self.trial.set_user_attr(WORKER, worker_id())
        self.trial.set_user_attr(HEARTBEAT, time.time())
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        from optuna.exceptions import UpdateFinishedTrialError

        while not self._stop.wait(self.interval):
            try:
                self.trial.set_user_attr(HEARTBEAT, time.time())
            except UpdateFinishedTrialError:
                return  # another worker took this trial for dead and gave it back; the tell says so
            except Exception:  # noqa: BLE001, S112 - a storage hiccup: the next beat tries again, GRACE_S allows ten
                continue
