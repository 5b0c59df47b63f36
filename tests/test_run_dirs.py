"""Run directories: a re-run never touches an earlier run, configs reproduce runs, refused runs leave nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from cli.lightning_cli import ConfigError
from datamodules import DataError
from lit_models.base import CheckpointMismatchError
from tests.cli_helpers import ROOT, base_args, run_cli


def fingerprint(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run_dir.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("logger", ["CSVLogger", None])  # None: the default W&B logger, offline
def test_rerunning_a_saved_config_never_changes_a_file_of_the_earlier_run(logger: str | None, batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_steps", "6", "--run_name", "exp", logger=logger))
    first = runs / "exp" / "version_0"
    before = fingerprint(first)
    assert "config.yaml" in before and (logger is None or "metrics.csv" in before)
    run_cli("fit", "--config", first / "config.yaml")  # the most natural thing a researcher does
    assert fingerprint(first) == before, "a re-run changed files of the earlier run"
    second = runs / "exp" / "version_1"
    assert (second / "config.yaml").is_file() and (second / "checkpoints" / "last.ckpt").is_file()
    assert (second / "metrics.csv").is_file() if logger else list((second / "wandb").glob("offline-run-*")), "the re-run has its own logger files"


def test_print_config_output_reproduces_the_run_under_the_same_name(batches_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = tmp_path / "runs"
    overrides = ["--data.data_dir", str(batches_dir), "--data.download", "false", "--data.val_size", "30", "--runs_dir", str(runs),
                 "--trainer.logger", "false", "--trainer.max_steps", "2", "--model.hidden_sizes", "[8]"]
    with pytest.raises(SystemExit):
        run_cli("fit", "--config", ROOT / "configs/mlp.yaml", *overrides, "--print_config")
    printed = tmp_path / "printed.yaml"
    printed.write_text(capsys.readouterr().out)
    assert yaml.safe_load(printed.read_text())["run_name"] == "mlp"
    cli = run_cli("fit", "--config", printed)
    assert Path(cli.trainer.default_root_dir) == runs / "mlp" / "version_0", "not runs/printed/: the printed config names its run"


@pytest.mark.parametrize(
    "case",
    ["bad trainer value", "bad optimizer value", "missing data", "mismatched checkpoint"],
)
def test_a_refused_or_failed_run_leaves_no_run_directory(case: str, batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    if case == "bad trainer value":
        with pytest.raises(SystemExit):
            run_cli("fit", *base_args(batches_dir, runs, "--trainer.val_check_interval", "0"))
    elif case == "bad optimizer value":
        with pytest.raises(ConfigError):
            run_cli("fit", *base_args(batches_dir, runs, "--model.optimizer.lr", "-1"))
    elif case == "missing data":
        with pytest.raises(DataError):
            run_cli("fit", *base_args(tmp_path / "nothing", runs))
    else:
        run_cli("fit", *base_args(batches_dir, tmp_path / "good", "--trainer.max_steps", "2", "--run_name", "good"))
        ckpt = tmp_path / "good" / "good" / "version_0" / "checkpoints" / "last.ckpt"
        with pytest.raises(CheckpointMismatchError):
            run_cli("test", "--ckpt_path", ckpt, "--model.hidden_sizes", "[32]", "--data.data_dir", batches_dir, "--runs_dir", runs, "--trainer.logger", "false")
    assert not list(runs.glob("*/version_*")), f"{case}: an empty run directory was left behind"


def test_default_root_dir_is_honoured_as_the_runs_directory(batches_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "elsewhere"
    args = base_args(batches_dir, tmp_path / "unused", "--trainer.max_steps", "1", "--run_name", "r")
    args[args.index("--runs_dir") : args.index("--runs_dir") + 2] = []
    cli = run_cli("fit", *args, "--trainer.default_root_dir", root)
    assert Path(cli.trainer.default_root_dir) == root / "r" / "version_0" and (root / "r" / "version_0" / "checkpoints" / "last.ckpt").is_file()


def test_default_root_dir_and_a_different_runs_dir_are_refused(batches_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        run_cli("fit", *base_args(batches_dir, tmp_path / "runs", "--trainer.default_root_dir", tmp_path / "other"))
    assert exc.value.code == 2 and "--trainer.default_root_dir" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--checkpoint.dirpath", "--trainer.logger.save_dir"])
def test_paths_that_would_point_runs_at_one_folder_are_refused(flag: str, batches_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    logger = "CSVLogger" if "logger" in flag else "false"
    with pytest.raises(SystemExit) as exc:
        run_cli("fit", *base_args(batches_dir, tmp_path / "runs", flag, str(tmp_path / "shared"), logger=logger))
    assert exc.value.code == 2 and flag in capsys.readouterr().err
    assert not list((tmp_path / "runs").glob("*/version_*"))


def test_a_second_process_cannot_train_in_a_run_directory_in_use(batches_dir: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    from cli.run_dirs import RunDirBusy

    runs = tmp_path / "runs"
    run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_steps", "2", "--run_name", "busy"))
    run_dir = runs / "busy" / "version_0"
    holder = subprocess.Popen([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); from cli.run_dirs import lock_run_dir; "
                               f"from pathlib import Path; lock_run_dir(Path({str(run_dir)!r})); print('locked', flush=True); sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"}
        with pytest.raises(RunDirBusy, match=f"in use by process {holder.pid}"):
            run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_steps", "4", "--run_name", "busy", "--ckpt_path", "last"))
        after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"}
        assert after == before, "the refused process wrote into the run directory the other process trains in (status.json, CSV history)"
    finally:
        holder.communicate("")
    resumed = run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_steps", "4", "--run_name", "busy", "--ckpt_path", "last"))
    assert resumed.trainer.global_step == 4, "the lock dies with its process"
