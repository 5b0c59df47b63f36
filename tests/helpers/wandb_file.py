"""Read an offline W&B run file (``run-<id>.wandb``): what W&B itself would upload, for tests to inspect.

The file is a LevelDB-style log (7-byte file header, 32 KiB blocks, records split into FULL/FIRST/MIDDLE/
LAST chunks with a 7-byte header each) of ``wandb_internal_pb2.Record`` messages.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == FULL:
            yield pb.Record.FromString(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pb.Record.FromString(pending + chunk)
        elif length == 0:
            pos += left - HEADER  # zero padding up to the next block


def config_and_history(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run's config (top-level keys -> values) and its history rows, from its offline run file."""
    files = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert files, f"no offline W&B run in {run_dir}"
    config: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    for record in records(files[-1]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            history.append({(item.key or "/".join(item.nested_key)): json.loads(item.value_json) for item in record.history.item})
    return config, history
