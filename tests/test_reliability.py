"""Reliability: crash + resume, determinism, untrusted/wrong checkpoints, W&B without network, bad CLI input."""

from __future__ import annotations

import os
import pickle
import signal
import time
from pathlib import Path

import pytest
import torch

from tests.cli_helpers import base_args, only_run_dir, run_cli, run_script

# Dropout (global RNG) + augmentation (loader RNG) + several epochs: everything that could drift on resume.
RESUMABLE = ["--trainer.max_epochs", "4", "--model.dropout", "0.2", "--data.augment", "true", "--trainer.deterministic", "true",
             "--last_checkpoint.every_n_train_steps", "2", "--trainer.val_check_interval", "1.0"]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_identical_weights(batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # 120 train images / batch 20 = 6 steps per epoch; killed at step 9 = mid-way through epoch 1.
    kill_cfg = tmp_path / "kill.yaml"
    kill_cfg.write_text("trainer:\n  callbacks:\n    - class_path: tests.helpers.kill.KillAtStep\n      init_args: {step: 9}\n")
    crashed = run_script("fit", *base_args(batches_dir, runs, *RESUMABLE, "--run_name", "crash"), "--config", kill_cfg)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    run_dir = runs / "crash" / "version_0"
    assert (run_dir / "config.yaml").is_file(), "an interrupted run keeps its resolved config"
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 8, "mid-epoch checkpoint every 2 steps"

    resumed = run_script("fit", *base_args(batches_dir, runs, *RESUMABLE, "--run_name", "crash", "--ckpt_path", "last"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert sorted(p.name for p in (runs / "crash").iterdir()) == ["version_0"], "resume continues in the same run directory"

    clean = run_script("fit", *base_args(batches_dir, runs, *RESUMABLE, "--run_name", "clean"))
    assert clean.returncode == 0, clean.stderr[-3000:]
    a = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(runs / "clean" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 24
    for key, value in b["state_dict"].items():
        assert torch.equal(a["state_dict"][key], value), f"{key} differs after kill + resume"


def test_resume_without_a_previous_run_is_a_clear_error(batches_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        run_cli("fit", *base_args(batches_dir, tmp_path / "runs", "--run_name", "nothing", "--ckpt_path", "last"))
    err = capsys.readouterr().err
    assert "--ckpt_path last: no '" in err and "nothing/version_*/checkpoints/last.ckpt' to resume from" in err


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
    for path, expected in ((as_torch, r"refused: it contains pickled objects \((posix|nt).system\)"), (as_pickle, "refused: it contains pickled objects")):
        for sub in ("test", "predict", "validate", "fit"):
            with pytest.raises(SystemExit, match=expected):
                run_cli(sub, "--ckpt_path", path, "--data.data_dir", batches_dir)
    assert not marker.exists(), "the payload must never run"
    torch.load(as_torch, weights_only=False)  # sanity: the file really is live when loaded unsafely
    assert marker.exists()


def test_truncated_and_foreign_files_are_refused(batches_dir: Path, tmp_path: Path, trained_ckpt: Path) -> None:
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(trained_ckpt.read_bytes()[:1000])
    with pytest.raises(SystemExit, match="not a loadable checkpoint"):
        run_cli("test", "--ckpt_path", truncated, "--data.data_dir", batches_dir)
    tensor_file = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor_file)
    with pytest.raises(SystemExit, match="holds no Lightning checkpoint"):
        run_cli("test", "--ckpt_path", tensor_file, "--data.data_dir", batches_dir)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(SystemExit, match="not a loadable checkpoint"):
        run_cli("validate", "--ckpt_path", text, "--data.data_dir", batches_dir)
    with pytest.raises(SystemExit, match="does not exist"):
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
    import train

    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # loopback port with nothing listening
    start = time.time()
    assert train.wandb_should_run_offline(timeout_s=2.0) is True
    assert os.environ["WANDB_MODE"] == "offline"
    monkeypatch.delenv("WANDB_MODE")
    cli = run_cli("fit", *base_args(batches_dir, tmp_path / "runs", "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", logger=None))
    cli.trainer.loggers[0].experiment.finish()
    assert time.time() - start < 60, "never hangs on the network"
    assert list((only_run_dir(tmp_path / "runs") / "wandb").glob("offline-run-*"))


def test_no_key_means_offline_without_any_network_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    import train

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("no key: must not touch the network"))
    assert train.wandb_should_run_offline() is True


# ------------------------------------------------------------------ bad CLI input


@pytest.mark.parametrize(
    "flags,expected",
    [
        (["--model.hiden_sizes", "[10]"], "hiden_sizes"),
        (["--data.batch_size", "abc"], "batch_size"),
        (["--model.optimizer.lr", "-0.1"], "--model.optimizer.init_args.lr must be positive, got -0.1"),
        (["--data.batch_size", "0"], "--data.batch_size must be >= 1, got 0"),
        (["--data.val_size", "-5"], "--data.val_size must be >= 0"),
        (["--model.dropout", "1.5"], "--model.dropout must be in [0, 1)"),
        (["--data.preprocessing", "zca"], "preprocessing"),
    ],
)
def test_bad_flags_are_named_before_any_data_is_read(flags: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # data_dir does not exist: if the data were read first, the error would be about missing data.
    with pytest.raises(SystemExit) as exc:
        run_cli("fit", *base_args(tmp_path / "no_data_here", tmp_path / "runs", *flags))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and "No CIFAR-10 data" not in err


def test_val_size_larger_than_data_is_named(batches_dir: Path, tmp_path: Path) -> None:
    from datamodules import DataError

    with pytest.raises(DataError, match=r"--data.val_size=500 leaves no training images: .* has only 150"):
        run_cli("fit", *base_args(batches_dir, tmp_path / "runs", "--data.val_size", "500"))
