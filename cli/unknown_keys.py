"""A mistyped key in one line: which key, where it was given (the flag, or the config file), the nearest valid one.

jsonargparse reports ``trainer: {max_stpes: 10}`` as ``Group 'trainer' does not accept option 'max_stpes'``
or ``Subcommand 'fit' does not accept option 'trainer.max_stpes'``, and a typo inside a class
(``--model.hiden_sizes``, ``model.init_args.optimizer.init_args.lrr``) as a dump of every union subtype it
tried. :func:`unknown_key_message` turns any of these into e.g.
``/path/exp.yaml: unknown key trainer.max_stpes; did you mean trainer.max_steps?``.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

_OPTION = re.compile(r"""Option '([\w.]+)' is not accepted""")
_PARSER_KEY = re.compile(r'Parser key "([\w.]+)"')
_CLASS_BEFORE = re.compile(r"""class_path '([\w.]+)'""")
_CALLABLE_AFTER = re.compile(r"""\. Got value: Namespace\(class_path='([\w.]+)'""")  # a callable (optimizer) names its class after
_IN_GROUP = re.compile(r"""Group '([\w.]+)' does not accept option '([\w.]+)'""")
_IN_SUBCOMMAND = re.compile(r"""Subcommand '([\w.]+)' does not accept option '([\w.]+)'""")
_UNRECOGNIZED = re.compile(r"""^unrecognized arguments: (.*)$""", re.S)


def parser_keys(parser: argparse.ArgumentParser, prefix: str = "") -> Iterator[str]:
    """Every key ``parser`` (and its subcommands' parsers) accepts, dotted (``trainer.max_steps``)."""
    for action in parser._actions:
        if isinstance(action.choices, dict) and all(isinstance(p, argparse.ArgumentParser) for p in action.choices.values()):
            for name, sub in action.choices.items():
                yield from parser_keys(sub, f"{prefix}{name}.")
        elif action.dest and action.dest != argparse.SUPPRESS and not action.dest.endswith("help"):
            yield prefix + action.dest


def class_keys(class_path: str) -> list[str]:
    """The parameters jsonargparse accepts for ``class_path`` (``torch.optim.SGD``: ``lr``, ``momentum``, ...)."""
    from jsonargparse import ArgumentParser

    module, _, name = class_path.rpartition(".")
    try:
        component = getattr(importlib.import_module(module), name)
        parser = ArgumentParser(exit_on_error=False)
        parser.add_class_arguments(component, fail_untyped=False, sub_configs=True)
    except Exception:  # noqa: BLE001 - only a suggestion is lost
        return []
    return list(parser_keys(parser))


def _without_init_args(key: str) -> str:
    return ".".join(part for part in key.split(".") if part != "init_args")


def _flattened(value: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield f"{prefix}{k}"
            yield from _flattened(v, f"{prefix}{k}.")
    elif isinstance(value, list):
        for item in value:
            yield from _flattened(item, prefix)


def _given_as(key: str, args: list[str]) -> tuple[str, str] | None:
    """(where, the key as the user spelled it): the flag that set ``key``, else the last config file holding it."""
    wanted = _without_init_args(key)
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag.startswith("--") and _without_init_args(flag[2:]) == wanted:
            return flag, flag
    configs = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("--config", "-c")]
    configs += [a.split("=", 1)[1] for a in args if a.startswith("--config=")]
    for config in reversed(configs):
        is_text = "\n" in config  # validate/test/predict --ckpt_path: the checkpoint's config goes in as YAML text
        try:
            content = yaml.safe_load(config if is_text else Path(config).read_text())
        except (OSError, ValueError, yaml.YAMLError):
            continue
        spelled = next((k for k in _flattened(content) if _without_init_args(k) == wanted), None)
        if spelled is not None:
            return ("the checkpoint's saved config" if is_text else config), spelled
    return None


def _suggest(spelled: str, unknown: str, valid: list[str]) -> str:
    match = difflib.get_close_matches(unknown, valid, n=1, cutoff=0.6)
    if match:
        return f"; did you mean {spelled[: len(spelled) - len(unknown)] + match[0]}?"
    return f"; valid: {', '.join(valid)}" if 0 < len(valid) <= 8 else "; see --help for the valid keys"


def _one(parent: str, unknown: str, valid: list[str], args: list[str], owner: str | None) -> str:
    key = f"{parent}.{unknown}" if parent else unknown
    where, spelled = _given_as(key, args) or ("a config file", key)
    of = f" ({owner} has no parameter '{unknown}')" if owner else ""
    if where.startswith("--"):
        return f"{where}: no such flag{of}{_suggest(spelled, unknown, valid)}"
    return f"{where}: unknown key {spelled}{of}{_suggest(spelled, unknown, valid)}"


def _children(keys: list[str], parent: str) -> list[str]:
    return [k[len(parent) + 1 :] for k in keys if k.startswith(f"{parent}.")]


def _among(keys: list[str], key: str, args: list[str]) -> str:
    """``key`` is not one of ``keys``: compared with its own group's keys (``trainer.max_stpes`` with the
    Trainer's), or with all of them when its group is unknown too (``trainr.max_steps``)."""
    group, _, leaf = key.rpartition(".")
    if group and (siblings := _children(keys, group)):
        return _one(group, leaf, siblings, args, None)
    return _one("", key, keys, args, None)


def _in_class(message: str, args: list[str]) -> str | None:
    """``Option 'K' is not accepted`` inside a ``class_path``'s problems: the key's parents are every
    ``Parser key`` before it (``model``, then ``optimizer`` inside the model), its class the innermost one."""
    if not (option := _OPTION.search(message)) or not (parents := _PARSER_KEY.findall(message[: option.start()])):
        return None
    after = _CALLABLE_AFTER.match(message, option.end())
    classes = _CLASS_BEFORE.findall(message[: option.start()])
    class_path = after.group(1) if after else classes[-1] if classes else None
    return _one(".".join(parents), option.group(1), class_keys(class_path), args, class_path) if class_path else None


def _valid_keys(parser: argparse.ArgumentParser, args: list[str]) -> list[str]:
    """The keys of the subcommand being parsed (``fit``: ``trainer.max_steps``, ...), else of ``parser`` itself."""
    for action in parser._actions:
        if isinstance(action.choices, dict) and (name := next((a for a in args if a in action.choices), None)):
            return list(parser_keys(action.choices[name]))
    return list(parser_keys(parser))


def unknown_key_message(message: str, parser: argparse.ArgumentParser, args: list[str]) -> str | None:
    """The one-line message for an unknown key, or None when ``message`` is about something else."""
    if text := _in_class(message, args):
        return text
    keys = _valid_keys(parser, args)
    if m := _IN_SUBCOMMAND.search(message):
        return _among(keys, m.group(2), args)
    if m := _IN_GROUP.search(message):
        return _among(keys, f"{m.group(1)}.{m.group(2)}", args)
    if (m := _OPTION.match(message)) is not None:
        return _among(keys, m.group(1), args)
    if m := _UNRECOGNIZED.search(message):
        flags = [a.split("=", 1)[0][2:] for a in m.group(1).split() if a.startswith("--")]
        return " | ".join(_among(keys, flag, args) for flag in flags) or None
    return None
