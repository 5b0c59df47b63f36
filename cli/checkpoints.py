"""Reading a ``--ckpt_path`` before Lightning does: safely, with a message that says what the file really is.

Evaluation from a checkpoint alone needs the model class, its hyperparameters and the data settings the
checkpoint was trained with; :func:`checkpoint_config` turns them into a config that goes *before* the
user's flags, so flags still override it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch


class CheckpointFileError(ValueError):
    """``--ckpt_path`` names something that is not a loadable, trustworthy checkpoint."""


def _file_head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(2)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict, loaded with ``weights_only`` (no pickled code can run) and memory-mapped (cheap)."""
    p = Path(path)
    if not p.exists():
        raise CheckpointFileError(f"--ckpt_path '{path}' does not exist.")
    if p.is_dir():
        raise CheckpointFileError(f"--ckpt_path '{path}' is a directory; pass a checkpoint file such as '{p / 'checkpoints' / 'last.ckpt'}'.")
    head = _file_head(p)
    if head != b"PK" and head[:1] != b"\x80":  # neither torch's zip format nor a raw pickle
        raise CheckpointFileError(
            f"--ckpt_path '{path}' is not a checkpoint: it was not written by torch.save (a text or YAML file?). "
            "Pass a .ckpt file from runs/<name>/version_<k>/checkpoints/."
        )
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True, mmap=head == b"PK")
    except Exception as exc:
        text = str(exc)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if "Weights only load failed" in text and found:
            raise CheckpointFileError(
                f"--ckpt_path '{path}' refused: it contains pickled objects ({found.group(1)}) that could run code when "
                "loaded. Nothing in it was executed. Checkpoints written by train.py never contain such objects; do not "
                "load this file unless you trust its source."
            ) from None
        if "Weights only load failed" in text:
            raise CheckpointFileError(
                f"--ckpt_path '{path}' refused: it is a raw pickle that the safe loader cannot read, not a checkpoint "
                "written by train.py (those are torch zip files). Unpickling it could run code, so it was not unpickled."
            ) from None
        first = text.strip().splitlines()[0] if text.strip() else ""
        raise CheckpointFileError(f"--ckpt_path '{path}' is not a loadable checkpoint (truncated or damaged?): {type(exc).__name__}: {first}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointFileError(f"--ckpt_path '{path}' holds no Lightning checkpoint (no 'state_dict'): it is some other torch file.")
    return ckpt


def checkpoint_config(ckpt: dict[str, Any]) -> dict[str, Any]:
    """Model ``class_path``/``init_args`` and data settings recorded in a checkpoint, as a CLI config dict."""
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
