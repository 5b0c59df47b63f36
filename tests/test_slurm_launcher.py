"""``scripts/study.py --launcher slurm`` against a real SLURM (``scripts/local_slurm.sh start``; skipped with the
reason where none answers, a failure in CI): the same summary as the local launcher, ``scancel --signal=USR1``
saving, requeueing and finishing with the uninterrupted result, and a killed study process that, re-run,
submits nothing already queued, running or finished."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_helpers import ROOT, script_env
from tests.helpers.pause_at_step import MARKER_ENV
from tests.launcher_helpers import assert_resumed_once_like_the_reference, recorded_jobs, shared_reference, summary_rows, tiny_args, wait_for_file
from tests.slurm_helpers import SlurmCluster, wait_until_gone

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
pytest.importorskip("submitit")
JOB_TIMEOUT_S = 300


from tests.test_studies import data  # noqa: E402,F401  (the study tests' tiny data)


def study(*argv: object, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "study.py"), *map(str, argv)], cwd=ROOT, capture_output=True, text=True,
                          env=script_env({"OMP_NUM_THREADS": "1", **(env or {})}), timeout=JOB_TIMEOUT_S * 2)  # fmt: skip


def test_a_2x2_study_through_slurm_ends_with_the_local_launchers_summary(slurm_cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    spec, data, local = shared_reference(tmp_path_factory, "grid")
    slurm = study(spec, "--out", tmp_path / "slurm", "--launcher", "slurm", "--slurm.cpus_per_task", "1", "--slurm.time", "10", *tiny_args(data))
    assert slurm.returncode == 0, (slurm.stdout + slurm.stderr)[-3000:]
    assert "Submitted 4 run(s) as SLURM job array" in slurm.stdout + slurm.stderr
    assert summary_rows(tmp_path / "slurm") == summary_rows(local)
    assert len(set(recorded_jobs(tmp_path / "slurm").values())) == 4


def test_scancel_usr1_saves_requeues_and_the_run_finishes_as_if_uninterrupted(slurm_cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    spec, data, reference = shared_reference(tmp_path_factory, "paused")
    args = tiny_args(data, steps=200)

    marker, out = tmp_path / "paused.pid", tmp_path / "requeued"
    launch = [sys.executable, str(ROOT / "scripts" / "study.py"), str(spec), "--out", str(out), "--launcher", "slurm", "--slurm.time", "10", *map(str, args)]
    follower = subprocess.Popen(launch, cwd=ROOT, env=script_env({"OMP_NUM_THREADS": "1", MARKER_ENV: str(marker)}), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_file(marker, JOB_TIMEOUT_S)  # the job's train.py waits at step 120
    finally:
        follower.kill()  # the study process dies; its job does not
        follower.wait()
    (job_id,) = recorded_jobs(out).values()
    again = study(spec, "--out", out, "--launcher", "slurm", "--no-wait", *args, env={MARKER_ENV: str(marker)})
    assert again.returncode == 0 and "Nothing to submit: 1 run(s) already queued or running" in again.stdout + again.stderr, again.stderr[-3000:]
    assert recorded_jobs(out) == {"one/seed0": job_id}

    subprocess.run(["scancel", "--signal=USR1", job_id], check=True, timeout=30)
    wait_until_gone(job_id, JOB_TIMEOUT_S)  # saved, requeued (same job id), resumed, finished
    final = study(spec, "--out", out, "--launcher", "slurm", *args)
    assert final.returncode == 0 and "1 of 1 runs already finished" in final.stdout, (final.stdout + final.stderr)[-3000:]
    assert_resumed_once_like_the_reference(out, reference)


def test_a_search_through_slurm_runs_two_workers_on_one_journal(slurm_cluster: SlurmCluster, data: Path, tmp_path: Path) -> None:
    """``--launcher slurm`` on a search study: 2 worker jobs share DIR/optuna.journal; 4 trials in all, on 4 cells."""
    import csv

    import optuna

    from studies.search_storage import journal

    spec = tmp_path / "search.yaml"
    spec.write_text(f"name: search\nconfig: {ROOT}/configs/mlp.yaml\nflags: {{data.preprocessing: standardize}}\nseeds: [0]\n"
                    "search:\n  trials: 4\n  params:\n    model.init_args.optimizer.init_args.lr: {low: 0.01, high: 0.1, log: true}\n")  # fmt: skip
    out = tmp_path / "out"
    res = study(spec, "--out", out, "--launcher", "slurm", "--slurm.workers", "2", "--slurm.time", "10", *tiny_args(data, steps=10, every=10))
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    assert "Submitted 2 search worker job(s)" in res.stdout
    study_ = optuna.load_study(study_name="search", storage=journal(out / "optuna.journal"))
    complete = [t for t in study_.trials if t.state == optuna.trial.TrialState.COMPLETE]
    cells = sorted(p.parent.name for p in out.glob("*/seed0"))
    assert len(complete) == 4 and len(cells) == 4, [(t.number, t.state, t.user_attrs) for t in study_.trials]
    assert sorted(f"lr={t.params['model.init_args.optimizer.init_args.lr']:g}" for t in complete) == cells, "no trial evaluated twice"
    assert len({t.user_attrs["worker"] for t in complete}) == 2, "both worker jobs ran trials"
    with open(out / "summary.csv", newline="") as fh:
        assert sorted(r["cell"] for r in csv.DictReader(fh)) == cells
