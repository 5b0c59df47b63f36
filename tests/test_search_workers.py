"""Search studies shared by several workers: the journal storage in DIR (or ``--storage URL``; an old
``optuna.db`` kept), a dead worker's trial given back from any host, the budget held by all workers
together, no two workers on the same values, and two ``scripts/study.py`` processes on one search."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from studies.main import main
from studies.search_storage import journal
from studies.spec import StudySpec, parse_spec
from tests.cli_helpers import ROOT, script_env
from tests.conftest import write_batches
from tests.test_studies import run_study, tiny_args

optuna = pytest.importorskip("optuna")

SPACE = "search: {trials: %d, params: {model.init_args.dropout: {low: 0.0, high: 0.5}}}\n"


def search_spec(tmp_path: Path, trials: int = 2) -> StudySpec:
    return parse_spec(tmp_path / "s.yaml", "name: s\nconfig: configs/mlp.yaml\n" + SPACE % trials)


def worker(tmp_path: Path, trials: int = 2) -> tuple[StudySpec, object]:
    """One worker's handle on the search in ``tmp_path``: its own storage object, as another process has."""
    from studies.search import open_search

    tmp_path.mkdir(parents=True, exist_ok=True)
    spec = search_spec(tmp_path, trials)
    return spec, open_search(spec, tmp_path, echo=lambda _: None)


def at_once(n: int, work: Callable[[], object]) -> list[BaseException]:
    """``work`` in ``n`` threads started together (as workers start); what each raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - collected for the test to assert on
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_a_dead_workers_trial_on_another_host_is_given_back_once_its_heartbeat_is_old(tmp_path: Path) -> None:
    from studies.search import counted, distributions, reclaim_dead_trials

    spec, study = worker(tmp_path)
    dists = distributions(spec)
    dead, alive = study.ask(dists), study.ask(dists)
    dead.set_user_attr("worker", "another-host.cluster:4242")
    dead.set_user_attr("heartbeat", time.time() - 3600)  # its machine went down an hour ago
    alive.set_user_attr("worker", "another-host.cluster:4243")
    alive.set_user_attr("heartbeat", time.time())  # beating: a pid on another machine tells nothing here
    assert reclaim_dead_trials(study) == [dead.number]
    assert reclaim_dead_trials(study) == [], "given back once"
    assert counted(study) == 1, "the given-back trial does not use up the budget; the live one does"
    again = study.ask(dists)
    assert again.params == dead.params and again.number not in (dead.number, alive.number), "its exact values again: the same cell directory"


def test_only_one_of_two_workers_gives_a_dead_trial_back(tmp_path: Path) -> None:
    from studies.search import distributions, reclaim_dead_trials

    spec, a = worker(tmp_path)
    _, b = worker(tmp_path)
    trial = a.ask(distributions(spec))
    trial.set_user_attr("worker", "another-host:1")
    trial.set_user_attr("heartbeat", time.time() - 3600)
    assert reclaim_dead_trials(a) == [trial.number]
    assert reclaim_dead_trials(b) == []
    waiting = [t for t in b.get_trials() if t.state == optuna.trial.TrialState.WAITING]
    assert len(waiting) == 1, "queued once, not once per worker"


def test_workers_asking_at_once_propose_different_values_and_one_history_the_same(tmp_path: Path) -> None:
    from studies.search import distributions

    spec, a = worker(tmp_path / "shared")
    _, b = worker(tmp_path / "shared")
    first, second = a.ask(distributions(spec)), b.ask(distributions(spec))
    assert first.params != second.params, "two workers seeded alike would evaluate the same cell twice"
    _, alone = worker(tmp_path / "alone")
    assert alone.ask(distributions(spec)).params == first.params, "the same history proposes the same values"


def test_the_budget_holds_for_all_workers_together_and_a_retry_keeps_its_slot(tmp_path: Path) -> None:
    from studies.search import _surplus, counted, distributions, give_back, search_cells

    spec, a = worker(tmp_path, trials=1)
    _, b = worker(tmp_path, trials=1)
    dists = distributions(spec)
    mine, theirs = a.ask(dists), b.ask(dists)  # both saw 0 of 1 trials used and asked at the same moment
    assert not _surplus(a, mine, 1) and _surplus(b, theirs, 1)
    assert counted(a) == 1 and [c.name for c in search_cells(a, spec)] == [f"dropout={mine.params['model.init_args.dropout']:g}"]
    assert give_back(a, mine.number, mine.params, mine.number)
    retry = b.ask(dists)
    assert retry.params == mine.params and not _surplus(b, retry, 1), "the retry runs in the given-back trial's slot"
    assert _surplus(a, a.ask(dists), 1), "and no new trial beside it"
    assert counted(a) == 1


def test_the_search_lives_in_the_journal_an_optuna_db_from_before_is_kept_and_storage_takes_a_url(tmp_path: Path) -> None:
    from studies.search import open_search
    from studies.search_storage import import_optuna

    import_optuna()
    spec = search_spec(tmp_path)
    notes: list[str] = []
    (tmp_path / "new").mkdir()
    open_search(spec, tmp_path / "new", echo=notes.append).ask()
    assert (tmp_path / "new" / "optuna.journal").is_file() and not (tmp_path / "new" / "optuna.db").exists() and notes == []
    old = tmp_path / "old"
    old.mkdir()
    optuna.create_study(study_name="s", storage=f"sqlite:///{old / 'optuna.db'}", direction="maximize").add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}))
    assert len(open_search(spec, old, echo=notes.append).trials) == 1, "the search under way goes on"
    assert len(notes) == 1 and "optuna.db is this search's storage from before" in notes[0] and not (old / "optuna.journal").exists()
    url = f"sqlite:///{tmp_path / 'server.db'}"
    open_search(spec, tmp_path / "db", url).ask()
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 1 and not (tmp_path / "db" / "optuna.journal").exists()


def test_workers_opening_a_new_database_at_once_all_get_it(tmp_path: Path) -> None:
    """Each creates the tables it finds missing; all but one collide (seen: IntegrityError, OperationalError)."""
    from studies.search_storage import open_storage

    errors = at_once(4, lambda: open_storage(tmp_path, f"sqlite:///{tmp_path / 'new.db'}"))
    assert errors == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("optuna.db", "error: --storage 'optuna.db': not a database URL (postgresql://user@host/db, mysql://..., or sqlite:///path)"),
        ("nosuchdialect://h/db", "error: --storage nosuchdialect://h/db: cannot open the database (NoSuchModuleError: "),
        ("postgresql://me:s3cret@127.0.0.1:1/db", "error: --storage postgresql://me:***@127.0.0.1:1/db: cannot open the database ("),
    ],
)
def test_a_bad_storage_url_is_one_line_naming_storage(tmp_path: Path, url: str, expected: str) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: s\nconfig: {ROOT}/configs/mlp.yaml\n" + SPACE % 1)
    code, console = run_study(spec, "--out", tmp_path / "out", "--storage", url)
    errors = [line for line in console.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and errors[0].startswith(expected), console[-2000:]
    assert "Traceback" not in console and "s3cret" not in console


def test_storage_on_a_grid_study_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "g.yaml"
    spec.write_text(f"name: g\nconfig: {ROOT}/configs/mlp.yaml\ngrid: {{model.init_args.dropout: [0.0, 0.1]}}\n")
    assert main([str(spec), "--out", str(tmp_path / "out"), "--storage", "sqlite:///x.db"]) == 2
    assert capsys.readouterr().err.strip() == f"error: --storage is for search studies; {spec} has no search: block"


def test_workers_starting_together_claim_the_study_directory_one_at_a_time(tmp_path: Path) -> None:
    from studies.store import claim

    spec = search_spec(tmp_path)
    errors = at_once(4, lambda: [claim(tmp_path, spec, [], []) for _ in range(20)])
    assert errors == [], "a worker read another's half-written study.json or lost its temporary file"
    assert not list(tmp_path.glob("study.*.yaml")), "a half-written study.yaml read as a changed study file"
    assert len(json.loads((tmp_path / "study.json").read_text())["commands"]) == 80, "every start recorded"


@pytest.mark.slow
def test_two_study_processes_share_one_search(tmp_path: Path) -> None:
    """Two ``scripts/study.py`` on one search at the same moment: 4 trials in all, 4 different cells, both
    workers do some (each trial takes a whole ``train.py`` start, far longer than the two processes' start-up
    differs), each ends with the summary of all 4 and exit 0, having waited for the other's last trial."""
    data = tmp_path / "data"
    write_batches(data)
    spec = tmp_path / "search.yaml"
    spec.write_text(f"name: search\nconfig: {ROOT}/configs/mlp.yaml\nflags: {{data.preprocessing: standardize}}\nseeds: [0]\n"
                    "search:\n  trials: 4\n  params:\n    model.init_args.optimizer.init_args.lr: {low: 0.01, high: 0.1, log: true}\n")  # fmt: skip
    out = tmp_path / "out"
    argv = [sys.executable, str(ROOT / "scripts" / "study.py"), str(spec), "--out", str(out), *tiny_args(data, steps=10, every=10)]
    procs = [subprocess.Popen(argv, cwd=ROOT, env=script_env({"OMP_NUM_THREADS": "1"}), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    for p, text in zip(procs, outputs, strict=True):
        assert p.returncode == 0, text[-3000:]
    study = optuna.load_study(study_name="search", storage=journal(out / "optuna.journal"))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    unrun = [t for t in study.trials if t.state != optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4 and all(t.user_attrs.get("surplus") for t in unrun), [(t.number, t.state, t.user_attrs) for t in study.trials]
    cells = sorted(p.parent.name for p in out.glob("*/seed0"))
    assert len(cells) == 4 and len({f"lr={t.params['model.init_args.optimizer.init_args.lr']:g}" for t in complete}) == 4, cells
    assert sorted(f"lr={t.params['model.init_args.optimizer.init_args.lr']:g}" for t in complete) == cells
    assert all(not (out / c / "seed0" / "version_1").exists() for c in cells), "no cell trained twice"
    by_worker = {t.user_attrs["worker"].rpartition(":")[2] for t in complete}
    assert by_worker == {str(p.pid) for p in procs}, f"both workers ran trials: {by_worker} vs {[p.pid for p in procs]}"
    with open(out / "summary.csv", newline="") as fh:
        assert sorted(r["cell"] for r in csv.DictReader(fh)) == cells
    for text in outputs:
        assert "Study search: 4 cells x 1 seeds" in text, text[-3000:]
