"""Every logger writes into the run directory; W&B (the default) is offline unless a key is set.

A logger's ``save_dir`` is taken relative to the run directory (``.`` = the run directory itself). An
absolute ``save_dir`` is refused: a config saved by one run and re-run later would otherwise write a new
run's logs over the old run's files. W&B, whether the default or named with ``--trainer.logger
WandbLogger``, follows one rule: online only with ``WANDB_API_KEY`` set and the server answering within
5 s; otherwise offline, with the ``wandb sync`` command printed at the end. A resumed run continues the
same W&B run (its id is kept in the run directory).
"""

from __future__ import annotations

import csv
import os
import socket
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jsonargparse import Namespace

WANDB_CLASS = "lightning.pytorch.loggers.WandbLogger"
QUIET_WANDB_CLASS = "core.lightning_internals.QuietWandbLogger"
WANDB_ID_FILE = "wandb_run_id"
DEFAULT_PROJECT = "cifar10"


class LoggerConfigError(ValueError):
    """A logger setting that would write outside the run directory."""


def wandb_should_run_offline(timeout_s: float = 5.0) -> bool:
    """Offline without a key or when asked; with a key, offline too if the server does not answer quickly.

    A run must never hang on the network: a TCP connect to the W&B host, bounded by ``timeout_s``,
    decides before wandb itself starts.
    """
    if not os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE") in ("offline", "disabled", "dryrun"):
        return True
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout_s).close()
        return False
    except OSError as exc:
        print(f"W&B server {url.hostname}:{port} unreachable ({exc}); logging offline instead. Upload later with `wandb sync`.", file=sys.stderr)
        os.environ["WANDB_MODE"] = "offline"
        return True


def wandb_run_id(run_dir: Path) -> str:
    """One W&B run per run directory, also across resumes."""
    path = run_dir / WANDB_ID_FILE
    if path.is_file():
        return path.read_text().strip()
    run_id = uuid.uuid4().hex[:12]
    path.write_text(run_id + "\n")
    return run_id


def logs_to_wandb(logger: Any) -> bool:
    """Whether a parsed ``trainer.logger`` setting logs to W&B (the default, ``None``, does)."""
    if logger is None or logger is True:
        return True
    return any(isinstance(one, Namespace) and str(one.get("class_path", "")).endswith("WandbLogger") for one in (logger if isinstance(logger, list) else [logger]))


def configure_loggers(logger: Any, run_dir: Path) -> Any:
    """The ``trainer.logger`` config with every path pointing into ``run_dir``."""
    if logger is False:
        return False
    if logger is None or logger is True:
        logger = Namespace(class_path=WANDB_CLASS, init_args=Namespace(project=DEFAULT_PROJECT))
    for one in logger if isinstance(logger, list) else [logger]:
        if not isinstance(one, Namespace) or "class_path" not in one:
            continue  # an instance built in Python: its owner chose its paths
        init = one.get("init_args") or Namespace()
        one.init_args = init
        save_dir = init.get("save_dir")
        if save_dir not in (None, "", ".") and Path(str(save_dir)).is_absolute():
            raise LoggerConfigError(
                f"--trainer.logger.save_dir '{save_dir}': logger files always go into the run directory "
                "(runs_dir/run_name/version_k), so runs never write into each other's folders. Choose the "
                "location with --runs_dir and --run_name, or give a path relative to the run directory."
            )
        init.save_dir = str(run_dir if save_dir in (None, "", ".") else run_dir / str(save_dir))
        short = one.class_path.rsplit(".", 1)[-1]
        if short == "WandbLogger":
            one.class_path = QUIET_WANDB_CLASS  # same logger, minus a false-alarm warning (see core/lightning_internals.py)
            init.offline = bool(init.get("offline")) or wandb_should_run_offline()
            init.project = init.get("project") or DEFAULT_PROJECT
            init.name = init.get("name") or os.environ.get("WANDB_NAME") or f"{run_dir.parent.name}/{run_dir.name}"  # studies set WANDB_NAME
            init.id = init.get("id") or wandb_run_id(run_dir)
        elif short in ("CSVLogger", "TensorBoardLogger"):
            init.name, init.version = "", ""  # straight into save_dir: no lightning_logs/version_k nesting
    return logger


# --------------------------------------------------------------------------- CSV history across resumes
# CSVLogger deletes an existing metrics.csv when it starts in a non-empty folder, which on a resume in
# place would lose every row logged before the checkpoint. So on resume the rows up to the checkpoint's
# step are set aside, and merged back in front of the resumed run's rows when it ends.
CSV_METRICS = "metrics.csv"
CSV_HISTORY = "metrics.before-resume.csv"


def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    keys = sorted({k for row in rows for k in row})  # CSVLogger's column order
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def set_aside_csv_history(run_dir: Path, resume_step: int) -> None:
    rows = _read_rows(run_dir / CSV_HISTORY) + _read_rows(run_dir / CSV_METRICS)
    kept = [r for r in rows if r.get("step") not in (None, "") and float(r["step"]) <= resume_step]
    if not rows:
        return
    _write_rows(run_dir / CSV_HISTORY, kept)
    (run_dir / CSV_METRICS).unlink(missing_ok=True)


def restore_csv_history(run_dir: Path) -> None:
    history = run_dir / CSV_HISTORY
    if history.is_file():
        _write_rows(run_dir / CSV_METRICS, _read_rows(history) + _read_rows(run_dir / CSV_METRICS))
        history.unlink()
