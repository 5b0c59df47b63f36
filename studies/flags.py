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

from studies.study_yaml import load_yaml  # the study file's YAML rules (1e-3 is a number)

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
    return canonical_key(a) == canonical_key(b)


def canonical_key(key: str) -> str:
    return key.removeprefix("--").replace(".init_args.", ".")


def canonical_flags(flags: dict[str, Any]) -> dict[str, Any]:
    """Flags as jsonargparse reads them, for comparing two studies: ``init_args`` levels dropped from keys
    (and from ``class_path`` values' dicts alike), so ``model.optimizer.lr`` is ``model.init_args.optimizer.init_args.lr``."""
    return {canonical_key(k): _canonical_value(v) for k, v in flags.items()}


def _canonical_value(value: Any) -> Any:
    if isinstance(value, dict):
        flat = {k: _canonical_value(v) for k, v in value.items() if k != "init_args"}
        flat.update({k: _canonical_value(v) for k, v in (value.get("init_args") or {}).items()} if isinstance(value.get("init_args"), dict) else {})
        return flat
    if isinstance(value, (list, tuple)):
        return [_canonical_value(v) for v in value]
    return value


def canonical_argv(argv: Sequence[str]) -> dict[str, Any]:
    """``--a 1 --b=x`` as ``{a: 1, b: 'x'}``, values read as YAML (what jsonargparse gets), the last of a
    repeated flag winning, as on the command line: the same flags in another order or spelling compare equal."""
    parsed: dict[str, Any] = {}
    key: str | None = None
    for arg in argv:
        if arg.startswith("--"):
            key, eq, text = arg.partition("=")
            key = canonical_key(key)
            if eq:
                parsed[key], key = _yaml_value(load_yaml, text), None
            else:
                parsed[key] = True  # a bare flag, until a value follows
        elif key is not None:
            parsed[key], key = _yaml_value(load_yaml, arg), None
    return dict(sorted(parsed.items()))


def _yaml_value(load: Any, text: str) -> Any:
    try:
        return _canonical_value(load(text))
    except Exception:  # not YAML: jsonargparse takes it as the string it is
        return text


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
        return self.check(argv)[1]

    def check(self, argv: list[str]) -> tuple[Any, str | None]:
        """``fit``'s parsed config of ``argv`` (None if refused) and the one-line refusal (None if accepted)."""
        from cli.argv import prepare_argv
        from cli.session import RunSession
        from cli.validation import trainer_range_errors

        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                config = self.parser.parse_args(prepare_argv(["fit", *argv], RunSession()))
        except SystemExit:
            lines = [line for line in stderr.getvalue().splitlines() if line.strip()]
            return None, (lines[-1] if lines else "refused by train.py's parser").removeprefix("error: ")
        problems = trainer_range_errors(config.fit.trainer)
        if not problems and (problem := optimizer_error(config.fit.get("model"))):
            problems = [problem]
        return (None, " | ".join(problems)) if problems else (config.fit, None)


def optimizer_error(model: Any) -> str | None:
    """The optimizer's and scheduler's own checks (``Invalid learning rate: -0.002``), as ``train.py fit`` makes
    them on a dummy parameter once the model is built; here from the parsed config alone, so a study refuses
    such a cell before any run starts instead of failing it when its turn comes."""
    import importlib

    import torch

    def build(spec: Any, *args: Any) -> Any:
        module, _, name = spec.class_path.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        kwargs = dict(vars(spec.get("init_args") or {}))
        if "total_steps" in kwargs and kwargs["total_steps"] is None and kwargs.get("epochs") is None:
            kwargs["total_steps"] = 1000  # train.py fills it from the Trainer
        return cls(*args, **kwargs)

    init = model.get("init_args") if model is not None and hasattr(model, "get") else None
    optimizer, scheduler = (init.get("optimizer"), init.get("scheduler")) if init is not None else (None, None)
    if not hasattr(optimizer, "class_path"):
        return None
    try:
        built = build(optimizer, [torch.nn.Parameter(torch.zeros(1))])
    except (ValueError, TypeError, ImportError, AttributeError) as exc:
        return f"--model.optimizer: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
    if hasattr(scheduler, "class_path"):
        try:
            build(scheduler, built)
        except (ValueError, TypeError, ZeroDivisionError, ImportError, AttributeError) as exc:
            return f"--model.scheduler: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
    return None
