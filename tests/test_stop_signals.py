"""SIGINT/SIGTERM outside the training steps: during start-up (nothing produced yet) and while a run closes.

During training a signal is a request saved at the step boundary (``tests/test_resume.py``). Before that, the
run has produced nothing, so it stops at once, says so in one line and leaves nothing behind; while it closes
(figures, status, loggers), a further Ctrl-C may cut figures short but never costs a data file. The signals
come from this test process, at moments the helpers mark: ``tests/helpers/startup.py`` (the setup hook) and
``tests/helpers/slow_figures.py`` (inside matplotlib's ``savefig``).
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli_helpers import ROOT, base_args, run_cli, script_env
from tests.helpers.startup import MARKER_ENV

CALLBACKS = "trainer:\n  callbacks:\n"
PAUSE = "    - class_path: tests.helpers.startup.PauseInSetup\n"


def start(args: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), *map(str, args)], cwd=ROOT, env=script_env(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def signal_when(proc: subprocess.Popen, marker: Path, sig: int, timeout: float = 300) -> tuple[str, str]:
    """Send ``sig`` to ``proc`` as soon as ``marker`` exists; its stdout and stderr once it exited."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the run never reached the marked moment"
        time.sleep(0.05)
    proc.send_signal(sig)
    return proc.communicate(timeout=timeout)


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "callbacks.yaml"
    path.write_text(CALLBACKS + text)
    return path


@pytest.mark.parametrize("ddp", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["one_process", "ddp"])
def test_sigterm_during_startup_leaves_no_run_directory_and_says_so(ddp: bool, batches_dir: Path, tmp_path: Path) -> None:
    """SIGTERM while the run starts (data loaded, DDP initialised, model not yet trained): before, exit -15 with
    no message and a directory left at status 'running', step 0; under DDP rank 1's 45-line traceback."""
    runs, marker = tmp_path / "runs", tmp_path / "starting"
    extra = ["--trainer.devices", "2", "--trainer.strategy", "ddp"] if ddp else []
    proc = start(["fit", *base_args(batches_dir, runs, "--trainer.max_steps", "4", "--run_name", "early", *extra),
                  "--config", config(tmp_path, PAUSE)], env={MARKER_ENV: str(marker)})
    out, err = signal_when(proc, marker, signal.SIGTERM)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Traceback" not in err and "Error" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if "Stopped" in line]
    assert lines == [f"Stopped by SIGTERM during start-up, before the run produced anything; its directory {runs / 'early' / 'version_0'} was removed."], err
    assert not (runs / "early").exists(), "a run that produced nothing leaves no directory"
    if ddp:
        assert not [p for p in Path("/proc").glob("[0-9]*") if str(tmp_path) in _cmdline(p)], "rank 1 is still running"


def test_ctrl_c_while_train_py_still_imports_is_the_same_one_line(batches_dir: Path, tmp_path: Path) -> None:
    """Before main() installs its handlers (torch and Lightning take seconds to import) Ctrl-C was a 76-line
    KeyboardInterrupt traceback from inside ``import lightning``."""
    proc = start(["fit", *base_args(batches_dir, tmp_path / "runs", "--trainer.max_steps", "4")])
    deadline = time.monotonic() + 120
    while "libtorch_cpu" not in _maps(proc.pid):  # torch is being imported: train.py's first lines have run
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT and "Traceback" not in err, err[-3000:]
    assert [line for line in err.splitlines() if "Stopped" in line] == ["Stopped by SIGINT (Ctrl-C) during start-up, before the run produced anything."], err
    assert not (tmp_path / "runs").exists()


def _maps(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return ""


def _cmdline(proc_dir: Path) -> str:
    try:
        return (proc_dir / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def test_ctrl_c_during_the_startup_of_a_resume_puts_its_status_back(batches_dir: Path, tmp_path: Path) -> None:
    runs, marker = tmp_path / "runs", tmp_path / "starting"
    args = ["fit", *base_args(batches_dir, runs, "--trainer.max_steps", "2", "--run_name", "again"), "--config", config(tmp_path, PAUSE)]
    run_cli(*args)
    run_dir = runs / "again" / "version_0"
    before = (run_dir / "status.json").read_text()
    last = (run_dir / "checkpoints" / "last.ckpt").read_bytes()
    proc = start([*args, "--ckpt_path", "last"], env={MARKER_ENV: str(marker)})
    out, err = signal_when(proc, marker, signal.SIGINT)
    assert proc.returncode == 128 + signal.SIGINT, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert f"Stopped by SIGINT (Ctrl-C) during start-up, before the run produced anything; {run_dir} is as it was." in err.splitlines(), err
    assert (run_dir / "status.json").read_text() == before, "the resume that never trained leaves the run's record as it was"
    assert (run_dir / "checkpoints" / "last.ckpt").read_bytes() == last


@pytest.mark.parametrize("figure,stall", [("lr_schedule.png", 3), ("learning_curves.png", 240)])
def test_second_ctrl_c_while_the_run_closes_keeps_the_data_files(figure: str, stall: int, batches_dir: Path, tmp_path: Path) -> None:
    """The first Ctrl-C stops the run at step 3; the second comes while it saves a closing figure: another
    callback's, drawn before the learning curves (it is finished: the signal waits), or the curves' own (cut
    short at once). Before: a 37-frame KeyboardInterrupt traceback from matplotlib, train_loss.csv and
    val_acc.csv missing until a resume."""
    runs, marker = tmp_path / "runs", tmp_path / "saving"
    cfg = config(tmp_path, "    - class_path: tests.helpers.kill.SignalAtStep\n      init_args: {step: 3, signal: SIGINT}\n"
                           "    - class_path: tests.helpers.slow_figures.SlowFigure\n"
                           f"      init_args: {{name: {figure}, marker: {marker}, seconds: {stall}}}\n")
    proc = start(["fit", *base_args(batches_dir, runs, "--trainer.max_steps", "6", "--run_name", "closing"), "--config", cfg])
    sent = time.monotonic()
    out, err = signal_when(proc, marker, signal.SIGINT)
    assert proc.returncode == 128 + signal.SIGINT, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    if figure == "learning_curves.png":
        assert time.monotonic() - sent < stall, "the figure was cut short, not waited for"
    run_dir = runs / "closing" / "version_0"
    losses = list(csv.DictReader(open(run_dir / "train_loss.csv")))
    assert [int(r["step"]) for r in losses] == [1, 2, 3], "the data files are written in full"
    assert (run_dir / "val_acc.csv").is_file()
    assert not (run_dir / "learning_curves.png").exists()
    notes = [line for line in err.splitlines() if "during shutdown" in line]
    assert notes == ["Stopped during shutdown by SIGINT (Ctrl-C): learning_curves.png not drawn; the resume command above redraws it."], err
    assert json.loads((run_dir / "status.json").read_text())["status"] == "interrupted"


def test_sigterm_does_not_tell_to_press_ctrl_c(batches_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from callbacks.interrupts import RunInterrupted

    cfg = config(tmp_path, "    - class_path: tests.helpers.kill.SignalAtStep\n      init_args: {step: 2, signal: SIGTERM}\n")
    with pytest.raises(RunInterrupted):
        run_cli("fit", *base_args(batches_dir, tmp_path / "runs", "--trainer.max_steps", "5"), "--config", cfg)
    said = [line for line in capsys.readouterr().out.splitlines() if "received" in line]
    assert said == ["SIGTERM received: saving last.ckpt at the end of this step, then stopping (a SIGINT stops at once without saving)."]


def test_second_ctrl_c_during_training_stops_at_once_and_the_run_still_closes(batches_dir: Path, tmp_path: Path) -> None:
    """Two Ctrl-C within one step: the second stops in the middle of it, without saving; the closing work still
    writes the data files, the curves and an 'interrupted' status (exit code 130 from train.py)."""
    from callbacks.interrupts import StoppedAtOnce

    twice = "    - class_path: tests.helpers.kill.SignalAtStep\n      init_args: {step: 4, signal: SIGINT}\n"
    runs = tmp_path / "runs"
    with pytest.raises(StoppedAtOnce) as stopped:
        run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_steps", "8", "--run_name", "twice"), "--config", config(tmp_path, twice * 2))
    assert stopped.value.exit_code == 130 and stopped.value.global_step == 4
    run_dir = runs / "twice" / "version_0"
    assert json.loads((run_dir / "status.json").read_text())["status"] == "interrupted"
    # Stopped inside step 4's callbacks, before the learning curves recorded it.
    assert [int(r["step"]) for r in csv.DictReader(open(run_dir / "train_loss.csv"))] == [1, 2, 3]
    assert (run_dir / "learning_curves.png").is_file()


def test_a_closed_output_pipe_ends_the_run_quietly_as_sigpipe(batches_dir: Path, tmp_path: Path) -> None:
    """``train.py fit ... | head -1``: before, exit 1 (an unexpected error) and a BrokenPipeError traceback."""
    proc = start(["fit", *base_args(batches_dir, tmp_path / "runs", "--trainer.max_steps", "40")])
    proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does after its line
    err = proc.stderr.read()
    proc.wait(timeout=300)
    assert proc.returncode == 128 + signal.SIGPIPE and "Traceback" not in err, (proc.returncode, err[-3000:])
