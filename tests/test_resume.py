"""Interrupted runs resume to exactly the run that was never interrupted: weights and every output file.

One uninterrupted reference run is shared by all cases; each case interrupts the same run in its own way
(SIGKILL, Ctrl-C, SIGTERM, a SLURM requeue), resumes it the way a user or a scheduler would, and compares.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
from pathlib import Path

import pytest
import torch

from tests.cli_helpers import ROOT, base_args, run_cli, run_script, script_env
from tests.conftest import write_batches

# Dropout (global RNG) + augmentation (loader RNG) + several epochs + a validation every 4 steps inside
# 6-step epochs: everything that could drift on resume. CSVLogger: its metrics.csv is compared too.
RESUMABLE = ["--trainer.max_epochs", "4", "--model.dropout", "0.2", "--data.augment", "true", "--trainer.deterministic", "true",
             "--trainer.val_check_interval", "4", "--trainer.check_val_every_n_epoch", "null", "--trainer.log_every_n_steps", "2"]
TOTAL_STEPS = 24  # 120 train images / batch 20 = 6 steps per epoch, 4 epochs
# Files every run writes whose content must not depend on having been interrupted.
OUTPUTS = ["train_loss.csv", "val_acc.csv", "lr_schedule.csv", "per_class_accuracy.json", "learning_curves.png",
           "lr_schedule.png", "per_class_accuracy_val.png", "confusion_matrix_val.png"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_batches(root)
    return root


@pytest.fixture(scope="module")
def reference(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("reference")
    res = run_script("fit", *base_args(data, runs, *RESUMABLE, "--run_name", "ref", logger="CSVLogger"))
    assert res.returncode == 0, res.stderr[-3000:]
    return runs / "ref" / "version_0"


def signal_config(tmp_path: Path, **init_args: object) -> Path:
    cfg = tmp_path / "signal.yaml"
    args = ", ".join(f"{k}: {v}" for k, v in init_args.items())
    cfg.write_text(f"trainer:\n  callbacks:\n    - class_path: tests.helpers.kill.SignalAtStep\n      init_args: {{{args}}}\n")
    return cfg


def assert_same_run(run_dir: Path, reference: Path, with_logger_file: bool) -> None:
    a = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == TOTAL_STEPS
    for key, value in b["state_dict"].items():
        assert torch.equal(a["state_dict"][key], value), f"{key} differs after interruption + resume"
    for name in OUTPUTS + (["metrics.csv"] if with_logger_file else []):
        assert (run_dir / name).read_bytes() == (reference / name).read_bytes(), f"{name} differs from the uninterrupted run's"
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["version_0"], "resumed in place: no second run directory"


@pytest.mark.slow
def test_sigkill_right_after_a_validation_then_resume_writes_the_same_outputs(data: Path, reference: Path, tmp_path: Path) -> None:
    """last.ckpt is saved at the validation of step 4; the kill comes at step 7. The resumed run's curves
    must still hold the step-4 validation point (it was lost before LastCheckpoint ran after the others)."""
    runs = tmp_path / "runs"
    args = base_args(data, runs, *RESUMABLE, "--run_name", "kill", logger="CSVLogger")
    crashed = run_script("fit", *args, "--config", signal_config(tmp_path, step=7))
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    run_dir = runs / "kill" / "version_0"
    assert (run_dir / "config.yaml").is_file(), "an interrupted run keeps its resolved config"
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    killed = json.loads((run_dir / "status.json").read_text())
    assert killed["status"] == "running", "a killed run is not mistaken for a finished one"
    killed_segment_s = (run_dir / "checkpoints" / "last.ckpt").stat().st_mtime - killed["segment_started"]
    resumed = run_script("fit", *args, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "completed" and status["segments"] == 2, status
    assert status["wall_s"] >= round(killed_segment_s, 1) > 0, "the killed segment's time up to its last.ckpt is counted"
    # metrics.csv is flushed every 100 steps by CSVLogger: a SIGKILL loses the unflushed rows (signals don't).
    assert_same_run(run_dir, reference, with_logger_file=False)


@pytest.mark.slow
@pytest.mark.parametrize("sig,step", [("SIGINT", 3), ("SIGTERM", 8)])
def test_sigint_and_sigterm_save_the_current_step_and_the_printed_command_resumes_exactly(sig: str, step: int, data: Path, reference: Path, tmp_path: Path) -> None:
    """Step 3 comes before the first validation (nothing saved yet); step 8 is itself a validation step."""
    runs = tmp_path / "runs"
    stopped = run_script("fit", *base_args(data, runs, *RESUMABLE, "--run_name", "sig", logger="CSVLogger"), "--config", signal_config(tmp_path, step=step, signal=sig))
    assert stopped.returncode == 128 + getattr(signal, sig), stopped.stderr[-2000:]
    run_dir = runs / "sig" / "version_0"
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == step, "saved at the step it was stopped"
    command = re.search(r"Resume with:\n  (\S+ \S*train\.py fit .*)\n", stopped.stderr)
    assert command, stopped.stderr[-2000:]
    resumed = subprocess.run(command.group(1), shell=True, cwd=ROOT, env=script_env(), capture_output=True, text=True, timeout=300)  # as printed
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(run_dir, reference, with_logger_file=True)
    assert not list(run_dir.glob("config.resume-*.yaml")), "the printed command resumes with the run's own config"
    assert '"segments": 2' in (run_dir / "status.json").read_text() and '"completed"' in (run_dir / "status.json").read_text()


@pytest.mark.slow
def test_slurm_requeue_lands_in_the_same_run_directory_and_resumes(data: Path, reference: Path, tmp_path: Path) -> None:
    """Lightning's SLURM path: SIGUSR1 -> hpc_ckpt_<n>.ckpt + `scontrol requeue`; SLURM kills the job and
    later starts the *same command* again, with the same job id."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'scontrol.log'}\n")
    scontrol.chmod(scontrol.stat().st_mode | stat.S_IEXEC)
    slurm = {"SLURM_JOB_ID": "4242", "SLURM_NTASKS": "1", "SLURM_JOB_NAME": "cifar", "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
             "SLURM_NODEID": "0", "SLURM_NTASKS_PER_NODE": "1", "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    runs = tmp_path / "runs"
    args = base_args(data, runs, *RESUMABLE, "--run_name", "slurm", logger="CSVLogger")
    first = run_script("fit", *args, "--config", signal_config(tmp_path, step=10, signal="SIGUSR1", then_kill=1), env=slurm)
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    run_dir = runs / "slurm" / "version_0"
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "4242"]
    assert (run_dir / "hpc_ckpt_1.ckpt").is_file(), "Lightning's requeue checkpoint lands in the run directory"
    requeued = run_script("fit", *args, env={**slurm, "SLURM_RESTART_COUNT": "1"})
    assert requeued.returncode == 0, requeued.stderr[-3000:]
    assert "SLURM job 4242 requeued: resuming" in requeued.stdout
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == TOTAL_STEPS
    assert sorted(p.name for p in runs.joinpath("slurm").iterdir()) == ["version_0"], "the requeued job continued its own run"


def test_ckpt_path_last_starts_a_fresh_run_the_first_time_then_resumes_it(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """One job script for the first launch and every requeue: `fit ... --ckpt_path last`."""
    runs = tmp_path / "runs"
    args = base_args(data, runs, "--run_name", "job", "--ckpt_path", "last")
    first = run_cli("fit", *args, "--trainer.max_steps", "4")
    assert "has no checkpoint under" in capsys.readouterr().out and first.trainer.global_step == 4
    second = run_cli("fit", *args, "--trainer.max_steps", "6")
    assert "Resuming" in capsys.readouterr().out and second.trainer.global_step == 6
    assert sorted(p.name for p in (runs / "job").iterdir()) == ["version_0"]
    assert (runs / "job" / "version_0" / "config.resume-1.yaml").is_file(), "a resume with other settings keeps both configs"


def test_onecycle_resume_mid_epoch_continues_with_the_right_batches(data: Path, tmp_path: Path) -> None:
    """OneCycleLR reads trainer.estimated_stepping_batches, after which Lightning 2.6 does not hand the
    checkpoint's state to a resumable loader (Lightning issue #20550); the DataModule resumes it itself."""
    runs = tmp_path / "runs"
    onecycle = ["--model.scheduler", "torch.optim.lr_scheduler.OneCycleLR", "--model.scheduler.max_lr", "0.1", "--trainer.max_epochs", "2",
                "--data.augment", "true", "--last_checkpoint.every_n_train_steps", "4", "--trainer.deterministic", "true"]
    full = run_cli("fit", *base_args(data, runs, *onecycle, "--run_name", "full"))
    crash = tmp_path / "crash.yaml"
    crash.write_text("trainer:\n  callbacks:\n    - class_path: tests.helpers.kill.RaiseAtStep\n      init_args: {step: 5}\n")
    with pytest.raises(RuntimeError, match="crash at step 5"):
        run_cli("fit", *base_args(data, runs, *onecycle, "--run_name", "part"), "--config", crash)
    part = runs / "part" / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(part, weights_only=True)["global_step"] == 4, "saved mid-epoch (6 steps per epoch)"
    resumed = run_cli("fit", *base_args(data, runs, *onecycle, "--run_name", "part", "--ckpt_path", "last"))
    assert resumed.trainer.global_step == full.trainer.global_step == 12
    a = torch.load(part, weights_only=True)["state_dict"]
    b = torch.load(runs / "full" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in b), "the resumed run trained on other batches than the uninterrupted one"


def test_status_json_follows_every_last_ckpt_while_the_run_trains(data: Path, tmp_path: Path) -> None:
    """Before: a running record said the step its segment started from (0 for a first launch) until the run
    ended, however far it got. Now every last.ckpt brings step and wall time up to date, and the wall time
    summed over segments is still counted once."""
    import time

    runs, probe = tmp_path / "runs", tmp_path / "status_at_step_7.json"
    cfg = tmp_path / "probe.yaml"
    cfg.write_text(f"trainer:\n  callbacks:\n    - class_path: tests.helpers.status_probe.StatusAtStep\n      init_args: {{step: 7, copy: {probe}}}\n")
    args = [*base_args(data, runs, "--run_name", "live", "--last_checkpoint.every_n_train_steps", "3"), "--config", str(cfg)]
    run_cli("fit", *args, "--trainer.max_steps", "4")
    status = runs / "live" / "version_0" / "status.json"
    first = json.loads(status.read_text())
    assert first["status"] == "completed" and first["global_step"] == 4 and not probe.exists()
    started = time.monotonic()
    run_cli("fit", *args, "--trainer.max_steps", "9", "--ckpt_path", "last")
    second_s = time.monotonic() - started
    live = json.loads(probe.read_text())
    assert live["status"] == "running" and live["global_step"] == 6, "the step of the newest last.ckpt (every 3 steps)"
    assert live["wall_s_before_segment"] == first["wall_s"] < live["wall_s"]
    final = json.loads(status.read_text())
    assert final["status"] == "completed" and final["global_step"] == 9 and final["segments"] == 2 and "wall_s_before_segment" not in final
    assert live["wall_s"] <= final["wall_s"] <= first["wall_s"] + second_s + 0.1, "each segment's time counted once"
