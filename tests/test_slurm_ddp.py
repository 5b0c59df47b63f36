"""A single ``train.py fit`` across 2 SLURM tasks on one node: ``srun`` starts both ranks itself and Lightning's
SLURM environment (not its own process launcher) joins them into one DDP run.

Needs a real SLURM (``scripts/local_slurm.sh start``); skipped without one, a failure in CI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.cli_helpers import ROOT, base_args, only_run_dir, run_cli, script_env, state_dict_of
from tests.slurm_helpers import SlurmCluster

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

TRAIN_IMAGES = 120  # the fake release's 150 images less --data.val_size 30
BATCH = 20  # per rank


def _srun_fit(tmp_path: Path, data: Path, runs: Path, *extra: str) -> subprocess.CompletedProcess:
    """``srun`` 2 tasks x 1 CPU on one node, each running the same ``train.py fit`` of run ``ddp`` (DDP, 2 devices)."""
    job_name = f"cifar-ddp-test-{tmp_path.name}"
    srun = ["srun", "--nodes", "1", "--ntasks", "2", "--ntasks-per-node", "2", "--cpus-per-task", "1", "--time", "5",
            "--kill-on-bad-exit=1", "--job-name", job_name]
    fit = base_args(data, runs, "--trainer.max_epochs", "1", "--trainer.num_nodes", "1", "--trainer.devices", "2",
                    "--trainer.strategy", "ddp", "--run_name", "ddp", *extra)
    try:
        return subprocess.run([*srun, sys.executable, str(ROOT / "train.py"), "fit", *fit], cwd=ROOT, env=script_env({"OMP_NUM_THREADS": "1"}),
                              capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        subprocess.run(["scancel", "--name", job_name], capture_output=True, timeout=10)  # --time 5 would end it too, later
        raise


@pytest.fixture
def two_cpu_node(slurm_cluster: SlurmCluster) -> None:
    if max(cpus for _, cpus in slurm_cluster.nodes) < 2:
        pytest.skip(f"2 tasks of 1 CPU on one node need a node with 2 CPUs; the cluster has {slurm_cluster.nodes}")


@pytest.mark.usefixtures("two_cpu_node")
def test_srun_with_two_tasks_trains_one_ddp_run_with_both_ranks(batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    res = _srun_fit(tmp_path, batches_dir, runs)
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-3000:])

    run_dir = only_run_dir(runs)  # both ranks in one run directory: rank 1 joined rank 0's
    assert json.loads((run_dir / "status.json").read_text())["status"] == "completed"
    assert (run_dir / "slurm_job_id").read_text().strip().isdigit(), "rank 0 ran as a SLURM job and recorded it"
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert ckpt["global_step"] == TRAIN_IMAGES // (2 * BATCH), "world size 2: each rank took half the epoch"

    # Both ranks' gradients went into every step: the weights are those of one process training on the
    # global batch (the ranks' batches k are the two halves of its batch k, and DDP averages their gradients).
    single = tmp_path / "single"
    run_cli("fit", *base_args(batches_dir, single, "--trainer.max_epochs", "1", "--data.batch_size", str(2 * BATCH), "--run_name", "single"))
    expected = state_dict_of(only_run_dir(single) / "checkpoints" / "last.ckpt")
    got = ckpt["state_dict"]
    weights = [key for key in expected if key.startswith("net.")]
    assert weights and all(torch.allclose(got[key], expected[key], rtol=1e-5, atol=1e-7) for key in weights), {
        key: float((got[key] - expected[key]).abs().max()) for key in weights}


@pytest.mark.usefixtures("two_cpu_node")
def test_srun_branching_from_a_checkpoint_makes_one_new_run_directory(batches_dir: Path, tmp_path: Path) -> None:
    """Rank 1 joins the directory rank 0 made for the branch; it used to make (and leave) one of its own."""
    runs = tmp_path / "runs"
    run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_epochs", "1", "--run_name", "ddp"))  # 1 process: 6 steps
    source = runs / "ddp" / "version_0"
    res = _srun_fit(tmp_path, batches_dir, runs, "--trainer.max_epochs", "2", "--ckpt_path", str(source / "checkpoints" / "best.ckpt"))
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-3000:])
    assert sorted(p.name for p in (runs / "ddp").iterdir()) == ["version_0", "version_1"], "one new run directory for both ranks"
    branch = runs / "ddp" / "version_1"
    assert json.loads((branch / "status.json").read_text())["status"] == "completed"
    assert torch.load(branch / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6 + TRAIN_IMAGES // (2 * BATCH)
