"""Readable, filesystem-safe names for flags and their values: the cell names of a study.

A cell that sets ``model.init_args.optimizer.init_args.lr`` to 1e-3 is called ``lr=0.001``; one that sets
``model.init_args.hidden_sizes`` to [100, 100] and ``trainer.max_steps`` to 1500 is
``hidden_sizes=100-100,max_steps=1500``. The same names head the columns of the summary tables and
become the W&B ``job_type``, so a person can read every output without a lookup table.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=+-]*")
MAX_NAME = 120


def short_keys(keys: Iterable[str]) -> dict[str, str]:
    """Each dotted flag -> its shortest unique tail, ``init_args`` skipped (``...optimizer.init_args.lr`` -> ``lr``)."""
    keys = list(dict.fromkeys(keys))
    parts = {k: [p for p in k.split(".") if p != "init_args"] or [k] for k in keys}
    short: dict[str, str] = {}
    for key in keys:
        for n in range(1, len(parts[key]) + 1):
            tail = parts[key][-n:]
            if sum(1 for other in keys if parts[other][-n:] == tail) == 1 or n == len(parts[key]):
                short[key] = ".".join(tail)
                break
    return short


def format_value(value: Any) -> str:
    """A short text for a flag value: floats as ``%g``, lists joined by ``-``, a class by its own name."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value.rsplit(".", 1)[-1] if re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", value) else value
    if isinstance(value, (list, tuple)):
        return "-".join(format_value(v) for v in value) if value else "empty"
    if isinstance(value, dict):
        if "class_path" in value:
            args = value.get("init_args") or {}
            return "-".join([format_value(value["class_path"]), *(f"{k}{format_value(v)}" for k, v in args.items())])
        return "-".join(f"{k}{format_value(v)}" for k, v in value.items())
    return str(value)


def safe_name(text: str) -> str:
    """``text`` with anything outside ``[A-Za-z0-9._=+,-]`` replaced by ``_``; long names end in a short hash."""
    name = re.sub(r"[^A-Za-z0-9._=+,-]", "_", text).strip(".") or "cell"
    if len(name) > MAX_NAME:
        name = name[: MAX_NAME - 9] + "-" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return name


def cell_name(values: dict[str, Any], short: dict[str, str]) -> str:
    """``key=value`` pairs (short keys, formatted values) joined by commas."""
    return safe_name(",".join(f"{short[k]}={format_value(v)}" for k, v in values.items()))
