"""A study's runs forked from the study process (``studies/launchers/forked.py``) keep every guarantee of a
``train.py`` subprocess: bit-identical to the same run launched alone, isolated (a crash, a divergence, a
SIGKILL end that run only), each with its own console log, the same exit codes and outcome records, resumed
by a re-run; and the study forks only when that is safe (no other thread, no torch thread pool, no GPU).

The studies run as ``scripts/study.py`` processes, as a user starts them: whether a test process may fork
depends on what ran in it before (xdist's threads, torch's thread pool), a fresh study process's does not.
"""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from studies.main import main
from tests.cli_helpers import ROOT, script_env
from tests.conftest import write_batches
from tests.helpers.once import MARKER_DIR_ENV
from tests.launcher_helpers import summary_rows, tiny_args

ONE = """name: one
config: {root}/configs/mlp.yaml
flags: {data.preprocessing: standardize}
seeds: [0]
"""
ONCE = "{trainer.callbacks: [{class_path: tests.helpers.once.OnceAtStep, init_args: {step: 25, action: %s}}]}"
OUTCOMES = f"""name: outcomes
config: {{root}}/configs/mlp.yaml
flags: {{data.preprocessing: standardize}}
cells:
  ok: {{model.init_args.optimizer.init_args.lr: 0.05}}
  diverged: {{model.init_args.optimizer.init_args.lr: 1.0e6}}
  refused: {{model.init_args.lr_multipliers: {{nothing_matches_this: 2.0}}}}
  crash: {ONCE % "raise"}
  killed: {ONCE % "SIGKILL"}
seeds: [0]
"""  # a run that refuses its flags (exit 2), one that crashes once (1), one SIGKILLed once (-9), next to one ok and one diverged (3)
RNG = ["--model.init_args.dropout", "0.2", "--data.augment", "true"]  # the global and the loader RNG both matter


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_batches(root)
    return root


def spec_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text.replace("{root}", str(ROOT)))
    return path


def study_script(*argv: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``scripts/study.py ARGV`` as its own process, one thread per run."""
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "study.py"), *map(str, argv)], cwd=ROOT, capture_output=True, text=True,
                          env=script_env({"OMP_NUM_THREADS": "1", **(env or {})}), timeout=1800)  # fmt: skip


def launches(log: Path) -> list[str]:
    """The header line of every launch in a run's ``train.log``."""
    return [line for line in log.read_text().splitlines() if line.startswith("=== ")]


def assert_same_run(run_dir: Path, reference: Path) -> None:
    a = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)
    assert (a["global_step"], a["epoch"]) == (b["global_step"], b["epoch"])
    for key, value in b["state_dict"].items():
        assert torch.equal(a["state_dict"][key], value), f"{key} differs from {reference}'s"
    for x, y in zip(a["optimizer_states"][0]["state"].values(), b["optimizer_states"][0]["state"].values(), strict=True):
        assert all(torch.equal(x[k], y[k]) for k in y), "the optimizer state differs"
    for name in ("val_acc.csv", "train_loss.csv"):
        assert (run_dir / name).read_bytes() == (reference / name).read_bytes(), f"{name} differs from {reference}'s"


@pytest.mark.slow
def test_a_forked_run_is_bit_identical_to_the_same_run_alone_and_to_a_subprocess_one(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = spec_file(tmp_path, ONE)
    args = [*tiny_args(data, steps=40, every=20), *RNG]
    forked = study_script(spec, "--out", tmp_path / "forked", "--fork", *args)
    assert forked.returncode == 0, forked.stdout[-3000:] + forked.stderr[-3000:]
    assert "Runs start as subprocesses" not in forked.stdout + forked.stderr, "a fresh study process forks its runs"
    log = tmp_path / "forked" / "one" / "seed0" / "train.log"
    (header,) = launches(log)
    assert " fit (forked from the study process " in header, header

    argv = shlex.split(header.split(": ", 1)[1])  # the run's own command line, launched alone elsewhere
    argv[argv.index("--runs_dir") + 1] = str(tmp_path / "alone")
    alone = subprocess.run(argv, cwd=ROOT, env=script_env({"OMP_NUM_THREADS": "1"}), capture_output=True, text=True, timeout=600)
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert_same_run(tmp_path / "forked" / "one" / "seed0" / "version_0", tmp_path / "alone" / "seed0" / "version_0")

    # The subprocess path, taken because a thread runs in this (in-process) study: said in one line, same run.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as the study processes above had it (their runs' float round-off)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="bystander", daemon=True)
    thread.start()
    console = io.StringIO()
    try:
        with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
            code = main([str(spec), "--out", str(tmp_path / "subprocess"), "--fork", *args])
    finally:
        stop.set()
    assert code == 0, console.getvalue()[-3000:]
    assert console.getvalue().count("Runs start as subprocesses (imports paid per run): the study process runs 1 other thread(s) (bystander)") == 1
    (header,) = launches(tmp_path / "subprocess" / "one" / "seed0" / "train.log")
    assert "(forked from" not in header
    assert_same_run(tmp_path / "subprocess" / "one" / "seed0" / "version_0", tmp_path / "alone" / "seed0" / "version_0")
    assert summary_rows(tmp_path / "subprocess") == summary_rows(tmp_path / "forked")


@pytest.mark.slow
def test_crashes_divergence_refusals_and_kills_end_their_run_only_as_with_subprocesses_and_resume(data: Path, tmp_path: Path) -> None:
    """Each forked run's record is its exit code as train.py gives it (0, 3 diverged, 2 refused, 1 crashed,
    128+9 killed) and the one-line error from its outcome file, read as for a subprocess (whose records this
    test no longer re-runs: test_study_launchers.py checks 2 and 75 through a real train.py subprocess)."""
    spec = spec_file(tmp_path, OUTCOMES)
    args = tiny_args(data, steps=40, every=20)
    out = tmp_path / "forked"
    (tmp_path / "markers").mkdir()
    done = study_script(spec, "--out", out, "--jobs", "2", "--fork", *args, env={MARKER_DIR_ENV: str(tmp_path / "markers")})
    console = done.stdout + done.stderr
    assert done.returncode == 1, console[-3000:]  # some runs failed or did not finish
    record = {c: json.loads((out / c / "seed0" / "study_run.json").read_text())["fit"] for c in ("ok", "diverged", "refused", "crash", "killed")}
    for cell in record:
        assert "(forked from the study process" in launches(out / cell / "seed0" / "train.log")[0], cell
    assert (record["ok"]["exit_code"], record["diverged"]["exit_code"], record["refused"]["exit_code"], record["killed"]["exit_code"]) == (0, 3, 2, 128 + 9)
    assert record["crash"] == {"exit_code": 1, "error": "RuntimeError: crash at step 25"}
    assert "nothing_matches_this" in record["refused"]["error"] and record["ok"] == {"exit_code": 0, "error": None}
    assert record["diverged"]["error"] is record["killed"]["error"] is None  # a divergence is told in status.json; a SIGKILL writes nothing
    assert [r["status"] for r in summary_rows(out)] == ["ok", "diverged", "failed", "failed", "pending"]
    assert "killed seed 0: stopped by signal 9; re-run the study to resume it" in console

    out = tmp_path / "forked"
    logs = {cell: (out / cell / "seed0" / "train.log").read_text() for cell in record}
    assert logs["refused"].rstrip().splitlines()[-1] == f"error: {record['refused']['error']}", "the one-line error is the run's last line"
    assert "Traceback (most recent call last)" in logs["crash"] and logs["crash"].rstrip().endswith("RuntimeError: crash at step 25")
    for cell, log in logs.items():  # each run's console is in its own log, and only there
        assert f"Run:   {out / cell / 'seed0' / 'version_0'}  (fit)" in log or cell == "refused", log[-2000:]
        assert ("crash at step 25" in log) == (cell == "crash") and ("Trained 40 steps." in log) == (cell in ("ok",)), (cell, log[-2000:])

    again = study_script(spec, "--out", out, "--jobs", "2", "--fork", *args, env={MARKER_DIR_ENV: str(tmp_path / "markers")})
    assert again.returncode == 1, (again.stdout + again.stderr)[-3000:]  # the refused run fails again
    assert [(r["cell"], r["status"]) for r in summary_rows(out)] == [("ok", "ok"), ("diverged", "diverged"), ("refused", "failed"), ("crash", "ok"), ("killed", "ok")]
    for cell in ("crash", "killed"):
        log = (out / cell / "seed0" / "train.log").read_text()
        assert len(launches(out / cell / "seed0" / "train.log")) == 2 and "Resuming" in log, log[-2000:]
        assert '"segments": 2' in (out / cell / "seed0" / "version_0" / "status.json").read_text()
    assert len(launches(out / "ok" / "seed0" / "train.log")) == 1, "finished runs are not launched again"


FORK_CHECK = """
import sys, threading
sys.path.insert(0, {root!r})
from studies.launchers.forked import fork_refusal
print(fork_refusal([]))
print(fork_refusal(["0"]))
stop = threading.Event(); t = threading.Thread(target=stop.wait, name="beat"); t.start()
print(fork_refusal([])); stop.set(); t.join()
import os, torch
pid = os.fork()  # a fork stops OpenBLAS's pool (NumPy's): a thread count that allowed for it would miss torch's
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
torch.ones(1 << 20).sin().sum()  # a multi-threaded op: torch's (OpenMP) pool starts in this process
print(fork_refusal([]))
"""


def test_the_study_forks_only_while_no_thread_no_torch_pool_and_no_gpu_is_in_the_way() -> None:
    done = subprocess.run([sys.executable, "-c", FORK_CHECK.format(root=str(ROOT))], env=script_env({"OMP_NUM_THREADS": "2"}), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    fresh, gpus, thread, pool = done.stdout.strip().splitlines()
    assert fresh == "None", "a process that imported train.py's modules and ran no torch op may fork (OpenBLAS's pool is fork-safe)"
    assert gpus == "the runs use GPUs (forked children are untested with CUDA)"
    assert thread == "the study process runs 1 other thread(s) (beat)"
    assert pool.startswith("the study process runs 1 native thread(s) (torch's CPU thread pool"), pool
