"""Search mode: Optuna (TPE) proposes the cells, for what a grid cannot cover (continuous ranges).

Every trial is a cell named by its values and run for every seed like a grid cell; its objective is the
study metric's mean over the seeds. The trials live in Optuna's journal file ``DIR/optuna.journal`` (or a
database server, ``--storage URL``; see ``search_storage.py``), so a search resumes where it stopped, and
several workers (processes on one machine, jobs on several sharing DIR) work on one search: each asks the
storage for its next trial, which Optuna hands to one worker only (a queued trial is popped by one).

A trial left running by a worker that is gone (killed, its machine lost) is given back: its heartbeat
(``search_heartbeat.py``) says so on any machine, and on this host a dead pid at once. Giving back marks it
failed, which only one worker can do (the storage refuses a second tell), and queues its exact values
again, so they map to the same cell directory and the interrupted runs resume from their checkpoints.

The trial budget counts finished and running trials, not given-back ones. Its slots are ordered: a trial
takes the slot of its number, a given-back trial's retry keeps its slot, and a new trial that finds every
earlier slot taken (another worker asked at the same moment) is dropped unrun, so the workers together run
``trials`` trials, never more. A worker whose budget is used up waits for the trials still running
elsewhere, taking over any whose worker goes, so every worker ends with the summary of every trial.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from studies.naming import cell_name
from studies.results import read_run
from studies.search_heartbeat import Heartbeat, is_gone
from studies.search_storage import import_optuna, open_storage
from studies.spec import Cell, StudySpec

RETRY_OF, SLOT, SURPLUS = "retry_of", "slot", "surplus"  # trial user attributes
WAIT_POLL_S = 5.0


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


def open_search(spec: StudySpec, out: Path, storage: str | None = None, echo: Callable[[str], None] = print) -> Any:
    """The search's Optuna study, created or loaded (every worker may call this at the same moment)."""
    optuna = import_optuna()
    from studies.search_sampler import TrialSeededTPE

    return optuna.create_study(storage=open_storage(out, storage, echo), study_name=spec.name, direction="maximize" if spec.higher_is_better else "minimize",
                               sampler=TrialSeededTPE(spec.search.sampler_seed), load_if_exists=True)  # fmt: skip


def trial_cell(spec: StudySpec, params: dict[str, Any]) -> Cell:
    values = {flag: json.loads(params[flag]) if spec.search.params[flag].choices is not None else params[flag] for flag in spec.search.params}
    return Cell(cell_name(values, spec.short_names()), values, values)


def search_cells(study: Any, spec: StudySpec) -> list[Cell]:
    """Every cell a trial of the search has run (or is running), in trial order, each once."""
    cells: dict[str, Cell] = {}
    for t in study.get_trials(deepcopy=False):
        if set(spec.search.params) <= set(t.params) and not t.user_attrs.get(SURPLUS):
            cell = trial_cell(spec, t.params)
            cells.setdefault(cell.name, cell)
    return list(cells.values())


def _given_back(study: Any, trials: list[Any]) -> set[int]:
    """Numbers of the trials whose values were queued again (``reclaimed_<n>`` study attributes: from before retries named their trial)."""
    old = {int(k.removeprefix("reclaimed_")) for k in study.user_attrs if k.startswith("reclaimed_")}
    return old | {t.user_attrs[RETRY_OF] for t in trials if RETRY_OF in t.user_attrs}


def _uses_budget(t: Any, given_back: set[int], queued_too: bool) -> bool:
    states = import_optuna().trial.TrialState
    if t.state == states.FAIL:
        return t.number not in given_back and not t.user_attrs.get(SURPLUS)
    return t.state in (states.COMPLETE, states.PRUNED, states.RUNNING) or (queued_too and t.state == states.WAITING)


def counted(study: Any) -> int:
    """Trials that use up the budget: finished or running, except those given back to the queue (and dropped ones)."""
    trials = study.get_trials(deepcopy=False)
    back = _given_back(study, trials)
    return sum(_uses_budget(t, back, queued_too=False) for t in trials)


def finished(study: Any) -> int:
    states = import_optuna().trial.TrialState
    trials = study.get_trials(deepcopy=False)
    back = _given_back(study, trials)
    return sum(t.state != states.RUNNING and _uses_budget(t, back, queued_too=False) for t in trials)


def give_back(study: Any, number: int, params: dict[str, Any], slot: int) -> bool:
    """Fail trial ``number`` and queue its values again (keeping its budget slot); False if another worker
    finished or gave it back first (only one tell of a trial succeeds, whichever process sends it)."""
    optuna = import_optuna()
    try:
        study.tell(number, state=optuna.trial.TrialState.FAIL)
    except (ValueError, optuna.exceptions.UpdateFinishedTrialError):  # ValueError: seen finished before telling
        return False
    study.enqueue_trial(params, user_attrs={RETRY_OF: number, SLOT: slot})
    return True


def _slot(t: Any) -> int:
    return int(t.user_attrs.get(SLOT, t.number))


def reclaim_dead_trials(study: Any) -> list[int]:
    """Trials still RUNNING whose worker is gone (on any machine): failed, and their values queued again."""
    optuna = import_optuna()
    now = time.time()
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    return [t.number for t in running if is_gone(t, now) and give_back(study, t.number, t.params, _slot(t))]


def _surplus(study: Any, trial: Any, budget: int) -> bool:
    """A new trial that finds every slot before its own taken (other workers asked at the same moment) is
    dropped unrun; a given-back trial's retry is never surplus (its slot was counted when it was new)."""
    trials = study.get_trials(deepcopy=False)
    if "fixed_params" in trials[trial.number].system_attrs:  # popped from the queue
        return False
    back = _given_back(study, trials)
    if sum(_slot(t) < trial.number and _uses_budget(t, back, queued_too=True) for t in trials) < budget:
        return False
    trial.set_user_attr(SURPLUS, True)
    study.tell(trial, state=import_optuna().trial.TrialState.FAIL)
    return True


def _run_trial(study: Any, trial: Any, spec: StudySpec, out: Path, run_cell: Callable[[Cell], None], echo: Callable[[str], None]) -> None:
    optuna = import_optuna()
    cell = trial_cell(spec, trial.params)
    echo(f"Search: trial {trial.number} -> {cell.name}")
    try:
        with Heartbeat(trial):
            run_cell(cell)
    except BaseException:
        give_back(study, trial.number, trial.params, _slot(trial))  # interrupted: the next run of the study resumes it
        raise
    values = [read_run(out, cell.name, seed).metric(spec.metric) for seed in spec.seeds]
    finite = [v for v in values if v == v]
    try:
        if finite:
            study.tell(trial, sum(finite) / len(finite))
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
        echo(f"Search: trial {trial.number} was given back by another worker meanwhile (it saw no heartbeat); its retry reports {cell.name}")


def run_search(study: Any, spec: StudySpec, out: Path, run_cell: Callable[[Cell], None], echo: Callable[[str], None]) -> None:
    """Ask, run the trial's cell for every seed, tell; until the budget is used up and no trial runs elsewhere."""
    optuna = import_optuna()
    dists = distributions(spec)
    waiting: list[int] = []
    while True:
        if reclaimed := reclaim_dead_trials(study):
            echo(f"Search: trial(s) {', '.join(map(str, reclaimed))} of a stopped worker queued again (their runs resume)")
        if counted(study) < spec.search.trials:
            trial = study.ask(dists)
            if not _surplus(study, trial, spec.search.trials):
                _run_trial(study, trial, spec, out, run_cell, echo)
            continue
        running = [t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))]
        if not running:
            return
        if running != waiting:
            echo(f"Search: budget used up; waiting for trial(s) {', '.join(map(str, running))} of other workers (taken over if their worker stops)")
            waiting = running
        time.sleep(WAIT_POLL_S)
