"""train.py end to end: config printing, fit, evaluation from a checkpoint alone, predict, W&B, DDP."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import yaml

from tests.cli_helpers import ROOT, base_args, only_run_dir, run_cli, run_script


def test_print_config_resolves_the_course_recipe(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        run_cli("fit", "--config", ROOT / "configs/mlp.yaml", "--print_config")
    assert exc.value.code == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["model"]["class_path"] == "lit_models.MLPClassifier"
    assert cfg["model"]["init_args"]["hidden_sizes"] == [100]
    assert cfg["model"]["init_args"]["optimizer"]["init_args"]["lr"] == 0.002
    assert cfg["data"]["batch_size"] == 200 and cfg["data"]["preprocessing"] == "mean_image"
    assert cfg["trainer"]["max_steps"] == 1500 and cfg["trainer"]["val_check_interval"] == 100


def test_fast_dev_run(batches_dir: Path, tmp_path: Path) -> None:
    cli = run_cli("fit", *base_args(batches_dir, tmp_path / "runs", "--trainer.fast_dev_run", "true"))
    assert cli.trainer.global_step == 1
    assert only_run_dir(tmp_path / "runs").name == "version_0"


def test_fit_then_eval_from_checkpoint_alone(batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # Non-default data settings that evaluation must recover from the checkpoint, not from defaults.
    cli = run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_epochs", "3", "--data.preprocessing", "mean_image", "--model.optimizer.lr", "1e-5", "--data.split_seed", "7", "--run_name", "exp"))
    run_dir = runs / "exp" / "version_0"
    assert (run_dir / "checkpoints" / "best.ckpt").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["data"]["split_seed"] == 7 and saved["trainer"]["default_root_dir"] == str(run_dir)
    best_val = float(cli.trainer.checkpoint_callback.best_model_score)
    last_val = float(cli.trainer.callback_metrics["val/acc"])

    for name, expected in (("best", best_val), ("last", last_val)):
        ckpt = run_dir / "checkpoints" / f"{name}.ckpt"
        ev = run_cli("validate", "--ckpt_path", ckpt, "--data.data_dir", batches_dir, "--runs_dir", runs, "--trainer.logger", "false", "--trainer.enable_progress_bar", "false")
        assert ev.datamodule.hparams.split_seed == 7 and ev.datamodule.hparams.preprocessing == "mean_image"
        assert ev.model.hparams.hidden_sizes == [16]
        assert float(ev.trainer.callback_metrics["val/acc"]) == expected, f"validate({name}) must reproduce the logged val/acc exactly"

    te = run_cli("test", "--ckpt_path", run_dir / "checkpoints/best.ckpt", "--data.data_dir", batches_dir, "--runs_dir", runs, "--trainer.logger", "false")
    acc = float(te.trainer.callback_metrics["test/acc"])
    assert 0.0 <= acc <= 1.0 and "test/loss" in te.trainer.callback_metrics
    assert (runs / "exp-test" / "version_0").is_dir(), "evaluation runs get their own run directory"


def test_predict_writes_csv(batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_epochs", "1", "--run_name", "p"))
    ckpt = runs / "p" / "version_0" / "checkpoints" / "last.ckpt"
    run_cli("predict", "--ckpt_path", ckpt, "--data.data_dir", batches_dir, "--runs_dir", runs, "--trainer.logger", "false")
    rows = list(csv.reader(open(runs / "p-predict" / "version_0" / "predictions.csv")))
    assert rows[0][:3] == ["index", "predicted_class", "p_airplane"] and len(rows[0]) == 12
    assert [int(r[0]) for r in rows[1:]] == list(range(50))
    probs = torch.tensor([[float(v) for v in r[2:]] for r in rows[1:]])
    assert torch.allclose(probs.sum(1), torch.ones(50), atol=1e-4)
    assert all(r[1] == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"][int(torch.tensor([float(v) for v in r[2:]]).argmax())] for r in rows[1:])


def test_wandb_offline_run_directory(batches_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline must follow from the missing key alone
    runs = tmp_path / "runs"
    cli = run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", logger=None))
    cli.trainer.loggers[0].experiment.finish()
    run_dir = only_run_dir(runs)
    offline_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert offline_runs and list(offline_runs[0].glob("*.wandb")), "a syncable offline run must be written"


def test_csv_logger_writes_into_run_dir(batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_epochs", "1", logger="CSVLogger"))
    metrics = only_run_dir(runs) / "metrics.csv"
    header = metrics.read_text().splitlines()[0].split(",")
    assert {"train/loss", "val/acc", "val/acc_cat", "lr/opt0_group0"} <= set(header)


def test_second_run_gets_a_new_version(batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for _ in range(2):
        run_cli("fit", *base_args(batches_dir, runs, "--trainer.fast_dev_run", "true", "--run_name", "same"))
    assert sorted(p.name for p in (runs / "same").iterdir()) == ["version_0", "version_1"]


@pytest.mark.slow
def test_ddp_two_cpu_processes(batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    res = run_script("fit", *base_args(batches_dir, runs, "--trainer.max_epochs", "2", "--trainer.devices", "2", "--trainer.strategy", "ddp", "--run_name", "ddp"), timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    run_dir = runs / "ddp" / "version_0"
    assert [p.name for p in (runs / "ddp").iterdir()] == ["version_0"], "both ranks must share one run directory"
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    # 120 training images, batch 20, 2 ranks -> 3 steps per epoch per rank.
    assert ckpt["global_step"] == 6, ckpt["global_step"]
    assert ckpt["epoch"] == 1
