"""``status.json`` kept current while a run trains: a run's one-record summary (status, step, wall time, segments), read by people and studies.

The command-line layer writes it when a training segment starts and when it ends (``cli/run_dirs.py``);
``LastCheckpoint`` brings it up to date at every ``last.ckpt`` it saves (:func:`record_progress`), so that
while a run trains its record says how far it got, not the step it started from. It lives here, below
both, because callbacks never import the command-line layer; the file itself is ``core/run_layout.py``'s.

While a segment runs, ``wall_s`` is the run's wall time up to the newest ``last.ckpt`` and
``wall_s_before_segment`` the part of it that earlier segments took; once the segment ends, ``wall_s`` is
the total again and the second field is gone.
"""

from __future__ import annotations

import time
from pathlib import Path

from core.run_layout import read_status, write_status_record


def earlier_segments_wall_s(record: dict) -> float:
    """Wall time of the segments before the running one (a running record's ``wall_s`` includes its own)."""
    return float(record.get("wall_s_before_segment", record.get("wall_s", 0.0)))


def record_progress(run_dir: Path, global_step: int) -> None:
    """A running segment's step and wall time so far; a no-op when the run has no running record (a Trainer
    used outside ``train.py``, or a run directory that is not this segment's)."""
    record = read_status(run_dir)
    if record.get("status") != "running" or "segment_started" not in record:
        return
    before = earlier_segments_wall_s(record)
    record.update(global_step=int(global_step), wall_s=round(before + max(0.0, time.time() - float(record["segment_started"])), 1),
                  wall_s_before_segment=before)
    write_status_record(run_dir, record)
