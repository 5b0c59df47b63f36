"""A LightningArgumentParser whose errors are one line naming the flag, not usage text and a traceback."""

from __future__ import annotations

import re
import sys
from contextvars import ContextVar
from typing import Any, NoReturn

from lightning.pytorch.cli import LightningArgumentParser

from cli.count_or_fraction import ints_first
from core.run_layout import ExitCode
from cli.unknown_keys import unknown_key_message

USAGE_ERROR_EXIT_CODE = ExitCode.BAD_INPUT
_parsed_args: ContextVar[list[str]] = ContextVar("parsed_args", default=[])  # what the error names the flag or file from


def one_line(message: str) -> str:
    """``Parser key "data.batch_size":\\n  Not of type PositiveInt: 0 does not conform to restriction v>0``
    becomes ``--data.batch_size: not of type PositiveInt: 0 does not conform to restriction v>0``; for a
    ``class_path`` argument (``--model``) the first problem inside the chosen class is named instead."""
    text = " ".join(str(message).split())
    inner = re.search(r"""Parser key "([\w.]+)":.*?Problem with given class_path '[\w.]+': Parser key "([\w.]+)": (.*?)(?: - Expected a <class 'NoneType'>.*)?$""", text)
    if inner:
        text = f"--{inner.group(1)}.{inner.group(2)}: {inner.group(3)}"
    text = re.sub(r'Parser key "([\w.]+)": ?', lambda m: f"--{m.group(1)}: ", text)
    text = re.sub(r"(--[\w.]+: )N(ot of type)", r"\1n\2", text)
    return text if len(text) <= 400 else text[:397] + "..."


def _parameter_docs(component: Any) -> dict[str, str]:
    import docstring_parser  # a dependency of LightningCLI's jsonargparse extra

    doc = getattr(component, "__init__", component).__doc__ or getattr(component, "__doc__", None) or ""
    return {p.arg_name: p.description for p in docstring_parser.parse(doc).params if p.description}


class OneLineErrorParser(LightningArgumentParser):
    def add_class_arguments(self, theclass: Any, nested_key: str | None = None, *args: Any, skip: set | None = None, **kwargs: Any) -> list[str]:
        """jsonargparse's, except that a parameter typed ``int | float`` tries ``int`` first whatever order
        Python's typing cache gave its annotation (``cli/count_or_fraction.py``): ``--trainer.limit_val_batches
        2`` is 2 batches, ``0.5`` half of them."""
        reordered = ints_first(theclass)
        added = super().add_class_arguments(theclass, nested_key, *args, skip=set(skip or ()) | set(reordered), **kwargs)
        container = self.groups.get(nested_key, self) if nested_key else self
        docs = _parameter_docs(theclass) if reordered else {}
        for name, (typehint, default) in reordered.items():
            dest = f"{nested_key}.{name}" if nested_key else name
            container.add_argument(f"--{dest}", type=typehint, default=default, help=docs.get(name))
            added.append(dest)
        return added

    def parse_args(self, args: Any = None, *rest: Any, **kwargs: Any) -> Any:
        token = _parsed_args.set([str(a) for a in (sys.argv[1:] if args is None else args)])
        try:
            return super().parse_args(args, *rest, **kwargs)
        finally:
            _parsed_args.reset(token)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:
            super().error(message, ex)
        _exit_with(unknown_key_message(str(message), self, _parsed_args.get()) or one_line(message))


class UsageExit(SystemExit):
    """A usage error, already printed as one line; it carries that line for the run's outcome record."""

    def __init__(self, line: str):
        super().__init__(USAGE_ERROR_EXIT_CODE)
        self.line = line


def _exit_with(line: str) -> NoReturn:
    print(f"error: {line}", file=sys.stderr)
    raise UsageExit(line)


def usage_error(message: str) -> NoReturn:
    """The same one-line error for checks made after parsing (ranges, files, run directories)."""
    _exit_with(one_line(message))
