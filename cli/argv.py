"""Command-line rewriting done before jsonargparse sees the arguments; each rule keeps flags winning.

* ``validate``/``test``/``predict --ckpt_path X``: X's model and data config go in *first*, so any later
  flag or config file overrides them; evaluation from a checkpoint alone needs nothing else.
* ``--run_name`` defaults to the config files' stems joined by ``_`` (else the model's name) and goes in
  first too: a config file that sets ``run_name`` (a saved ``config.yaml``, a ``--print_config`` output)
  keeps its own.
* ``--trainer.logger CSVLogger``/``TensorBoardLogger`` get the placeholder ``save_dir`` their signature
  requires; it means the run directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from cli.checkpoints import checkpoint_config, read_checkpoint
from core.run_layout import CHECKPOINT_DIR

if TYPE_CHECKING:
    from cli.session import RunSession

SUBCOMMANDS = ("fit", "validate", "test", "predict")
EVAL_SUBCOMMANDS = ("validate", "test", "predict")
CONFIG_FLAGS = ("--config", "-c")


def flag_values(args: list[str], flags: tuple[str, ...]) -> list[str]:
    """Every value given to any of ``flags`` (``--f v`` and ``--f=v``), in order."""
    values = []
    for i, arg in enumerate(args):
        if arg in flags and i + 1 < len(args):
            values.append(args[i + 1])
        elif "=" in arg and arg.split("=", 1)[0] in flags:
            values.append(arg.split("=", 1)[1])
    return values


def run_name_of_checkpoint(path: str) -> str:
    """``runs/<name>/version_k/checkpoints/x.ckpt`` -> ``<name>``; any other file -> its stem."""
    p = Path(path).resolve()
    return p.parents[2].name if p.parent.name == CHECKPOINT_DIR and len(p.parents) > 2 else p.stem


def default_run_name(args: list[str]) -> str:
    """The config files' stems joined by ``_``: a recipe and its overlays name the run together (``fast_cnn.yaml``
    + ``cpu.yaml``: ``fast_cnn_cpu``). The last stem alone (``cpu``) would put every recipe's CPU runs under one
    name, where ``--ckpt_path last`` would resume another recipe's run."""
    stems = dict.fromkeys(Path(c).stem for c in flag_values(args, CONFIG_FLAGS) if Path(c).is_file())
    if stems:
        return "_".join(stems)
    models = flag_values(args, ("--model",))
    return models[-1].rsplit(".", 1)[-1].lower() if models else "run"


def logger_placeholder(args: list[str]) -> list[str]:
    if any(a.startswith(("--trainer.logger.save_dir", "--trainer.logger.init_args.save_dir")) for a in args):
        return args
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if flag != "--trainer.logger" or (not eq and i + 1 == len(args)):
            continue
        end = i + 1 if eq else i + 2  # --trainer.logger=X or --trainer.logger X
        if (value if eq else args[i + 1]).rsplit(".", 1)[-1] in ("CSVLogger", "TensorBoardLogger"):
            return [*args[:end], "--trainer.logger.save_dir", ".", *args[end:]]
    return args


def prepare_argv(argv: list[str], session: RunSession) -> list[str]:
    if not argv or argv[0] not in SUBCOMMANDS:
        return argv
    subcommand, rest = argv[0], argv[1:]
    ckpts = flag_values(rest, ("--ckpt_path",))
    if ckpts and ckpts[-1] not in ("last", "best"):
        session.checkpoint = read_checkpoint(ckpts[-1])  # refused here if unsafe or not a checkpoint
        if subcommand in EVAL_SUBCOMMANDS and (config := checkpoint_config(session.checkpoint)):
            config["run_name"] = run_name_of_checkpoint(ckpts[-1])
            rest = ["--config", yaml.safe_dump(config), *rest]  # jsonargparse takes YAML text as well as a path
    if not flag_values(rest, ("--run_name",)):
        rest = ["--run_name", default_run_name(rest), *rest]
    return [subcommand, *logger_placeholder(rest)]
