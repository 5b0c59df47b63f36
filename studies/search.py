"""Search mode: Optuna (TPE) proposes the cells, for what a grid cannot cover (continuous ranges).

The Optuna storage is a SQLite file in the study directory (``DIR/optuna.db``), so the search resumes
where it stopped, and several processes (or machines sharing the directory) can work on one search: each
asks Optuna for its next trial. Every trial is a cell named by its values and run for every seed like a
grid cell; its objective is the study metric's mean over the seeds.

A trial left running by a process that died (killed, machine lost) is given back: on this host, a dead
owner's trial is marked failed and its exact values are queued again, so they map to the same cell
directory and the interrupted runs resume from their checkpoints. The trial budget counts finished and
running trials, not given-back ones.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from studies.naming import cell_name
from studies.results import read_run
from studies.spec import Cell, StudySpec

STORAGE_FILE = "optuna.db"


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise SystemExit("error: search mode needs Optuna: pip install -e '.[study]' (or '.[dev]')") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(worker: str) -> bool:
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname():
        return True  # another machine's trial: only that machine can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def distributions(spec: StudySpec) -> dict[str, Any]:
    """Optuna distributions; choices are stored as JSON text (Optuna's categorical values must be scalars)."""
    optuna = import_optuna()
    dists: dict[str, Any] = {}
    for flag, p in spec.search.params.items():
        if p.choices is not None:
            dists[flag] = optuna.distributions.CategoricalDistribution([json.dumps(c) for c in p.choices])
        elif p.int:
            dists[flag] = optuna.distributions.IntDistribution(int(p.low), int(p.high), log=p.log)
        else:
            dists[flag] = optuna.distributions.FloatDistribution(float(p.low), float(p.high), log=p.log)
    return dists


def open_search(spec: StudySpec, out: Path) -> Any:
    optuna = import_optuna()
    storage = f"sqlite:///{(out / STORAGE_FILE).resolve()}"
    study = optuna.load_study(study_name=spec.name, storage=storage) if _exists(optuna, storage, spec.name) else None
    done = len(study.get_trials(deepcopy=False)) if study is not None else 0
    # Seeded by the history's length: a resumed search does not replay the proposals it started with.
    sampler = optuna.samplers.TPESampler(seed=spec.search.sampler_seed + done)
    return optuna.create_study(storage=storage, study_name=spec.name, direction="maximize" if spec.higher_is_better else "minimize", sampler=sampler, load_if_exists=True)


def _exists(optuna: Any, storage: str, name: str) -> bool:
    return any(s.study_name == name for s in optuna.get_all_study_summaries(storage=storage))


def trial_cell(spec: StudySpec, params: dict[str, Any]) -> Cell:
    values = {flag: json.loads(params[flag]) if spec.search.params[flag].choices is not None else params[flag] for flag in spec.search.params}
    return Cell(cell_name(values, spec.short_names()), values, values)


def search_cells(study: Any, spec: StudySpec) -> list[Cell]:
    """Every cell a trial of the search has run (or is running), in trial order, each once."""
    cells: dict[str, Cell] = {}
    for t in study.get_trials(deepcopy=False):
        if set(spec.search.params) <= set(t.params):
            cell = trial_cell(spec, t.params)
            cells.setdefault(cell.name, cell)
    return list(cells.values())


def reclaim_dead_trials(study: Any) -> list[int]:
    """Trials still RUNNING whose process on this host is gone: failed, and their values queued again."""
    optuna = import_optuna()
    reclaimed = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker", "")
        if worker and not _alive(worker):
            give_back(study, t.number, t.params)
            reclaimed.append(t.number)
    return reclaimed


def give_back(study: Any, number: int, params: dict[str, Any]) -> None:
    optuna = import_optuna()
    study.set_user_attr(f"reclaimed_{number}", True)
    study.tell(number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
    study.enqueue_trial(params)


def counted(study: Any) -> int:
    """Trials that use up the budget: finished or running, except those given back to the queue."""
    optuna = import_optuna()
    states = optuna.trial.TrialState
    reclaimed = {k for k in study.user_attrs if k.startswith("reclaimed_")}
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state in (states.COMPLETE, states.PRUNED, states.RUNNING) or (t.state == states.FAIL and f"reclaimed_{t.number}" not in reclaimed))


def finished(study: Any) -> int:
    optuna = import_optuna()
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL))) - sum(
        1 for k in study.user_attrs if k.startswith("reclaimed_")
    )


def run_search(study: Any, spec: StudySpec, out: Path, run_cell: Callable[[Cell], None], echo: Callable[[str], None]) -> None:
    """Ask, run the trial's cell for every seed, tell; until the budget is used up."""
    optuna = import_optuna()
    if reclaimed := reclaim_dead_trials(study):
        echo(f"Search: trial(s) {', '.join(map(str, reclaimed))} of a stopped process queued again (their runs resume)")
    dists = distributions(spec)
    while counted(study) < spec.search.trials:
        trial = study.ask(dists)
        trial.set_user_attr("worker", _worker())
        cell = trial_cell(spec, trial.params)
        echo(f"Search: trial {trial.number} -> {cell.name}")
        try:
            run_cell(cell)
        except BaseException:
            give_back(study, trial.number, trial.params)  # interrupted: the next run of the study resumes it
            raise
        values = [read_run(out, cell.name, seed).metric(spec.metric) for seed in spec.seeds]
        finite = [v for v in values if v == v]
        if finite:
            study.tell(trial, sum(finite) / len(finite))
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
