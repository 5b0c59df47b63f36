"""The study file's YAML rules, read by ``spec`` (study files) and ``flags`` (flag values, as jsonargparse
reads them). A module of its own because ``spec`` imports ``flags``: in either, the two would import each other."""

from __future__ import annotations

import re
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """YAML 1.2 floats: ``1e-6`` is a number (PyYAML's YAML 1.1 rules read it as a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*\.?\d*(?:[eE][-+]?\d+)|\d[\d_]*\.\d*|\.\d+(?:[eE][-+]?\d+)?|\.inf|\.Inf|\.INF|\.nan|\.NaN|\.NAN)$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
