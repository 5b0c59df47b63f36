"""The study directory: one study per directory, its spec kept, a different study refused.

``DIR/study.yaml`` is the study file as last run and ``DIR/study.json`` records what identifies the study
(the base config's content hash, fixed flags, command-line flags, metric, seed flags, test, search space)
plus its cells, each with the flags it sets, and its seeds. Re-running the same study resumes it; a file
that only adds cells, seeds or trials extends it (the previous file is kept as ``study.<k>.yaml``);
anything else is refused, because its runs could not be compared with the ones already there. A cell is
what it runs: a cell whose flags changed under the same name is refused too, or its old runs would be
reported under its new values. Flags are compared as parsed values (``--a=1 --b 2`` is ``--b 2 --a 1``,
``1e-3`` is ``0.001``), never as text. The summary files are derived from the runs and regenerated on
every run of the study.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from studies.flags import canonical_argv, canonical_flags
from studies.spec import Cell, StudySpec

STUDY_FILE, RECORD_FILE, LOCK_FILE, CLAIM_LOCK_FILE = "study.yaml", "study.json", ".study.lock", ".claim.lock"


class StudyDirError(RuntimeError):
    """DIR holds another study, or another study process is working in it."""


def lock_study_dir(out: Path, shared: bool) -> int:
    """Grid studies take DIR exclusively; searches share it (several processes may work on one search)."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode().strip() or "another process"
        os.close(fd)
        raise StudyDirError(f"{out} is in use by study process {holder}; wait for it to finish or stop it first") from None
    if not shared:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    return fd  # kept open for the life of the process; the OS releases the lock when it dies


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    labels = {"extra_args": "the command-line flags", "flags": "the fixed flags"}
    found = []
    for key in new:
        if old.get(key) != new.get(key):
            found.append("the base config file's content" if key == "config_sha256" else f"{labels.get(key, key)}: {old.get(key)!r} -> {new.get(key)!r}")
    return found


def _comparable(identity: dict[str, Any]) -> dict[str, Any]:
    """A record written before flags were compared parsed (``extra_args`` and ``flags`` as given) reads as now."""
    old = dict(identity)
    if isinstance(old.get("extra_args"), list):
        old["extra_args"] = canonical_argv(old["extra_args"])
    old["flags"] = canonical_flags(old.get("flags") or {})
    return old


def _changed_cells(recorded: dict[str, Any], cells: list[Cell]) -> list[str]:
    """``cell 'x' now sets k: old -> new`` for every recorded cell whose flags differ from the file's."""
    changes = []
    for cell in cells:
        old = recorded.get(cell.name)
        if old is None:  # a new cell, or a study.json from before cells carried their flags (nothing to compare)
            continue
        new = canonical_flags(cell.flags)
        diffs = [f"{k}: {_shown(old, k)} -> {_shown(new, k)}" for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]
        if diffs:
            changes.append(f"cell '{cell.name}' now sets {', '.join(diffs)}")
    return changes


def _shown(flags: dict[str, Any], key: str) -> str:
    return repr(flags[key]) if key in flags else "(unset)"


def claim(out: Path, spec: StudySpec, extra_args: list[str], cells: list[Cell]) -> None:
    """Record the study in ``out``, or refuse if ``out`` holds a study this one is not an extension of.

    One process at a time: the workers of a search start together and would otherwise read each other's
    half-written ``study.yaml`` and replace each other's ``study.json``."""
    fd = os.open(out / CLAIM_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _claim(out, spec, extra_args, cells)
    finally:
        os.close(fd)


def _claim(out: Path, spec: StudySpec, extra_args: list[str], cells: list[Cell]) -> None:
    identity = spec.identity(extra_args)
    record_path = out / RECORD_FILE
    record: dict[str, Any] = {"identity": identity, "config": str(spec.config), "cells": {}, "seeds": [], "trials": 0, "commands": []}
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        if isinstance(record["cells"], list):  # written before cells carried their flags
            record["cells"] = {name: None for name in record["cells"]}
        if diff := _differences(_comparable(record["identity"]), identity):
            raise StudyDirError(
                f"{out} holds a different study (it differs in {'; '.join(diff)}). Its runs would not be comparable: "
                f"give this study its own --out, or restore the study file in {out / STUDY_FILE}"
            )
        if changed := _changed_cells(record["cells"], cells):
            raise StudyDirError(
                f"{'; '.join(changed)}; its runs in {out} ran the old values and would be reported under the new ones. "
                "Give the new values a new cell name (it runs as a new cell), restore the old ones, or use a new --out"
            )
        names = [c.name for c in cells]
        missing_cells = [c for c in record["cells"] if c not in names]
        missing_seeds = [s for s in record["seeds"] if s not in spec.seeds]
        if missing_cells or missing_seeds or (spec.search and spec.search.trials < record.get("trials", 0)):
            what = f"cells {', '.join(missing_cells)}" if missing_cells else f"seeds {missing_seeds}" if missing_seeds else "search trials"
            raise StudyDirError(f"the study file drops {what} that {out} already ran; a study may only add cells, seeds or trials. Use a new --out for a smaller study")
    old_text = (out / STUDY_FILE).read_text() if (out / STUDY_FILE).is_file() else None
    if old_text is not None and old_text != spec.text:
        k = 1 + sum(1 for _ in out.glob("study.*.yaml"))
        (out / f"study.{k}.yaml").write_text(old_text)
    (out / STUDY_FILE).write_text(spec.text)
    record["cells"] = {**record["cells"], **{c.name: canonical_flags(c.flags) for c in cells}}
    record["seeds"] = record["seeds"] + [s for s in spec.seeds if s not in record["seeds"]]
    record["trials"] = spec.search.trials if spec.search else 0
    record["commands"].append({"argv": sys.argv, "cwd": os.getcwd(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
    tmp = record_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, record_path)
