"""Which test evaluation belongs to which training run: a result is credited to the run it evaluated, no other.

``train.py test --ckpt_path R/checkpoints/X.ckpt`` writes a run directory ``<runs_dir>/<name>-test/version_j``
whose ``config.yaml`` records the checkpoint it evaluated (``ckpt_path``, resolved). A study's lands in
``DIR/<cell>/seed<k>/eval-test/``, beside the seed's fit versions; a single run's in ``runs/<name>-test/``,
beside ``runs/<name>/``. The folder alone says nothing: one seed folder can hold a stale ``version_0`` next
to the ``version_1`` that trained, and ``eval-test/version_0`` may well have evaluated ``version_1``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import yaml

from core.run_layout import CHECKPOINT_DIR, run_name, versions
from studies.results import TEST_RUN_NAME, fit_run_dir, read_curve



def _eval_dirs(run_dir: Path) -> list[Path]:
    """Evaluation run directories where train.py puts them for this run: its own folder's ``*-test/`` (a study's
    seed folder) and its name folder's siblings (``runs/<name>-test/``)."""
    found = []
    for base in dict.fromkeys((run_dir.parent, run_dir.parent.parent)):
        found += [p for evals in base.glob(run_name("*", "test")) for p in versions(evals) if (p / "per_class_accuracy.json").is_file()]
    return found


def _test_entry(eval_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((eval_dir / "per_class_accuracy.json").read_text()).get("test")
    except (OSError, ValueError):
        return None


def _recorded(eval_dir: Path) -> tuple[str | None, str | None]:
    """(the checkpoint the evaluation recorded, its runs_dir); (None, None) for an unreadable config."""
    try:
        config = yaml.safe_load((eval_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None, None
    return config.get("ckpt_path"), config.get("runs_dir")


def _evaluated(eval_dir: Path, run_dir: Path, ckpt: str | None, runs_dir: str | None) -> bool | None:
    """Whether the evaluation (which recorded ``ckpt`` and ``runs_dir``) tested one of ``run_dir``'s checkpoints;
    None if it recorded no checkpoint."""
    if not ckpt:
        return None
    ckpt_path, own = Path(ckpt), (run_dir / CHECKPOINT_DIR).resolve()
    if ckpt_path.exists():
        return ckpt_path.resolve().parent == own
    # The tree was moved since (copied off a cluster, say): the checkpoint relative to the evaluation's runs_dir.
    if runs_dir and os.path.isabs(runs_dir) and ckpt_path.is_relative_to(runs_dir):
        return (eval_dir.parent.parent / ckpt_path.relative_to(runs_dir)).resolve().parent == own
    return False


def _legacy_match(eval_dir: Path, run_dir: Path, test: dict[str, Any]) -> bool:
    """An evaluation from before config.yaml kept its checkpoint: only a study's, credited to the version the study
    evaluated (its newest that got anywhere) and only if the evaluated step is that run's best validation step."""
    studied = fit_run_dir(run_dir.parent)
    if eval_dir.parent != run_dir.parent / run_name(TEST_RUN_NAME, "test") or studied is None or studied.resolve() != run_dir.resolve():
        return False
    steps, accs = read_curve(run_dir / "val_acc.csv")
    finite = [a for a in accs if math.isfinite(a)]
    return bool(finite) and test.get("step") == next(s for s, a in zip(steps, accs) if a == max(finite))


def credited_test(run_dir: Path) -> dict[str, Any] | None:
    """The ``test`` entry (overall and per-class accuracy) of the newest evaluation of this run's best checkpoint,
    else of its newest evaluation of any of its checkpoints; None if it was never evaluated."""
    matches = []
    for eval_dir in _eval_dirs(run_dir):
        if (test := _test_entry(eval_dir)) is None:
            continue
        ckpt, runs_dir = _recorded(eval_dir)
        evaluated = _evaluated(eval_dir, run_dir, ckpt, runs_dir)
        if evaluated or (evaluated is None and _legacy_match(eval_dir, run_dir, test)):
            is_best = Path(ckpt or "best.ckpt").name == "best.ckpt"  # a study evaluated best.ckpt
            matches.append((is_best, (eval_dir / "per_class_accuracy.json").stat().st_mtime, test))
    return max(matches, key=lambda m: m[:2])[2] if matches else None
