"""Entry point: ``python train.py {fit,validate,test,predict} [--config X.yaml] [--trainer.* --model.* --data.*]``.

A LightningCLI with three additions a researcher would otherwise script by hand:

* every run gets its own directory ``runs/<run_name>/version_<k>/`` holding ``config.yaml``, ``checkpoints/``
  (``best.ckpt`` by ``val/acc`` and ``last.ckpt``) and the logger's files; nothing is overwritten;
* W&B is the default logger and runs offline unless ``WANDB_API_KEY`` is set, so nothing waits on a
  network; the ``wandb sync`` command is printed at the end;
* ``validate``/``test``/``predict --ckpt_path X`` with nothing else rebuild the model *and* data
  settings (preprocessing, split seed, ...) from the checkpoint; later flags still override them.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import Namespace
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

import lit_models  # noqa: F401  - registers every model for `--model NAME`
from callbacks.divergence import DivergenceError, DivergenceGuard
from callbacks.last_checkpoint import LastCheckpoint
from callbacks.learning_curves import LearningCurves
from callbacks.lr_schedule import LRScheduleMonitor
from callbacks.per_class import PerClassAccuracy
from callbacks.prediction_writer import PredictionCSVWriter
from datamodules import CIFAR10DataModule, DataError
from lit_models import ClassifierModule
from lit_models.base import CheckpointMismatchError

RUN_DIR_ENV = "CIFAR_RUN_DIR"  # lets DDP worker processes (which re-run this script) join rank 0's run directory
EVAL_SUBCOMMANDS = ("validate", "test", "predict")
DIVERGED_EXIT_CODE = 3  # lets scripts (the LR sweep) tell a diverged run from a crashed one


def next_run_dir(runs_dir: str | Path, name: str) -> Path:
    """``runs_dir/name/version_<k>`` with k one past the highest existing version; created atomically."""
    base = Path(runs_dir) / name
    base.mkdir(parents=True, exist_ok=True)
    while True:
        versions = [int(m.group(1)) for p in base.iterdir() if (m := re.fullmatch(r"version_(\d+)", p.name))]
        candidate = base / f"version_{max(versions, default=-1) + 1}"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:  # another run took it between listing and mkdir
            continue


def latest_resumable_run(runs_dir: str | Path, name: str) -> Path | None:
    base = Path(runs_dir) / name
    candidates = [p.parent.parent for p in base.glob("version_*/checkpoints/last.ckpt")]
    return max(candidates, key=lambda p: int(p.name.split("_")[1]), default=None)


def wandb_should_run_offline(timeout_s: float = 5.0) -> bool:
    """Offline without a key or when asked; with a key, offline too if the server does not answer quickly.

    A run must never hang on the network: a TCP connect to the W&B host, bounded by ``timeout_s``,
    decides before wandb itself starts.
    """
    if not os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE") in ("offline", "disabled", "dryrun"):
        return True
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout_s).close()
        return False
    except OSError as exc:
        print(f"W&B server {url.hostname}:{port} unreachable ({exc}); logging offline instead. Upload later with `wandb sync`.", file=sys.stderr)
        os.environ["WANDB_MODE"] = "offline"
        return True


class CIFARCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--run_name", type=str | None, default=None, help="Run directory name (default: config file stem or model class).")
        parser.add_argument("--runs_dir", type=str, default="runs", help="Where run directories are created.")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(LastCheckpoint, "last_checkpoint")
        # Always-on outputs (cheap: no per-step host sync); each writes into the run directory.
        parser.add_lightning_class_args(LRScheduleMonitor, "lr_schedule")
        parser.add_lightning_class_args(LearningCurves, "learning_curves")
        parser.add_lightning_class_args(PerClassAccuracy, "per_class")
        parser.add_lightning_class_args(DivergenceGuard, "divergence")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/acc",
                "checkpoint.mode": "max",
                "checkpoint.filename": "best",
                "checkpoint.save_last": False,  # LastCheckpoint keeps last.ckpt current
                "checkpoint.auto_insert_metric_name": False,
                "trainer.log_every_n_steps": 1,
            }
        )

    def _parse_ckpt_path(self) -> None:
        """Disabled: ``inject_checkpoint_config`` restores model *and* data settings and lets flags override."""

    def before_instantiate_classes(self) -> None:
        if self.subcommand is None:  # run=False (scripts that only need the configured objects)
            return
        cfg = self.config[self.subcommand]
        run_dir = self._run_dir(cfg)
        cfg.trainer.default_root_dir = str(run_dir)
        cfg.checkpoint.dirpath = cfg.last_checkpoint.dirpath = str(run_dir / "checkpoints")
        cfg.trainer.logger = self._logger_config(cfg.trainer.logger, run_dir, cfg)
        self.run_dir = run_dir

    def _run_dir(self, cfg: Namespace) -> Path:
        if "LOCAL_RANK" in os.environ and os.environ.get(RUN_DIR_ENV):
            return Path(os.environ[RUN_DIR_ENV])
        name = cfg.run_name or self._default_run_name(cfg)
        if self.subcommand == "fit" and cfg.get("ckpt_path") == "last":
            # Resume: continue in the newest run of this name that has a last.ckpt, instead of a new version.
            run_dir = latest_resumable_run(cfg.runs_dir, name)
            if run_dir is None:
                self.parser.error(f"--ckpt_path last: no '{Path(cfg.runs_dir) / name}/version_*/checkpoints/last.ckpt' to resume from (is --run_name/--config the same as the run's?)")
            cfg.ckpt_path = str(run_dir / "checkpoints" / "last.ckpt")
            os.environ[RUN_DIR_ENV] = str(run_dir)
            print(f"Resuming {cfg.ckpt_path}")
            return run_dir
        if self.subcommand in EVAL_SUBCOMMANDS:
            name = f"{name}-{self.subcommand}"
        run_dir = next_run_dir(cfg.runs_dir, name)
        os.environ[RUN_DIR_ENV] = str(run_dir)
        return run_dir

    @staticmethod
    def _default_run_name(cfg: Namespace) -> str:
        configs = cfg.get("config") or []
        if configs:
            return Path(str(configs[-1])).stem
        class_path = cfg.model.class_path if isinstance(cfg.model, Namespace) and "class_path" in cfg.model else "model"
        return class_path.rsplit(".", 1)[-1].lower()

    @staticmethod
    def _logger_config(logger: Any, run_dir: Path, cfg: Namespace) -> Any:
        """Default: offline-unless-keyed W&B in the run directory; any logger without a save_dir gets the run dir."""
        if logger is False:
            return False
        if logger is None or logger is True:
            offline = wandb_should_run_offline()
            return Namespace(
                class_path="lightning.pytorch.loggers.WandbLogger",
                init_args=Namespace(save_dir=str(run_dir), project="cifar10", name=f"{run_dir.parent.name}/{run_dir.name}", offline=offline),
            )
        for one in logger if isinstance(logger, list) else [logger]:
            init = one.get("init_args") if isinstance(one, Namespace) else None
            if init is not None and init.get("save_dir") in (None, ".", ""):
                init.save_dir = str(run_dir)
            if init is not None and one.class_path.endswith(("CSVLogger", "TensorBoardLogger")):
                init.name, init.version = "", ""  # logs straight into the run directory
        return logger

    def instantiate_classes(self) -> None:
        self._check_ranges()
        try:
            super().instantiate_classes()
        except ValueError as exc:  # our constructors name the flag ("--data.batch_size must be ..."), maybe wrapped
            named = re.search(r"(--[\w.]+ must [^\n]*)", str(exc))
            if named is None:
                raise
            self.parser.error(named.group(1))

    def _check_ranges(self) -> None:
        """Values no optimizer or loader accepts; refused before any data is read."""
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        model = cfg.get("model")
        init = model.get("init_args") if isinstance(model, Namespace) else None
        for key in ("optimizer", "scheduler"):
            sub = init.get(key) if init is not None else None
            lr = sub.get("init_args", Namespace()).get("lr") if isinstance(sub, Namespace) else None
            if isinstance(lr, (int, float)) and lr <= 0:
                self.parser.error(f"--model.{key}.init_args.lr must be positive, got {lr}")
        lr = init.get("lr") if init is not None else None
        if isinstance(lr, (int, float)) and lr <= 0:
            self.parser.error(f"--model.lr must be positive, got {lr}")

    def after_instantiate_classes(self) -> None:
        if self.subcommand == "predict":
            self.trainer.callbacks.append(PredictionCSVWriter(self.run_dir / "predictions.csv", self.datamodule.classes))


def checkpoint_config(ckpt_path: str) -> dict[str, Any]:
    """Model and data ``class_path``/``init_args`` recorded in a checkpoint, as a CLI config dict."""
    import torch

    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if "Weights only load failed" in str(exc):
            found = re.search(r"GLOBAL ([\w.]+)", str(exc))
            what = found.group(1) if found else "pickle instructions beyond tensors and plain containers"
            sys.exit(
                f"error: --ckpt_path '{ckpt_path}' refused: it contains pickled objects ({what}) that could run code "
                "when loaded. Nothing in it was executed. Checkpoints written by train.py never contain such objects; "
                "do not load this file unless you trust its source."
            )
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        sys.exit(f"error: --ckpt_path '{ckpt_path}' is not a loadable checkpoint (truncated or not a torch file?): {type(exc).__name__}: {first}")
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        sys.exit(f"error: --ckpt_path '{ckpt_path}' holds no Lightning checkpoint (no 'state_dict').")
    config: dict[str, Any] = {}
    for key, section in (("hyper_parameters", "model"), ("datamodule_hyper_parameters", "data")):
        hp = dict(ckpt.get(key) or {})
        hp.pop("_instantiator", None)
        class_path = hp.pop("_class_path", None)
        if section == "model" and class_path:
            config[section] = {"class_path": class_path, "init_args": hp}
        elif hp:
            config[section] = hp
    return config


def inject_checkpoint_config(argv: list[str]) -> list[str]:
    """Check any ``--ckpt_path`` file up front (safely: no pickled code runs) and, for eval subcommands,
    prepend the checkpoint's config so later flags override it."""
    if not argv:
        return argv
    ckpt = None
    for i, arg in enumerate(argv):
        if arg == "--ckpt_path" and i + 1 < len(argv):
            ckpt = argv[i + 1]
        elif arg.startswith("--ckpt_path="):
            ckpt = arg.split("=", 1)[1]
    if not ckpt or ckpt in ("best", "last") or not Path(ckpt).is_file():
        if ckpt and ckpt not in ("best", "last"):
            sys.exit(f"error: --ckpt_path '{ckpt}' does not exist.")
        return argv
    config = checkpoint_config(ckpt)
    if not config or argv[0] not in EVAL_SUBCOMMANDS:
        return argv
    path = Path(ckpt).resolve()
    # runs/<name>/version_k/checkpoints/x.ckpt -> evaluation runs land in runs/<name>-<subcommand>/
    config["run_name"] = path.parents[2].name if path.parent.name == "checkpoints" and len(path.parents) > 2 else path.stem
    # jsonargparse takes a YAML string for --config as well as a path: no temporary file to clean up.
    return [argv[0], "--config", yaml.safe_dump(config), *argv[1:]]


def default_logger_save_dir(argv: list[str]) -> list[str]:
    """``--trainer.logger CSVLogger`` alone would fail on its required ``save_dir``; supply a placeholder
    that ``CIFARCLI._logger_config`` replaces with the run directory."""
    out = list(argv)
    if any(a.startswith("--trainer.logger.save_dir") or a.startswith("--trainer.logger.init_args.save_dir") for a in out):
        return out
    for i, arg in enumerate(out[:-1]):
        if arg == "--trainer.logger" and out[i + 1].rsplit(".", 1)[-1] in ("CSVLogger", "TensorBoardLogger"):
            return [*out[: i + 2], "--trainer.logger.save_dir", ".", *out[i + 2 :]]
    return out


def tune_cpu_allocator() -> bool:
    """Let glibc reuse freed multi-MB buffers instead of mapping fresh pages for each one.

    Every batch allocates several tensors of a few MB (normalised batch, padded crop, activations).
    Above glibc's mmap threshold each such allocation gets new zeroed pages and page-faults on first
    touch; raising the threshold keeps them on the heap. Measured on a 2-core CPU: batch augmentation
    14.9 -> 5.8 ms per 256 images. The limits stay moderate (32 MB mmap, 64 MB trim) so one-off
    transients (decoding, statistics) still go back to the OS: with 1 GB limits the in-process peak RSS of
    the course MLP run varied 1.05-1.42 GB between runs, with these 1.03-1.05 GB, at the same speed.
    Process-wide, harmless on GPU runs, a no-op off glibc.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 64 << 20))
    except (OSError, AttributeError):
        return False


def main(argv: list[str] | None = None) -> CIFARCLI:
    # sys.argv stays untouched: DDP worker processes re-run this script with it.
    warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python.*")
    tune_cpu_allocator()
    argv = default_logger_save_dir(inject_checkpoint_config(list(sys.argv[1:] if argv is None else argv)))
    try:
        return CIFARCLI(
            ClassifierModule,
            CIFAR10DataModule,
            subclass_mode_model=True,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            args=argv,
        )
    except (DivergenceError, DataError, CheckpointMismatchError) as exc:
        if __name__ != "__main__":
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(DIVERGED_EXIT_CODE if isinstance(exc, DivergenceError) else 2)


if __name__ == "__main__":
    main()
