"""Studies end to end on tiny fake data: a 2-cell x 2-seed grid (one cell diverges) with test evaluation,
resume after SIGKILL of the study process, adding a cell, a failed run's error in the console, an Optuna
search that resumes, and compare_runs on two of the runs."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studies.main import main
from tests.cli_helpers import ROOT, script_env
from tests.conftest import write_batches
from tests.test_callbacks import assert_png

SPEC = """name: tiny
config: {root}/configs/mlp.yaml
flags: {{data.preprocessing: standardize}}
grid:
  model.init_args.optimizer.init_args.lr: [0.05, 1.0e6]
seeds: [0, 1]
metric: val/acc
test: true
"""
OK_CELL, DIVERGED_CELL = "lr=0.05", "lr=1e+06"


def tiny_args(data: Path, steps: int = 300, every: int = 50) -> list[str]:
    """Validation (and with it last.ckpt) every ``every`` steps: few enough to keep runs short (each writes
    per-class figures), the first early enough that a run is killed mid-way with a checkpoint to resume from."""
    return ["--model.init_args.hidden_sizes", "[16]", "--data.data_dir", str(data), "--data.download", "false", "--data.val_size", "30",
            "--data.batch_size", "20", "--data.eval_batch_size", "25", "--trainer.max_steps", str(steps), "--trainer.val_check_interval", str(every),
            "--trainer.check_val_every_n_epoch", "null", "--trainer.logger", "false", "--trainer.enable_model_summary", "false",
            "--trainer.accelerator", "cpu", "--trainer.deterministic", "true"]  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def one_thread_per_run() -> Iterator[None]:
    """Same float round-off whatever --jobs is (the CPU split changes the thread count otherwise)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        mp.setenv("WANDB_MODE", "offline")
        yield


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_batches(root)
    return root


def study_file(tmp_path: Path, text: str = SPEC) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(text.format(root=ROOT))
    return path


def run_study(*argv: str) -> tuple[int, str]:
    """In-process ``scripts/study.py ARGV``: (exit code, console output)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main([str(a) for a in argv])
    return code, out.getvalue()


@pytest.fixture(scope="module")
def grid(data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int, str]:
    """The uninterrupted reference: (study file, DIR, exit code, console), two runs at once."""
    tmp = tmp_path_factory.mktemp("grid")
    spec = study_file(tmp)
    code, console = run_study(spec, "--out", tmp / "out", "--jobs", "2", *tiny_args(data))
    return spec, tmp / "out", code, console


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def red_pixels(path: Path) -> int:
    """Pixels of matplotlib's tab:red (214, 39, 40): the diverged markers."""
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int((np.abs(rgb - [214, 39, 40]).sum(-1) < 40).sum())


@pytest.mark.slow
def test_grid_study_writes_one_run_per_cell_and_seed_a_summary_and_plots(grid: tuple[Path, Path, int, str]) -> None:
    _, out, code, console = grid
    assert code == 0, console[-3000:]  # diverged runs are a result, not a failure
    summary = rows(out / "summary.csv")
    assert [(r["cell"], r["lr"], r["seed"], r["status"]) for r in summary] == [
        (OK_CELL, "0.05", "0", "ok"), (OK_CELL, "0.05", "1", "ok"), (DIVERGED_CELL, "1e+06", "0", "diverged"), (DIVERGED_CELL, "1e+06", "1", "diverged")]  # fmt: skip
    assert list(summary[0]) == ["cell", "lr", "seed", "status", "best_val_acc", "best_step", "test_acc", "final_train_loss", "wall_s", "error", "run_dir"]
    for r in summary[:2]:
        assert 0 <= float(r["best_val_acc"]) <= 1 and 0 <= float(r["test_acc"]) <= 1 and int(r["best_step"]) % 50 == 0 and float(r["wall_s"]) > 0
        run_dir = out / r["run_dir"]
        assert run_dir == out / OK_CELL / f"seed{r['seed']}" / "version_0", "every run is a normal train.py run directory"
        assert all((run_dir / f).is_file() for f in ("config.yaml", "checkpoints/best.ckpt", "checkpoints/last.ckpt", "train_loss.csv", "status.json"))
        assert not list(run_dir.glob("*.png")), "a study's runs leave the figures to the study (`figures: true` in its flags draws them)"
        assert (run_dir.parent / "eval-test" / "version_0" / "per_class_accuracy.json").is_file(), "best checkpoint evaluated on the test split"
    for r in summary[2:]:
        assert r["test_acc"] == "" and re.search(r"loss is (nan|inf) at step \d+", r["error"]), r
    markdown = (out / "summary.md").read_text()
    assert f"| **{OK_CELL}** (best) | 2 ok |" in markdown and f"| {DIVERGED_CELL} | 2 diverged |" in markdown
    assert re.search(r"\| 0\.\d{4} ± 0\.\d{4} \(n=2\) \|", markdown), "mean ± std over seeds and n"
    assert markdown.split("\n", 2)[2].strip() in console, "the summary is printed at the end"
    for seed in (0, 1):  # one line per finished run: cell, seed, metric, time
        assert re.search(rf"{re.escape(OK_CELL)} seed {seed}: ok, val/acc 0\.\d{{4}}, test acc 0\.\d{{4}}, \d+ s", console), console
        assert re.search(rf"{re.escape(DIVERGED_CELL)} seed {seed}: diverged", console)
    for name in ("metric_vs_lr.png", "learning_curves.png", "per_class_accuracy.png"):
        assert_png(out / name)
    assert red_pixels(out / "metric_vs_lr.png") > 30, "the diverged cell is drawn (red cross)"
    assert (out / "study.yaml").is_file() and (out / "study.json").is_file(), "DIR keeps the study it ran"


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): f"{p.stat().st_mtime_ns}:{hashlib.md5(p.read_bytes()).hexdigest()}" for p in sorted(folder.rglob("*")) if p.is_file()}


def _without_wall_time(path: Path) -> list[list[str]]:
    if path.suffix == ".csv":
        return [[v for k, v in r.items() if k != "wall_s"] for r in rows(path)]
    return [line.rsplit("|", 2)[0] for line in path.read_text().splitlines()]  # the last column is the wall time


@pytest.mark.slow
def test_study_resumes_after_sigkill_and_ends_with_the_uninterrupted_summary(grid: tuple[Path, Path, int, str], data: Path, tmp_path: Path) -> None:
    spec, reference, _, _ = grid
    out = tmp_path / "out"
    argv = [str(spec), "--out", str(out), *tiny_args(data)]
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "study.py"), *argv, "--jobs", "1"], cwd=ROOT, env=script_env({"OMP_NUM_THREADS": "1"}),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    second = out / OK_CELL / "seed1" / "version_0"
    deadline = time.monotonic() + 900
    while not (second / "checkpoints" / "last.ckpt").is_file():  # seed 0 finished (fit + test); seed 1 is training
        assert proc.poll() is None and time.monotonic() < deadline, (proc.poll(), proc.stdout.read() if proc.poll() is not None else "timeout")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    finished = out / OK_CELL / "seed0"
    before = _snapshot(finished)
    assert "eval-test/version_0/per_class_accuracy.json" in before
    code, console = run_study(*argv, "--jobs", "2")  # the same study again (two runs at once, as the reference ran)
    assert code == 0, console[-3000:]
    assert "1 of 4 runs already finished (kept, not re-run)" in console
    assert _snapshot(finished) == before, "the finished run was skipped, not re-trained"
    log = (second.parent / "train.log").read_text()
    assert "SIGTERM received" in log, "the killed study's child was told to save and stop (PR_SET_PDEATHSIG)"
    assert "Resuming" in log and '"segments": 2' in (second / "status.json").read_text(), "the interrupted run resumed in place"
    for name in ("summary.csv", "summary.md"):
        assert _without_wall_time(out / name) == _without_wall_time(reference / name), f"{name} differs from the uninterrupted study's"


@pytest.mark.slow
def test_adding_a_cell_runs_only_that_cell_and_a_failed_run_shows_its_error(data: Path, tmp_path: Path) -> None:
    grid = "grid:\n  model.init_args.optimizer.init_args.lr: [0.05, 1.0e6]\n"
    one = SPEC.replace(grid, "cells:\n  ok: {{model.init_args.optimizer.init_args.lr: 0.05}}\n").replace("seeds: [0, 1]", "seeds: [0]").replace("test: true", "test: false")
    spec = study_file(tmp_path, one)
    argv = [spec, "--out", tmp_path / "out", *tiny_args(data, steps=20, every=10)]
    code, _ = run_study(*argv)
    assert code == 0
    before = _snapshot(tmp_path / "out" / "ok")
    # A cell only its run can refuse: the study's pre-check parses the flags and builds the optimizers, but builds no model.
    study_file(tmp_path, one.replace("lr: 0.05}}\n", "lr: 0.05}}\n  no-match: {{model.init_args.lr_multipliers: {{nothing_matches_this: 2.0}}}}\n"))
    code, console = run_study(*argv)
    assert code == 1, console[-3000:]
    assert _snapshot(tmp_path / "out" / "ok") == before, "only the new cell ran"
    assert re.search(r"no-match seed 0: failed -- --model.lr_multipliers .*nothing_matches_this", console), console[-3000:]
    assert re.search(r"FAILED  no-match seed 0: --model.lr_multipliers ", console), "the error line is in the final summary"
    assert [(r["cell"], r["status"]) for r in rows(tmp_path / "out" / "summary.csv")] == [("ok", "ok"), ("no-match", "failed")]
    assert (tmp_path / "out" / "study.1.yaml").is_file(), "the earlier study file is kept"
    # Editing the finished cell's flags under its old name is refused: its runs would be reported under the new value.
    study_file(tmp_path, one.replace("lr: 0.05}}", "lr: 0.01}}"))
    code, console = run_study(*argv)
    assert code == 2 and "cell 'ok' now sets model.optimizer.lr: 0.05 -> 0.01" in console, console[-2000:]
    assert _snapshot(tmp_path / "out" / "ok") == before


@pytest.mark.slow
def test_optuna_search_resumes_and_extends_its_budget(data: Path, tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    from studies.search_storage import journal

    text = (f"name: search\nconfig: {ROOT}/configs/mlp.yaml\nflags: {{data.preprocessing: standardize}}\nseeds: [0]\n"
            "search:\n  trials: 1\n  params:\n    model.init_args.optimizer.init_args.lr: {low: 0.01, high: 0.1, log: true}\n")  # fmt: skip
    spec = tmp_path / "search.yaml"
    spec.write_text(text)
    argv = [spec, "--out", tmp_path / "out", *tiny_args(data, steps=20, every=10)]
    assert run_study(*argv)[0] == 0
    first = [p.parent.parent for p in (tmp_path / "out").glob("*/seed0/version_0")]
    assert len(first) == 1 and first[0].name.startswith("lr=0.0")
    before = _snapshot(first[0])
    spec.write_text(text.replace("trials: 1", "trials: 2"))
    code, console = run_study(*argv)
    assert code == 0, console[-3000:]
    assert _snapshot(first[0]) == before, "the first trial's run is kept, not re-run"
    study = optuna.load_study(study_name="search", storage=journal(tmp_path / "out" / "optuna.journal"))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert len(rows(tmp_path / "out" / "summary.csv")) == 2 and (tmp_path / "out" / "metric_vs_lr.png").is_file()
    code, console = run_study(*argv)  # nothing left to do
    assert code == 0 and "Search: trial" not in console and len(optuna.load_study(study_name="search", storage=journal(tmp_path / "out" / "optuna.journal")).trials) == 2


def test_a_dead_processes_search_trial_is_queued_again_with_the_same_values(tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    from studies.search import counted, distributions, open_search, reclaim_dead_trials
    from studies.spec import parse_spec

    spec = parse_spec(tmp_path / "s.yaml", "name: s\nconfig: configs/mlp.yaml\nsearch: {trials: 2, params: {model.init_args.dropout: {low: 0.0, high: 0.5}}}\n")
    study = open_search(spec, tmp_path)
    trial = study.ask(distributions(spec))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    trial.set_user_attr("worker", f"{os.uname().nodename}:{dead}")
    assert reclaim_dead_trials(study) == [trial.number]
    assert counted(study) == 0, "a given-back trial does not use up the budget"
    again = study.ask(distributions(spec))
    assert again.params == trial.params and again.number != trial.number
    assert study.trials[0].state == optuna.trial.TrialState.FAIL


@pytest.mark.slow
def test_compare_runs_tables_the_differing_config_keys_and_overlays_the_curves(grid: tuple[Path, Path, int, str], tmp_path: Path) -> None:
    from studies.compare import main as compare_main

    _, out, _, _ = grid
    runs = [out / OK_CELL / "seed0" / "version_0", out / DIVERGED_CELL / "seed1" / "version_0"]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert compare_main([*map(str, runs), "--out", str(tmp_path / "cmp")]) == 0
    table = rows(tmp_path / "cmp" / "comparison.csv")
    keys = list(table[0])
    assert "model.init_args.optimizer.init_args.lr" in keys and "seed_everything" in keys, "lr and seed differ"
    assert "trainer.max_steps" not in keys and "run_name" not in keys, "only what differs"
    assert [r["status"] for r in table] == ["completed", "diverged"] and table[0]["test acc"] != "—" and table[1]["test acc"] == "—"
    assert table[0]["best val acc"] == f"{max(float(r['val_acc']) for r in rows(runs[0] / 'val_acc.csv')):.4f}"
    assert "| run |" in stdout.getvalue() and (tmp_path / "cmp" / "comparison.md").is_file()
    assert_png(tmp_path / "cmp" / "learning_curves.png")


def test_reported_figures_sit_beside_ours_computed_from_the_studys_own_runs(grid: tuple[Path, Path, int, str], tmp_path: Path) -> None:
    from studies.main import summarise_study
    from studies.spec import load_spec

    _, out, _, _ = grid
    text = SPEC + "reported:\n  source: a report\n  metric: test/acc\n  values: {{lr=0.05: 0.5, lr=1e+06: 0.1}}\n"
    spec = load_spec(study_file(tmp_path, text))
    summarise_study(spec, out, spec.cells(), echo=False)
    ours = [float(r["test_acc"]) for r in rows(out / "summary.csv") if r["cell"] == OK_CELL and r["status"] == "ok"]
    mean, std = float(np.mean(ours)), float(np.std(ours, ddof=1))
    md = (out / "summary.md").read_text()
    assert "## Reported (a report) vs ours: test/acc" in md
    assert f"| {OK_CELL} | 0.5000 | {mean:.4f} ± {std:.4f} (n=2) | {100 * (mean - 0.5):+.1f} points |" in md, md
    assert f"| {DIVERGED_CELL} | 0.1000 | — | — |" in md, "a cell with no completed run has no figure to compare"
    table = rows(out / "reported.csv")
    assert [r["cell"] for r in table] == [OK_CELL, DIVERGED_CELL] and float(table[0]["difference"]) == pytest.approx(mean - 0.5)
