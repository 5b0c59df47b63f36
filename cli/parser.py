"""A LightningArgumentParser whose errors are one line naming the flag, not usage text and a traceback."""

from __future__ import annotations

import re
import sys
from typing import NoReturn

from lightning.pytorch.cli import LightningArgumentParser

USAGE_ERROR_EXIT_CODE = 2


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


class OneLineErrorParser(LightningArgumentParser):
    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:
            super().error(message, ex)
        print(f"error: {one_line(message)}", file=sys.stderr)
        sys.exit(USAGE_ERROR_EXIT_CODE)


def usage_error(message: str) -> NoReturn:
    """The same one-line error for checks made after parsing (ranges, files, run directories)."""
    print(f"error: {one_line(message)}", file=sys.stderr)
    sys.exit(USAGE_ERROR_EXIT_CODE)
