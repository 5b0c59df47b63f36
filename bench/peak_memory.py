"""Peak resident memory of a ``train.py`` run, read inside the process the moment the run returns.

    python bench/peak_memory.py fit --config configs/mlp.yaml --data.data_dir DIR

Takes ``train.py``'s arguments and prints one JSON line: ``peak_rss_mb`` (the kernel's high-water mark,
VmHWM) and what is resident at the end, split into anonymous memory (tensors, Python objects) and
file-backed pages (mapped library code and data files).

Why not just ``/usr/bin/time -v``: it also counts the interpreter's teardown after the run, where the
C++ static destructors of torch's (CUDA-build) libraries page in library code that was never touched
while training. Those are shared, clean pages the kernel can drop at will, and on the 2-core CPU here
they add 60-300 MB to its figure after all work is done. Both figures belong in a report; this one is
the memory the training itself needed. Single-process runs only (no DDP); Linux (reads /proc).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import train  # noqa: E402


def resident_mb() -> dict[str, float]:
    """VmHWM, VmRSS, RssAnon and RssFile of this process, in MiB."""
    fields = {}
    with open(f"/proc/{os.getpid()}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                fields[key] = round(int(value.split()[0]) / 1024, 1)  # kB
    return fields


def main(argv: list[str]) -> dict:
    if not argv or argv[0] not in ("fit", "validate", "test", "predict"):
        sys.exit("usage: python bench/peak_memory.py {fit,validate,test,predict} [train.py arguments]")
    train.main(argv)
    mem = resident_mb()
    result = {
        "command": "train.py " + " ".join(argv),
        "peak_rss_mb": mem["VmHWM"],
        "rss_at_end_mb": mem["VmRSS"],
        "anon_at_end_mb": mem["RssAnon"],
        "file_backed_at_end_mb": mem["RssFile"],
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
