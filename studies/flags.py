"""Study flags as train.py command-line arguments, and checking them with train.py's own parser.

A study names flags the way the command line does, dotted and without ``--``
(``model.init_args.hidden_sizes``); values are YAML values. Checking every cell with the very parser
``train.py fit`` uses, in this process and before any run starts, turns an unknown flag or a bad value
into one line naming the cell, instead of a failed run an hour into the study.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Sequence
from typing import Any

# Set per run by the study itself: a study file or a command line that sets them is refused.
STUDY_OWNED = ("runs_dir", "run_name", "ckpt_path", "trainer.default_root_dir", "config")


def to_cli(value: Any) -> str:
    """One command-line value jsonargparse reads back as ``value`` (YAML/JSON text; floats keep a dot)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        text = repr(value)
        return re.sub(r"^(-?\d+)e", r"\1.0e", text)  # YAML 1.1 reads "1e-06" as a string, "1.0e-06" as a float
    if isinstance(value, str):
        return value
    return json.dumps(value)


def to_argv(flags: dict[str, Any]) -> list[str]:
    argv: list[str] = []
    for key, value in flags.items():
        argv += [f"--{key}", to_cli(value)]
    return argv


def flag_key(arg: str) -> str:
    """``--trainer.max_steps=5`` or ``--trainer.max_steps`` -> ``trainer.max_steps``."""
    return arg[2:].split("=", 1)[0]


def keys_in_argv(argv: Sequence[str]) -> list[str]:
    return [flag_key(a) for a in argv if a.startswith("--")]


def same_flag(a: str, b: str) -> bool:
    """``model.hidden_sizes`` and ``model.init_args.hidden_sizes`` are one flag to jsonargparse."""
    return a.replace(".init_args.", ".") == b.replace(".init_args.", ".")


class FitParser:
    """train.py's ``fit`` parser, built once; ``error(argv)`` is its one-line refusal of ``argv``, or None."""

    def __init__(self) -> None:
        import train  # noqa: F401  - registers the models
        from cli.lightning_cli import CIFARCLI
        from datamodules import CIFAR10DataModule
        from lit_models import ClassifierModule

        class _Built(Exception):
            pass

        class _ParserOnly(CIFARCLI):
            def parse_arguments(self, parser: Any, args: Any) -> None:
                raise _Built(parser)

        try:
            _ParserOnly(ClassifierModule, CIFAR10DataModule, subclass_mode_model=True, auto_configure_optimizers=False, args=["fit"])
        except _Built as built:
            self.parser = built.args[0]

    def error(self, argv: list[str]) -> str | None:
        from cli.argv import prepare_argv
        from cli.session import RunSession
        from cli.validation import trainer_range_errors

        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                config = self.parser.parse_args(prepare_argv(["fit", *argv], RunSession()))
        except SystemExit:
            lines = [line for line in stderr.getvalue().splitlines() if line.strip()]
            return (lines[-1] if lines else "refused by train.py's parser").removeprefix("error: ")
        problems = trainer_range_errors(config.fit.trainer)
        return " | ".join(problems) if problems else None
