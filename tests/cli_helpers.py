"""Running ``train.py`` in-process (fast) or as a subprocess (DDP, crashes) from tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from core.run_layout import versions

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> object:
    """In-process ``python train.py ARGS``; returns the LightningCLI object."""
    import train
    from cli.run_dirs import RESUME_CKPT_ENV, RUN_DIR_ENV

    os.environ.pop(RUN_DIR_ENV, None)
    os.environ.pop(RESUME_CKPT_ENV, None)
    return train.main([str(a) for a in args])


def script_env(env: dict | None = None) -> dict:
    full_env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1", **(env or {})}
    for key in ("CIFAR_RUN_DIR", "CIFAR_RESUME_CKPT"):
        full_env.pop(key, None)
    return full_env


def run_script(*args: str, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *map(str, args)], cwd=ROOT, env=script_env(env), capture_output=True, text=True, timeout=timeout)


def base_args(data_dir: Path, runs_dir: Path, *extra: str, logger: str | None = "false") -> list[str]:
    """A tiny fit: MLP on fake data, no progress bar; ``logger`` None keeps the default (W&B offline)."""
    return [
        "--model", "MLPClassifier", "--model.hidden_sizes", "[16]",
        "--model.optimizer", "torch.optim.SGD", "--model.optimizer.lr", "0.05",
        "--data.data_dir", str(data_dir), "--data.download", "false", "--data.val_size", "30",
        "--data.batch_size", "20", "--data.eval_batch_size", "25",
        "--runs_dir", str(runs_dir), *(["--trainer.logger", logger] if logger else []),
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.accelerator", "cpu", "--seed_everything", "0",
        *extra,
    ]


def only_run_dir(runs_dir: Path) -> Path:
    dirs = [v for name in sorted(runs_dir.iterdir()) for v in versions(name)]
    assert len(dirs) == 1, dirs
    return dirs[0]


def state_dict_of(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def refusal(capsys: object, *args: str) -> str:
    """Run the CLI in-process expecting it to refuse the arguments; return its one-line message.

    Parser and range errors exit with code 2 after printing ``error: ...``; values refused by a constructor or
    the optimizer raise ``ConfigError`` (which ``python train.py`` prints the same way, exiting with 2).
    """
    import pytest

    from cli.lightning_cli import ConfigError

    with pytest.raises((SystemExit, ConfigError)) as exc:
        run_cli(*args)
    if isinstance(exc.value, ConfigError):
        return str(exc.value)
    assert exc.value.code == 2, exc.value.code
    return capsys.readouterr().err.strip().splitlines()[-1]
