"""Reliability: crash + resume, determinism, untrusted/wrong checkpoints, W&B without network, bad CLI input."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import pytest
import torch

from cli.checkpoints import CheckpointFileError
from tests.cli_helpers import base_args, only_run_dir, refusal, run_cli, run_script

def _weights_after_fit(batches_dir: Path, runs: Path, seed: str, name: str) -> tuple[dict, float]:
    cli = run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_epochs", "2", "--model.dropout", "0.1", "--data.augment", "true",
                                    "--trainer.deterministic", "true", "--seed_everything", seed, "--run_name", name))
    return {k: v.clone() for k, v in cli.model.state_dict().items()}, float(cli.trainer.callback_metrics["val/loss"])


def test_same_seed_is_bit_identical_and_other_seeds_differ(batches_dir: Path, tmp_path: Path) -> None:
    w1, m1 = _weights_after_fit(batches_dir, tmp_path / "runs", "0", "a")
    w2, m2 = _weights_after_fit(batches_dir, tmp_path / "runs", "0", "b")
    w3, m3 = _weights_after_fit(batches_dir, tmp_path / "runs", "1", "c")
    assert m1 == m2 and all(torch.equal(w1[k], w2[k]) for k in w1)
    assert m1 != m3 and not all(torch.equal(w1[k], w3[k]) for k in w1)


# ------------------------------------------------------------------ checkpoints


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - runs on unpickling
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def trained_ckpt(batches_dir: Path, tmp_path: Path) -> Path:
    run_cli("fit", *base_args(batches_dir, tmp_path / "runs", "--trainer.max_steps", "3", "--run_name", "good"))
    return tmp_path / "runs" / "good" / "version_0" / "checkpoints" / "last.ckpt"


def test_malicious_checkpoint_is_refused_without_running_code(batches_dir: Path, tmp_path: Path, trained_ckpt: Path) -> None:
    marker = tmp_path / "pwned"
    evil = torch.load(trained_ckpt, weights_only=True)
    evil["payload"] = _Evil(marker)
    as_torch, as_pickle = tmp_path / "evil.ckpt", tmp_path / "evil_raw.ckpt"
    torch.save(evil, as_torch)  # what an attacker would ship: full unpickling runs `touch`
    as_pickle.write_bytes(pickle.dumps(evil))
    for path, expected in ((as_torch, r"refused: it contains pickled objects \((posix|nt).system\)"), (as_pickle, "refused: it is a raw pickle that the safe loader cannot read")):
        for sub in ("test", "predict", "validate", "fit"):
            with pytest.raises(CheckpointFileError, match=expected):
                run_cli(sub, "--ckpt_path", path, "--data.data_dir", batches_dir)
    assert not marker.exists(), "the payload must never run"
    torch.load(as_torch, weights_only=False)  # sanity: the file really is live when loaded unsafely
    assert marker.exists()


def test_truncated_and_foreign_files_are_refused(batches_dir: Path, tmp_path: Path, trained_ckpt: Path) -> None:
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(trained_ckpt.read_bytes()[:1000])
    with pytest.raises(CheckpointFileError, match="not a loadable checkpoint"):
        run_cli("test", "--ckpt_path", truncated, "--data.data_dir", batches_dir)
    tensor_file = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor_file)
    with pytest.raises(CheckpointFileError, match="holds no Lightning checkpoint"):
        run_cli("test", "--ckpt_path", tensor_file, "--data.data_dir", batches_dir)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointFileError, match="is not a checkpoint: it was not written by torch.save"):
        run_cli("validate", "--ckpt_path", text, "--data.data_dir", batches_dir)
    with pytest.raises(CheckpointFileError, match="does not exist"):
        run_cli("test", "--ckpt_path", tmp_path / "missing.ckpt", "--data.data_dir", batches_dir)


def test_checkpoint_of_another_architecture_is_refused(batches_dir: Path, tmp_path: Path, trained_ckpt: Path) -> None:
    from lit_models.base import CheckpointMismatchError

    common = ["--data.data_dir", str(batches_dir), "--runs_dir", str(tmp_path / "runs"), "--trainer.logger", "false"]
    with pytest.raises(CheckpointMismatchError, match=r"hidden_sizes=\[16\] in checkpoint vs \[32\].*shape mismatches: net.layers.1.weight"):
        run_cli("test", "--ckpt_path", trained_ckpt, "--model.hidden_sizes", "[32]", *common)
    with pytest.raises(CheckpointMismatchError, match=r"holds a lit_models.MLPClassifier, but the model is a lit_models.vgg.VGGClassifier"):
        run_cli("test", "--ckpt_path", trained_ckpt, "--model", "VGGClassifier", *common)


# ------------------------------------------------------------------ W&B without network


def test_wandb_key_but_unreachable_server_falls_back_to_offline(batches_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.loggers import wandb_should_run_offline

    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # loopback port with nothing listening
    start = time.time()
    assert wandb_should_run_offline(timeout_s=2.0) is True
    assert os.environ["WANDB_MODE"] == "offline"
    monkeypatch.delenv("WANDB_MODE")
    cli = run_cli("fit", *base_args(batches_dir, tmp_path / "runs", "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", logger=None))
    cli.trainer.loggers[0].experiment.finish()
    assert time.time() - start < 60, "never hangs on the network"
    assert list((only_run_dir(tmp_path / "runs") / "wandb").glob("offline-run-*"))


def test_no_key_means_offline_without_any_network_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from cli.loggers import wandb_should_run_offline

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("no key: must not touch the network"))
    assert wandb_should_run_offline() is True


# ------------------------------------------------------------------ bad CLI input


@pytest.mark.parametrize(
    "flags,expected",
    [
        (["--model.hiden_sizes", "[10]"], "hiden_sizes"),
        (["--data.batch_size", "abc"], "--data.batch_size: not of type PositiveInt"),
        (["--model.optimizer.lr", "-0.1"], "--model.optimizer: Invalid learning rate: -0.1"),
        (["--model.optimizer.momentum", "-1"], "--model.optimizer: Invalid momentum value: -1"),
        (["--data.batch_size", "0"], "--data.batch_size: not of type PositiveInt: 0 does not conform to restriction v>0"),
        (["--data.val_size", "-5"], "--data.val_size: not of type NonNegativeInt"),
        (["--model.dropout", "1.5"], "--model.dropout: not of type Fraction: 1.5 does not conform to restriction v>=0.0 and v<1.0"),
        (["--model.hidden_sizes", "[16, 0]"], "--model.hidden_sizes"),
        (["--data.preprocessing", "zca"], "--data.preprocessing"),
        (["--last_checkpoint.every_n_train_steps", "-2"], "--last_checkpoint.every_n_train_steps: not of type NonNegativeInt"),
        (["--divergence.check_every_n_steps", "0"], "--divergence.check_every_n_steps"),
    ],
)
def test_bad_flags_are_one_line_errors_before_any_data_is_read(flags: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # data_dir does not exist: if the data were read first, the error would be about missing data.
    message = refusal(capsys, "fit", *base_args(tmp_path / "no_data_here", tmp_path / "runs", *flags))
    assert expected in message, message
    assert "No CIFAR-10 data" not in message
    assert not list((tmp_path / "runs").glob("*/version_*")), "a refused run leaves no run directory"


def test_val_size_larger_than_data_is_named(batches_dir: Path, tmp_path: Path) -> None:
    from datamodules import DataError

    with pytest.raises(DataError, match=r"--data.val_size=500 leaves no training images: .* has only 150"):
        run_cli("fit", *base_args(batches_dir, tmp_path / "runs", "--data.val_size", "500"))


@pytest.mark.parametrize(
    "flag,value",
    [("val_check_interval", "0"), ("val_check_interval", "1.5"), ("max_epochs", "-5"), ("max_steps", "-3"), ("log_every_n_steps", "-1"),
     ("accumulate_grad_batches", "0"), ("limit_val_batches", "-1"), ("limit_train_batches", "2.5"), ("check_val_every_n_epoch", "0"),
     ("gradient_clip_val", "-1"), ("gradient_clip_algorithm", "abs"), ("num_sanity_val_steps", "-2"), ("fast_dev_run", "-1")],
)
def test_out_of_range_trainer_flags_are_one_line_errors_before_any_data_is_read(flag: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        run_cli("fit", *base_args(tmp_path / "no_data_here", tmp_path / "runs", f"--trainer.{flag}", value))
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and err[-1].startswith(f"error: --trainer.{flag}") and value in err[-1], err[-3:]
    assert not list((tmp_path / "runs").glob("*/version_*"))


@pytest.mark.parametrize("sub,ckpt", [("test", "last"), ("validate", "best"), ("fit", "best")])
def test_symbolic_checkpoints_that_mean_nothing_here_are_refused(sub: str, ckpt: str, batches_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    message = refusal(capsys, sub, *base_args(batches_dir, tmp_path / "runs", "--ckpt_path", ckpt))
    assert f"--ckpt_path {ckpt}" in message
