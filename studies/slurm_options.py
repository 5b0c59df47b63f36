"""A study's SLURM resources: the ``slurm:`` block of its study file, overridden by ``--slurm.<key>`` flags.

    slurm:
      partition: gpu          # sbatch --partition
      time: "4:00:00"         # per job: minutes (240) or [D-]HH:MM[:SS]; a run that outlives it is requeued
      cpus_per_task: 8        # the run's threads (OMP_NUM_THREADS)
      gpus_per_task: 1
      mem: 32G                # sbatch --mem
      account: my-lab
      qos: normal
      array_parallelism: 16   # how many of the study's jobs run at once (the job array's %N)
      workers: 4              # search studies: how many search workers share the Optuna search
      sbatch: {constraint: a100, exclude: "node[01-02]"}   # any other sbatch option, by its long name
      setup: ["module load cuda/12.4", "source ~/venv/bin/activate"]   # shell lines before the run

Everything wrong here is refused in one line naming the key, before anything is submitted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

INT_KEYS = ("cpus_per_task", "gpus_per_task", "array_parallelism", "workers")
STR_KEYS = ("partition", "mem", "account", "qos")
KEYS = ("partition", "time", "cpus_per_task", "gpus_per_task", "mem", "account", "qos", "array_parallelism", "workers", "sbatch", "setup")
_TIME = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")
_MEM = re.compile(r"\d+(\.\d+)?[KMGT]?B?", re.IGNORECASE)


class SlurmOptionError(ValueError):
    """A bad ``slurm:`` value or ``--slurm.*`` flag; the message names it."""


@dataclass
class SlurmOptions:
    partition: str | None = None
    time: int = 60  # minutes per job
    cpus_per_task: int = 1
    gpus_per_task: int = 0
    mem: str | None = None
    account: str | None = None
    qos: str | None = None
    array_parallelism: int = 64
    workers: int = 2
    sbatch: dict[str, str] = field(default_factory=dict)
    setup: list[str] = field(default_factory=list)

    def executor_parameters(self) -> dict[str, Any]:
        """``submitit.SlurmExecutor.update_parameters`` keywords."""
        params: dict[str, Any] = {"time": self.time, "cpus_per_task": self.cpus_per_task, "array_parallelism": self.array_parallelism,
                                  "setup": list(self.setup), "additional_parameters": {"requeue": True, **self.sbatch}}
        params.update({k: getattr(self, k) for k in ("partition", "mem", "account", "qos") if getattr(self, k) is not None})
        if self.gpus_per_task:
            params["gpus_per_task"] = self.gpus_per_task
        return params


def minutes(value: Any, where: str) -> int:
    """``90``, ``"90"``, ``"1:30:00"``, ``"2-00:00:00"`` -> minutes (SLURM's own time formats)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _TIME.fullmatch(str(value).strip())
    if not match or isinstance(value, bool):
        raise SlurmOptionError(f"{where}: a time limit is minutes or [D-]HH:MM[:SS], got {value!r}")
    days, a, b, c = match.groups()
    if b is None:  # "MM"
        total = int(a) + 24 * 60 * int(days or 0)
    elif c is None:  # "HH:MM" with a day, "MM:SS" without (SLURM's reading)
        total = (int(a) * 60 + int(b) + 24 * 60 * int(days)) if days else int(a) + (int(b) > 0)
    else:  # "HH:MM:SS"
        total = int(a) * 60 + int(b) + (int(c) > 0) + 24 * 60 * int(days or 0)
    if total <= 0:
        raise SlurmOptionError(f"{where}: the time limit must be positive, got {value!r}")
    return total


def _set(options: SlurmOptions, key: str, value: Any, where: str) -> None:
    if key not in KEYS:
        raise SlurmOptionError(f"{where}: unknown SLURM option '{key}' (known: {', '.join(KEYS)}; other sbatch options go in sbatch:)")
    if key == "time":
        options.time = minutes(value, where)
    elif key in INT_KEYS:
        try:
            number = int(str(value))
        except ValueError:
            number = -1
        if isinstance(value, bool) or number < (0 if key == "gpus_per_task" else 1):
            raise SlurmOptionError(f"{where}: must be an integer >= {0 if key == 'gpus_per_task' else 1}, got {value!r}")
        setattr(options, key, number)
    elif key == "mem":
        if not _MEM.fullmatch(str(value)):
            raise SlurmOptionError(f"{where}: memory like 16G or 16000M, got {value!r}")
        options.mem = str(value)
    elif key == "sbatch":
        if not isinstance(value, dict):
            raise SlurmOptionError(f"{where}: must be a mapping of sbatch option: value, e.g. {{constraint: a100}}")
        options.sbatch.update({str(k).replace("_", "-").lstrip("-"): value[k] for k in value})
    elif key == "setup":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SlurmOptionError(f"{where}: must be a list of shell lines")
        options.setup.extend(value)
    else:
        setattr(options, key, str(value))


def slurm_options(block: Any, flags: dict[str, Any]) -> SlurmOptions:
    """The study file's ``slurm:`` block, then the command line's ``--slurm.<key>`` flags over it."""
    options = SlurmOptions()
    if block is not None and not isinstance(block, dict):
        raise SlurmOptionError(f"slurm: must be a mapping of option: value (known: {', '.join(KEYS)})")
    for key, value in (block or {}).items():
        _set(options, str(key), value, f"slurm.{key}")
    for key, value in flags.items():
        if value is None:
            continue
        if key == "sbatch":  # KEY=VALUE strings from the command line
            pairs = {}
            for item in value:
                name, sep, val = item.partition("=")
                if not sep or not name:
                    raise SlurmOptionError(f"--slurm.sbatch: give OPTION=VALUE (e.g. constraint=a100), got {item!r}")
                pairs[name] = val
            value = pairs
        _set(options, key, value, f"--slurm.{key}")
    return options

