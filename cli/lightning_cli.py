"""The LightningCLI behind ``train.py``: Lightning's CLI plus run directories, safe checkpoint handling,
value checks before any data is read, and loggers that write into the run directory.

Only documented LightningCLI hooks are overridden (``parse_arguments``, ``before_instantiate_classes``,
``instantiate_classes``, ``after_instantiate_classes``, ``add_arguments_to_parser``).
"""

from __future__ import annotations

import copy
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import Namespace
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from callbacks.console import RunReport, command_for_user
from callbacks.divergence import DivergenceGuard
from callbacks.final_validation import ValidateAtEnd
from callbacks.last_checkpoint import LastCheckpoint
from callbacks.learning_curves import LearningCurves
from callbacks.lr_schedule import LRScheduleMonitor
from callbacks.per_class import PerClassAccuracy
from callbacks.phase_times import PHASES_ENV, PhaseTimes
from callbacks.prediction_writer import PredictionCSVWriter
from callbacks.model_summary import summarize_counted_flops_only
from callbacks.progress_bar import throttle_lightnings_bar
from cli.argv import prepare_argv
from cli.checkpoints import read_checkpoint
from cli.loggers import LoggerConfigError, configure_loggers
from cli.parser import OneLineErrorParser, usage_error
from cli.resume_changes import ResumeChangeError, check_resume_changes, newest_config, run_dir_of_checkpoint
from cli.run_dirs import RunPlan, discard_if_empty, plan_run
from cli.session import RunSession, process_rank
from cli.validation import accelerator_error, run_location_errors, trainer_range_errors
from core.lightning_internals import QuietWandbLogger
from core.run_layout import CHECKPOINT_DIR
from core.torch_internals import cpu_has_bfloat16_hardware

DEFAULT_RUNS_DIR = "runs"


class ConfigError(ValueError):
    """A value that passed the parser but that a constructor, optimizer or the Trainer refused."""


class CIFARCLI(LightningCLI):
    def __init__(self, *args: Any, session: RunSession | None = None, **kwargs: Any):
        self.session = session if session is not None else RunSession()
        argv = sys.argv[1:] if kwargs.get("args") is None else kwargs["args"]
        # The command's own subcommand parser is the only one it can use: building all four (fit, validate, test,
        # predict: each the Trainer's, model's and data's full signatures) took 0.21-0.24 s against 0.04-0.11 s for one
        # (built again in a warm process).
        # Without a leading subcommand (``train.py --help``, a typo) all are built, so help and errors list them.
        self._only_subcommand = argv[0] if isinstance(argv, list) and argv and argv[0] in LightningCLI.subcommands() else None
        kwargs.setdefault("parser_class", OneLineErrorParser)
        # config.yaml is written by the session, into this run's own directory (never into another run's).
        kwargs.setdefault("save_config_callback", None)
        # Lightning seeds 0 anyway when no seed is given, with a "No seed found" warning; say it instead.
        kwargs.setdefault("seed_everything_default", 0)
        super().__init__(*args, **kwargs)

    def subcommands(self) -> dict[str, set[str]]:  # type: ignore[override]  - Lightning calls it as self.subcommands()
        every = LightningCLI.subcommands()
        return {self._only_subcommand: every[self._only_subcommand]} if self._only_subcommand else every

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--run_name", type=str | None, default=None, help="Run directory name (default: the config file's stem, else the model's name).")
        parser.add_argument("--runs_dir", type=str, default=DEFAULT_RUNS_DIR, help="Where run directories are created (runs_dir/run_name/version_k).")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(LastCheckpoint, "last_checkpoint")
        # Always-on outputs (cheap: no per-step host sync); each writes into the run directory.
        parser.add_lightning_class_args(LRScheduleMonitor, "lr_schedule")
        parser.add_lightning_class_args(LearningCurves, "learning_curves")
        parser.add_lightning_class_args(PerClassAccuracy, "per_class")
        parser.add_lightning_class_args(DivergenceGuard, "divergence")
        parser.add_argument(
            "--figures", type=bool, default=True,
            help="Draw the run's PNG figures (learning curves, learning-rate schedule, per-class accuracy, confusion matrix). "
            "false: their CSV/JSON data only, ~0.5 s less per run (a study's runs: the study draws its own figures).",
        )  # fmt: skip
        for callback in ("learning_curves", "lr_schedule", "per_class"):
            parser.link_arguments("figures", f"{callback}.figures")
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

    # ------------------------------------------------------------------ parsing
    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        argv = prepare_argv(list(sys.argv[1:] if args is None else args), self.session)
        self.config = _plain_values(parser.parse_args(argv))
        subcommand = self.config.get("subcommand")
        if subcommand:
            # The checkpoint is handled by this class (read safely, its config put *under* the user's flags).
            # Lightning would otherwise re-apply the checkpoint's hyperparameters *over* the flags.
            cfg = self.config[subcommand]
            self.session.requested_ckpt = cfg.get("ckpt_path")
            cfg.ckpt_path = None

    # ------------------------------------------------------------------ before anything is built
    def before_instantiate_classes(self) -> None:
        if self.subcommand is None:  # run=False: scripts that only need the configured objects
            return
        cfg = self.config[self.subcommand]
        self._check(cfg)
        ckpt = self.session.requested_ckpt
        if ckpt == "best":
            usage_error("--ckpt_path best only means something inside a running Trainer; pass 'last' or a checkpoint file")
        if ckpt == "last" and self.subcommand != "fit":
            usage_error(f"--ckpt_path last resumes training (fit); {self.subcommand} needs a checkpoint file, e.g. runs/<name>/version_<k>/checkpoints/best.ckpt")
        if ckpt and ckpt != "last" and self.session.checkpoint is None:
            self.session.checkpoint = read_checkpoint(ckpt)  # safety first: no pickled code runs
        saved = self._config_to_save(cfg)
        plan = plan_run(self.subcommand, cfg.runs_dir, cfg.run_name, ckpt)
        if self.subcommand == "fit" and plan.ckpt_path and process_rank() == 0:
            self._check_resume(plan, saved)
        self.session.begin(plan, saved, self.subcommand)
        cfg.trainer.default_root_dir = str(plan.run_dir)
        cfg.checkpoint.dirpath = cfg.last_checkpoint.dirpath = str(plan.run_dir / CHECKPOINT_DIR)
        if self.subcommand != "fit" and ckpt:
            # Evaluation saves nothing; pointing the callbacks at the checkpoint's own folder keeps Lightning
            # from warning, on restoring their state, that the folder has changed.
            cfg.checkpoint.dirpath = cfg.last_checkpoint.dirpath = str(Path(ckpt).resolve().parent)
            # Evaluation reads the weights only (WeightAverage saved the averaged ones as state_dict); the
            # training callbacks' states matter to a resumed fit alone, where Lightning's warning stays.
            warnings.filterwarnings("ignore", message=r".*callbacks used to create the checkpoint need to be provided.*")
        try:
            cfg.trainer.logger = configure_loggers(cfg.trainer.logger, plan.run_dir)
        except LoggerConfigError as exc:
            self.session.discard()
            usage_error(str(exc))
        cfg.ckpt_path = plan.ckpt_path

    def _check_resume(self, plan: RunPlan, saved: str) -> None:
        """A flag that differs from what the checkpoint was trained with is honoured or refused here, before the
        run is touched (no config file, status, lock or logger segment of the refused resume)."""
        if self.session.checkpoint is None:  # --ckpt_path last, a SLURM requeue: the file plan_run found
            self.session.checkpoint = read_checkpoint(plan.ckpt_path)
        config = newest_config(run_dir_of_checkpoint(plan.ckpt_path))
        resume = command_for_user("fit", "--config", config or "<the run's config.yaml>", "--ckpt_path", Path(plan.ckpt_path))
        try:
            self.session.resume_changes = check_resume_changes(self.session.checkpoint, config.read_text() if config else None, saved, resume)
        except ResumeChangeError:
            discard_if_empty(plan)  # a branch's new, still empty version directory
            raise

    def _check(self, cfg: Namespace) -> None:
        """Everything that can be refused from the config alone, before a run directory exists."""
        root = cfg.trainer.get("default_root_dir")
        errors = [*trainer_range_errors(cfg.trainer), *run_location_errors(cfg)]
        if root:
            if cfg.runs_dir not in (DEFAULT_RUNS_DIR, root):
                errors.append(f"--trainer.default_root_dir '{root}' and --runs_dir '{cfg.runs_dir}' disagree: give one of them (runs go to runs_dir/run_name/version_k)")
            cfg.runs_dir, cfg.trainer.default_root_dir = root, None  # Lightning's flag, honoured: runs go under it
        if problem := accelerator_error(cfg.trainer, [str(c) for c in cfg.get("config") or [] if Path(str(c)).is_file()]):
            errors.append(problem)
        if errors:
            usage_error(" | ".join(errors))

    def _config_to_save(self, cfg: Namespace) -> str:
        """The resolved config as config.yaml: re-running it (``fit --config``) repeats this run in a new version.

        Paths derived from the run directory stay unset, and a fit's ``ckpt_path`` is cleared: a re-run starts fresh.
        An evaluation keeps its checkpoint, resolved: the config says what was evaluated (``compare_runs.py``
        credits the result to that run alone), and re-running it repeats that evaluation.
        """
        full = copy.deepcopy(self.config)
        section = full[self.subcommand]
        ckpt = self.session.requested_ckpt
        section.ckpt_path = str(Path(ckpt).resolve()) if ckpt and self.subcommand != "fit" else None
        section.trainer.default_root_dir = None
        section.checkpoint.dirpath = section.last_checkpoint.dirpath = None
        dumped = yaml.safe_load(self.parser.dump(full, skip_none=False))[self.subcommand]
        dumped.pop("config", None)
        return yaml.safe_dump(dumped, sort_keys=False)

    # ------------------------------------------------------------------ building and after
    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except (ValueError, TypeError, MisconfigurationException) as exc:
            raise ConfigError(_first_line(_root_cause(exc))) from exc

    def after_instantiate_classes(self) -> None:
        if self.subcommand is None:
            return
        self.session.trainer = self.trainer
        self._check_optimizer()
        plan = self.session.plan
        self.trainer.callbacks.append(RunReport(plan.run_dir, plan.note))
        if not any(isinstance(c, ProgressBar) for c in self.config_init[self.subcommand].trainer.get("callbacks") or []):
            throttle_lightnings_bar(self.trainer)  # Lightning's own bar redraws every batch: 10-25% of a small run
        summarize_counted_flops_only(self.trainer)  # no "Total Flops 0" under the model's table
        bf16_on_cpu = isinstance(self.trainer.accelerator, CPUAccelerator) and str(self.trainer.precision).startswith("bf16")
        if bf16_on_cpu and cpu_has_bfloat16_hardware() is False and process_rank() == 0:
            print(f"note: --trainer.precision {self.trainer.precision} on a CPU without bfloat16 hardware (AVX512-BF16 or AMX) is emulated, "
                  "expected to be slower than 32: on this CPU use configs/cpu.yaml (float32)", file=sys.stderr, flush=True)
        if self.subcommand == "fit":
            self.trainer.callbacks.append(ValidateAtEnd())  # best.ckpt, last.ckpt and the footer include the last step
        if self.subcommand == "predict":
            self.trainer.callbacks.append(PredictionCSVWriter(plan.run_dir / "predictions.csv", self.datamodule))
        config = yaml.safe_load(self.session.saved_config)
        if self.trainer.strategy.launcher is None:  # no process is forked or spawned from this one
            for logger in self.trainer.loggers:
                if isinstance(logger, QuietWandbLogger):
                    logger.start_in_background()  # while the Trainer sets itself up (Lightning waits for it before the data's setup)
        for logger in self.trainer.loggers:
            logger.log_hyperparams(config)  # the whole resolved config (trainer, seed, model class, data) in W&B/CSV/TB
        if (phases := os.environ.get(PHASES_ENV)) and process_rank() == 0:  # bench/end_to_end.py's breakdown
            self.trainer.callbacks.append(PhaseTimes(phases, {"start": self.session.started, "built": time.monotonic()}, self.subcommand))

    def _check_optimizer(self) -> None:
        """Build the optimizer and scheduler once on a dummy parameter: a bad value (lr < 0, betas > 1, ...) is
        refused now, not after the data has been read and the model built on the device."""
        factory = getattr(self.model, "optimizer_factory", None)
        if not callable(factory) or self.subcommand != "fit":
            return
        groups = getattr(self.model, "parameter_groups", None)
        if callable(groups):
            try:
                groups()  # --model.lr_multipliers selectors that match no parameter are refused here
            except ValueError as exc:
                raise ConfigError(_named(_first_line(exc), "--model.lr_multipliers")) from exc
        try:
            optimizer = factory([torch.nn.Parameter(torch.zeros(1))])
        except (ValueError, TypeError) as exc:
            raise ConfigError(_named(_first_line(exc), "--model.optimizer")) from exc
        scheduler = getattr(self.model, "scheduler_factory", None)
        if callable(scheduler):
            try:
                self.model.build_scheduler(optimizer, total_steps=1000)
            except (ValueError, TypeError, ZeroDivisionError) as exc:
                raise ConfigError(_named(_first_line(exc), "--model.scheduler")) from exc


def _plain_values(value: Any) -> Any:
    """jsonargparse keeps a value checked against a restricted type (``PositiveInt``) as an ``int`` subclass;
    one carried into another class's argument (``--model MLPClassifier --model.hidden_sizes [16] --model
    NumpyMLPClassifier``) then made every YAML dump of the config fail. Plain ints and floats dump anywhere."""
    if isinstance(value, Namespace):
        for key, item in vars(value).items():
            setattr(value, key, _plain_values(item))
        return value
    if isinstance(value, list):
        return [_plain_values(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain_values(v) for k, v in value.items()}
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and type(value) is not int:
        return int(value)
    if isinstance(value, float) and type(value) is not float:
        return float(value)
    return value


def _root_cause(exc: BaseException) -> BaseException:
    """jsonargparse wraps a constructor's own error (which names the flag) in its own union-type error."""
    while (inner := exc.__cause__ or exc.__context__) is not None and isinstance(inner, (ValueError, TypeError, MisconfigurationException)):
        exc = inner
    return exc


def _named(message: str, flag: str) -> str:
    """torch's messages ("Invalid learning rate: -0.1") don't say which flag; ours already do."""
    return message if message.startswith("--") else f"{flag}: {message}"


def _first_line(exc: BaseException) -> str:
    """One line for the user: the message's first line, and where that only introduces what follows ("Problem with
    given class_path 'X':"), the lines after it joined on (at most 400 characters)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if not lines[0].endswith(":") or len(lines) == 1:
        return lines[0]
    joined = " ".join(lines)
    return joined if len(joined) <= 400 else joined[:397] + "..."
