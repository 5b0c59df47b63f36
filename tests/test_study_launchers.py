"""The SLURM launcher's code path without SLURM, through submitit's local executor (``--launcher submitit-local``):
the same summary as the local launcher, the requeue signal saving and resuming the run bit-identically, a
re-launch that submits nothing queued, running or finished, and the ``slurm:`` options."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from studies.main import main
from tests.helpers.pause_at_step import MARKER_ENV
from tests.launcher_helpers import assert_resumed_once_like_the_reference, parent_pid, pid_gone, recorded_jobs, shared_reference, study_file, summary_rows, tiny_args, wait_for_file, wait_until

pytest.importorskip("submitit")


# The study tests' tiny data, one thread per run (same round-off whatever runs at once), in-process study.py.
from tests.test_studies import data, one_thread_per_run, run_study  # noqa: E402,F401


@pytest.mark.slow
def test_the_submitit_launcher_ends_with_the_local_launchers_summary(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    spec, data, local = shared_reference(tmp_path_factory, "grid")
    code, console = run_study(spec, "--out", tmp_path / "submitit", "--launcher", "submitit-local", *tiny_args(data))
    assert code == 0, console[-3000:]
    assert "Submitted 4 run(s)" in console
    assert summary_rows(tmp_path / "submitit") == summary_rows(local)
    assert [r["status"] for r in summary_rows(local)] == ["ok", "ok", "diverged", "diverged"]
    jobs = recorded_jobs(tmp_path / "submitit")
    assert sorted(jobs) == ["lr=0.05/seed0", "lr=0.05/seed1", "lr=1e+06/seed0", "lr=1e+06/seed1"], "each task's job id is recorded in the study directory"
    again, console = run_study(spec, "--out", tmp_path / "submitit", "--launcher", "submitit-local", *tiny_args(data))
    assert again == 0 and "Submitted" not in console and "4 of 4 runs already finished" in console
    assert recorded_jobs(tmp_path / "submitit") == jobs, "nothing finished is submitted again"


@pytest.mark.slow
def test_the_requeue_signal_saves_requeues_and_the_run_resumes_bit_identically(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, data, reference = shared_reference(tmp_path_factory, "paused")  # run without the marker: no pause
    args = tiny_args(data, steps=200)

    marker = tmp_path / "paused.pid"
    monkeypatch.setenv(MARKER_ENV, str(marker))
    out = tmp_path / "requeued"
    code, console = run_study(spec, "--out", out, "--launcher", "submitit-local", "--no-wait", *args)
    assert code == 0 and "Submitted 1 run(s)" in console, console[-3000:]
    train_pid = int(wait_for_file(marker, 120))  # train.py waits at step 120
    code, console = run_study(spec, "--out", out, "--launcher", "submitit-local", "--no-wait", *args)
    assert code == 0 and "Nothing to submit: 1 run(s) already queued or running" in console, console[-3000:]

    job_process = parent_pid(train_pid)  # submitit's process for the job, which owns the requeue
    os.kill(job_process, signal.SIGUSR1)
    (job_id,) = recorded_jobs(out).values()
    wait_until(lambda: pid_gone(job_id), 240, "the job did not save, requeue and finish")

    code, console = run_study(spec, "--out", out, "--launcher", "submitit-local", *args)
    assert code == 0 and "1 of 1 runs already finished" in console, console[-3000:]
    assert_resumed_once_like_the_reference(out, reference)


def test_slurm_options_from_the_study_file_and_flags_are_checked_before_anything_is_submitted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from studies.slurm_options import minutes, slurm_options

    options = slurm_options({"partition": "gpu", "time": "1:30:00", "gpus_per_task": 1, "sbatch": {"constraint": "a100"}},
                            {"time": "2-00:00:00", "cpus_per_task": "8", "sbatch": ["exclude=node01"], "mem": None})  # fmt: skip
    params = options.executor_parameters()
    assert params["time"] == 2 * 24 * 60 and params["cpus_per_task"] == 8 and params["gpus_per_task"] == 1 and params["partition"] == "gpu"
    assert params["additional_parameters"] == {"requeue": True, "constraint": "a100", "exclude": "node01"}
    assert [minutes(v, "t") for v in (90, "90", "1:30:00", "10:30", "1-02:00")] == [90, 90, 90, 11, 26 * 60]
    spec = study_file(tmp_path, seeds="[0]", text="name: s\nconfig: {root}/configs/mlp.yaml\nseeds: {seeds}\nslurm: {{time: soon}}\n")
    assert main([str(spec), "--out", str(tmp_path / "o"), "--launcher", "slurm"]) == 2
    assert "slurm.time: a time limit is minutes or [D-]HH:MM[:SS], got 'soon'" in capsys.readouterr().err
    spec = study_file(tmp_path, seeds="[0]", text="name: s\nconfig: {root}/configs/mlp.yaml\nseeds: {seeds}\n")
    assert main([str(spec), "--out", str(tmp_path / "o"), "--launcher", "slurm", "--slurm.cpus_per_task", "0"]) == 2
    assert "--slurm.cpus_per_task: must be an integer >= 1, got '0'" in capsys.readouterr().err
    assert main([str(spec), "--out", str(tmp_path / "o"), "--slurm.partition", "gpu"]) == 2
    assert "--no-wait and --slurm.* flags are for --launcher slurm" in capsys.readouterr().err
    assert not (tmp_path / "o").exists(), "refused before the study directory was made"


def test_without_sbatch_the_slurm_launcher_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    spec = study_file(tmp_path, seeds="[0]", text="name: s\nconfig: {root}/configs/mlp.yaml\nseeds: {seeds}\n")
    assert main([str(spec), "--out", str(tmp_path / "o"), "--launcher", "slurm"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("error: --launcher slurm: no sbatch on this machine's PATH"), err


def test_a_run_outcome_is_read_from_its_record_not_its_console(tmp_path: Path) -> None:
    """A phase's error comes from the outcome file train.py writes; the launcher never reads the console."""
    from studies.spec import parse_spec
    from studies.tasks import TaskPlanner

    spec = parse_spec(tmp_path / "s.yaml", "name: s\nconfig: configs/mlp.yaml\nseeds: [0]\n")
    planner = TaskPlanner(spec, tmp_path / "out", [])
    task = planner.task(spec.cells()[0], 0)
    planner.prepare(task)
    (task.path / "train.log").write_text("error: text a launcher must not parse\n")
    task.outcome_file().write_text(json.dumps({"exit_code": 2, "error": "--data.data_dir /nope: no such folder"}))
    assert planner.finish(task, 2) == "done"
    assert json.loads((task.path / "study_run.json").read_text())["fit"] == {"exit_code": 2, "error": "--data.data_dir /nope: no such folder"}
    task.phase = "fit"
    planner.prepare(task)
    assert not task.outcome_file().exists(), "a stale outcome never answers for the next launch"
    assert planner.finish(task, 75) == "retry", "ExitCode.BUSY: the run directory was in use; try again"


def test_train_py_tells_a_launcher_how_it_ended_through_its_exit_code_and_outcome_file(data: Path, tmp_path: Path) -> None:
    """Bad input: exit 2 and the one-line error; a run directory in use: exit 75 (ExitCode.BUSY), so a launcher
    retries it later; no launcher has to match the console's text for either."""
    import subprocess
    import sys

    from core.run_layout import ExitCode
    from tests.cli_helpers import ROOT, base_args, run_script

    outcome = tmp_path / "outcome.json"
    bad = run_script("fit", *base_args(data, tmp_path / "runs", "--trainer.max_steps", "x"), env={"CIFAR_OUTCOME_FILE": str(outcome)}, timeout=120)
    record = json.loads(outcome.read_text())
    assert bad.returncode == record["exit_code"] == ExitCode.BAD_INPUT
    assert f"error: {record['error']}" == bad.stderr.strip().splitlines()[-1] and "--trainer.max_steps" in record["error"]

    args = base_args(data, tmp_path / "runs", "--trainer.max_steps", "2", "--run_name", "busy", "--ckpt_path", "last")
    assert run_script("fit", *args, timeout=120).returncode == 0
    run_dir = tmp_path / "runs" / "busy" / "version_0"
    holder = subprocess.Popen([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); from cli.run_dirs import lock_run_dir; "
                               f"from pathlib import Path; lock_run_dir(Path({str(run_dir)!r})); print('locked', flush=True); sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        busy = run_script("fit", *args, env={"CIFAR_OUTCOME_FILE": str(outcome)}, timeout=120)
    finally:
        holder.communicate("")
    record = json.loads(outcome.read_text())
    assert busy.returncode == record["exit_code"] == ExitCode.BUSY == 75, busy.stderr[-2000:]
    assert f"is in use by process {holder.pid}" in record["error"]
