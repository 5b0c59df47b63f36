"""The study runner with stand-in children (no training): runs at once with --jobs, the environment each
run gets (W&B group and job type, CPU threads), and waiting for a run directory another process holds."""

from __future__ import annotations

import fcntl
import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from studies.launchers import open_bar
from studies.launchers.local import LocalLauncher
from studies.tasks import Task, TaskPlanner
from studies.spec import parse_spec

# Stands in for train.py fit: records when it ran and what it was given, then leaves a completed status.json.
FAKE_FIT = """
import json, os, sys, time
from pathlib import Path
seed_path = Path(sys.argv[1]); run = seed_path / "version_0"; run.mkdir(parents=True, exist_ok=True)
start = time.time(); time.sleep(float(sys.argv[2]))
keys = ("OMP_NUM_THREADS", "WANDB_RUN_GROUP", "WANDB_JOB_TYPE", "WANDB_NAME", "WANDB_SERVICE")
(seed_path / "fake.json").write_text(json.dumps({"start": start, "end": time.time(), **{k: os.environ.get(k) for k in keys}}))
(run / "status.json").write_text(json.dumps({"status": "completed", "global_step": 1, "wall_s": 0.1, "segments": 1}))
"""


class FakePlanner(TaskPlanner):
    sleep_s = 1.5

    def fit_argv(self, task: Task) -> list[str]:
        return [sys.executable, "-c", FAKE_FIT, str(task.path), str(self.sleep_s)]


def FakeRunner(spec: object, out: Path, extra: list[str], jobs: int = 1, echo: object = print, planner: type = FakePlanner) -> LocalLauncher:  # noqa: N802
    return LocalLauncher(planner(spec, out, extra), jobs=jobs, echo=echo)


@pytest.fixture
def spec(tmp_path: Path):  # noqa: ANN201
    text = "name: fake\nconfig: configs/mlp.yaml\ngrid:\n  model.init_args.hidden_sizes: [[10], [20]]\nseeds: [0]\n"
    return parse_spec(tmp_path / "fake.yaml", text)


def _run(runner: LocalLauncher, spec: object) -> list[Task]:
    tasks = [runner.planner.task(c, s) for c in spec.cells() for s in spec.seeds]
    with open_bar(len(tasks), 0, "fake") as bar:
        runner.run(tasks, bar)
    return tasks


@pytest.mark.parametrize("omp", [None, ""], ids=["unset", "empty"])  # an empty value is no thread count (libgomp ignores it)
def test_jobs_2_runs_two_at_once_with_half_the_threads_and_the_wandb_grouping(spec: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, omp: str | None) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    if omp is not None:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    lines: list[str] = []
    _run(FakeRunner(spec, tmp_path / "out", [], jobs=2, echo=lines.append), spec)
    a, b = (json.loads((tmp_path / "out" / cell / "seed0" / "fake.json").read_text()) for cell in ("hidden_sizes=10", "hidden_sizes=20"))
    assert a["start"] < b["end"] and b["start"] < a["end"], "both runs were running at the same time"
    assert a["OMP_NUM_THREADS"] == str(max(1, len(os.sched_getaffinity(0)) // 2))
    assert (a["WANDB_RUN_GROUP"], a["WANDB_JOB_TYPE"], a["WANDB_NAME"]) == ("fake", "hidden_sizes=10", "hidden_sizes=10/seed0")
    assert len(lines) == 2 and all(": ok" in line for line in lines), lines


def test_a_run_directory_held_by_a_live_process_is_waited_for_not_trained_beside(spec: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("studies.launchers.local.BUSY_RETRY_S", 0.2)
    run_dir = tmp_path / "out" / "hidden_sizes=10" / "seed0" / "version_0"
    run_dir.mkdir(parents=True)
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a leftover training process of a killed study
    os.write(fd, b"4242\n")
    released: list[float] = []

    def release() -> None:  # ... which saves and exits two seconds later
        released.append(time.time())
        os.close(fd)

    threading.Timer(2.0, release).start()
    lines: list[str] = []
    _run(FakeRunner(spec, tmp_path / "out", [], jobs=1, echo=lines.append), spec)
    assert any("process 4242" in line and "waiting" in line for line in lines), lines
    record = json.loads((run_dir.parent / "fake.json").read_text())
    assert record["start"] >= released[0], "it started only after the lock was released"


def test_already_finished_runs_are_not_launched(spec: object, tmp_path: Path) -> None:
    runner = FakeRunner(spec, tmp_path / "out", [], jobs=1, echo=lambda _: None)
    _run(runner, spec)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("fake.json")}
    tasks = _run(runner, spec)
    assert all(t.phase == "done" for t in tasks)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("fake.json")} == before


@pytest.mark.filterwarnings("error:No artists with labels:UserWarning")  # a study whose runs drew no curves yet plots without a warning
def test_a_run_killed_outright_makes_the_study_exit_1_not_0(spec: object, tmp_path: Path) -> None:
    """A child SIGKILLed (say by the OOM killer) leaves its run ``running``: the study must not report success."""
    from studies.main import summarise_study

    class KilledPlanner(FakePlanner):
        sleep_s = 0.0

        def fit_argv(self, task: Task) -> list[str]:
            killed = FAKE_FIT.replace('"completed"', '"running"') + "\nimport signal; os.kill(os.getpid(), signal.SIGKILL)\n"
            return [sys.executable, "-c", killed, str(task.path), str(self.sleep_s)]

    out = tmp_path / "out"
    _run(FakeRunner(spec, out, [], jobs=1, echo=lambda _: None, planner=KilledPlanner), spec)
    assert summarise_study(spec, out, spec.cells(), echo=False) == 2
    assert "PENDING hidden_sizes=10 seed 0" in (out / "summary.md").read_text()


def test_test_true_without_a_best_checkpoint_is_reported_not_skipped(tmp_path: Path) -> None:
    from studies.main import summarise_study

    text = "name: fake\nconfig: configs/mlp.yaml\ngrid:\n  model.init_args.hidden_sizes: [[10]]\nseeds: [0]\ntest: true\n"
    spec = parse_spec(tmp_path / "fake.yaml", text)
    out = tmp_path / "out"
    tasks = _run(FakeRunner(spec, out, [], jobs=1, echo=lambda _: None), spec)  # completes without a best.ckpt
    assert FakePlanner(spec, out, []).next_phase(tasks[0]) == "done"
    assert summarise_study(spec, out, spec.cells(), echo=False) == 1
    assert "no checkpoints/best.ckpt to test" in (out / "summary.md").read_text()


def test_a_study_run_draws_no_figures_of_its_own_unless_the_study_flags_ask(tmp_path: Path) -> None:
    """The study draws every cell's curves and per-class accuracy itself; a run's own PNGs (~0.5 s each run) are
    drawn only when the study file's flags say ``figures: true``, and that flag reaches the test phase too."""
    from studies.flags import canonical_argv

    default = parse_spec(tmp_path / "a.yaml", "name: a\nconfig: configs/mlp.yaml\nseeds: [0]\n")
    asked = parse_spec(tmp_path / "b.yaml", "name: b\nconfig: configs/mlp.yaml\nseeds: [0]\nflags: {figures: true}\n")
    for spec, expected in ((default, False), (asked, True)):
        planner = TaskPlanner(spec, tmp_path / spec.name, [])
        task = planner.task(spec.cells()[0], 0)
        assert canonical_argv(planner.fit_argv(task)[3:])["figures"] is expected
        run = task.path / "version_0" / "checkpoints"
        run.mkdir(parents=True)
        (run / "best.ckpt").write_bytes(b"")
        assert canonical_argv(planner.test_argv(task)[3:])["figures"] is expected


def test_the_launcher_wakes_when_a_run_exits_not_at_its_poll_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hand-over between runs costs no poll interval: the wait returns as the child exits (a 60 s timeout
    would fail this test); where pidfds are refused, it sleeps the timeout instead."""
    import subprocess

    from studies.launchers import local

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    started = time.monotonic()
    local.wait_for_exit([child.pid], 60.0)
    assert time.monotonic() - started < 30 and child.poll() == 0

    def refused(pid: int) -> int:
        raise PermissionError("pidfd_open: operation not permitted")

    slept: list[float] = []
    monkeypatch.setattr(local.os, "pidfd_open", refused)
    monkeypatch.setattr(local.time, "sleep", slept.append)
    local.wait_for_exit([os.getpid()], 0.2)
    assert slept == [0.2]


def test_each_run_gets_the_environment_the_study_adds_as_it_starts(spec: object, tmp_path: Path) -> None:
    """The study's shared W&B service token reaches every run; once the service has died, no later run gets it."""
    offered = [{"WANDB_SERVICE": "3-1-unix-/tmp/socket"}, {}]
    runner = LocalLauncher(FakePlanner(spec, tmp_path / "out", []), jobs=1, run_env=lambda: offered.pop(0))
    tasks = _run(runner, spec)
    assert [json.loads((t.path / "fake.json").read_text())["WANDB_SERVICE"] for t in tasks] == ["3-1-unix-/tmp/socket", None]
