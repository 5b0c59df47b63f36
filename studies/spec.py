"""The study file: what to run (a base config, the flags to vary, the seeds) and what to compare.

    name: depth
    config: configs/mlp.yaml
    flags: {trainer.max_steps: 1500}        # optional: fixed flags for every run
    grid:                                   # cartesian product; any train.py flag, dotted
      model.init_args.hidden_sizes: [[100], [100, 100, 100]]
    cells:                                  # optional named cells (not a product), each with its flags
      adam-lr0.1: {model.init_args.optimizer: {class_path: torch.optim.Adam, init_args: {lr: 0.1}}}
    seeds: [0, 1, 2]                        # each seed sets every flag in seed_flags (default: seed_everything)
    metric: val/acc                         # val/acc (higher is better) or train/loss (lower is better)
    test: true                              # also evaluate each run's best checkpoint on the test split (last: its last one)
    search:                                 # instead of grid/cells: an Optuna (TPE) search
      trials: 20
      params: {model.init_args.optimizer.init_args.lr: {low: 1.0e-5, high: 1.0e-1, log: true}}
    reported:                               # optional: what a report measured, shown beside ours in summary.md
      source: "report 002, table 1"
      metric: test/acc                      # test/acc (needs test: true), val/acc (best), val/acc_last
      values: {lr=0.001: 0.48}              # per cell, as fractions
    slurm: {partition: gpu, time: "2:00:00", gpus_per_task: 1}   # optional: resources for --launcher slurm (studies/slurm_options.py)

With both ``grid`` and ``cells``, every named cell is combined with every grid point; with neither, the
study is one cell named after it (the config as it is, over the seeds: a reproduction). Everything wrong
with the file is refused here, with one line naming the key, before any run starts.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from studies.flags import STUDY_OWNED, canonical_argv, canonical_flags, same_flag
from studies.naming import SAFE_NAME, cell_name, short_keys
from studies.slurm_options import SlurmOptionError, slurm_options
from studies.study_yaml import load_yaml

ROOT = Path(__file__).resolve().parents[1]
METRICS = {"val/acc": "max", "train/loss": "min"}  # what each metric is read from: studies.results
KEYS = ("name", "config", "description", "flags", "grid", "cells", "seeds", "seed_flags", "metric", "test", "search", "reported", "slurm")
TEST_CHECKPOINTS = ("best", "last")
REPORTED_METRICS = ("test/acc", "val/acc", "val/acc_last")  # what a report's figure is compared with: studies.results.RunResult.value
SEARCH_KEYS = ("trials", "params", "sampler_seed")
RANGE_KEYS = ("low", "high", "log", "int", "choices")


class StudySpecError(ValueError):
    """A study file that cannot run; the message names the file and the key."""


@dataclass(frozen=True)
class Cell:
    """One point of the study: its name (a directory name), the flags it sets on top of the study's, and
    its coordinates for the plots (``cell``: the named cell, if any; each grid/search flag: its value)."""

    name: str
    flags: dict[str, Any]
    coords: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchParam:
    low: float | None = None
    high: float | None = None
    log: bool = False
    int: bool = False
    choices: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class SearchSpec:
    trials: int
    params: dict[str, SearchParam]
    sampler_seed: int = 0


@dataclass(frozen=True)
class Reported:
    """A report's figures for some cells: compared with ours (mean ± std over seeds) in ``summary.md``."""

    metric: str
    values: dict[str, float]
    source: str = ""


@dataclass
class StudySpec:
    path: Path
    text: str
    name: str
    config: Path
    description: str = ""
    flags: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    named: dict[str, dict[str, Any]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    seed_flags: list[str] = field(default_factory=lambda: ["seed_everything"])
    metric: str = "val/acc"
    test: bool = False
    test_checkpoint: str = "best"  # which checkpoint the test split evaluates: best (by val/acc) or last
    search: SearchSpec | None = None
    reported: Reported | None = None
    slurm: dict[str, Any] = field(default_factory=dict)  # the raw block; studies.slurm_options reads it

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric] == "max"

    def varied_keys(self) -> list[str]:
        """Every flag some cell sets, in the order the file gives them (the summary's columns)."""
        keys = [k for flags in self.named.values() for k in flags] + list(self.grid)
        if self.search:
            keys += list(self.search.params)
        return list(dict.fromkeys(keys))

    def short_names(self) -> dict[str, str]:
        return short_keys(self.varied_keys())

    def cells(self) -> list[Cell]:
        """Named cells x the grid's cartesian product, in file order (empty in search mode)."""
        short = self.short_names()
        points = [dict(zip(self.grid, combo)) for combo in itertools.product(*self.grid.values())] if self.grid else []
        if not self.named and not points:  # neither grid nor cells: the config as it is, over the seeds
            return [] if self.search else [Cell(self.name, {}, {})]
        if not self.named:
            return [Cell(cell_name(p, short), p, p) for p in points]
        if not points:
            return [Cell(name, dict(flags), {"cell": name}) for name, flags in self.named.items()]
        return [Cell(f"{name},{cell_name(p, short)}", {**flags, **p}, {"cell": name, **p}) for name, flags in self.named.items() for p in points]

    def identity(self, extra_args: list[str]) -> dict[str, Any]:
        """What makes two studies the same study (cells, seeds and the trial budget may only grow)."""
        search = None
        if self.search:
            search = {"params": {k: vars(v) | {"choices": list(v.choices) if v.choices else None} for k, v in self.search.params.items()}, "sampler_seed": self.search.sampler_seed}
        return {
            "name": self.name,
            "config_sha256": hashlib.sha256(self.config.read_bytes()).hexdigest(),
            "flags": canonical_flags(self.flags),
            "extra_args": canonical_argv(extra_args),
            "seed_flags": self.seed_flags,
            "metric": self.metric,
            "test": self.test,
            **({"test_checkpoint": self.test_checkpoint} if self.test_checkpoint != "best" else {}),  # absent: best (older records)
            "search": search,
        }


def _fail(path: Path, message: str) -> StudySpecError:
    return StudySpecError(f"study file {path}: {message}")


def _flag(path: Path, where: str, key: Any) -> str:
    if not isinstance(key, str) or not re.fullmatch(r"(--)?[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*", key):
        raise _fail(path, f"{where}: '{key}' is not a flag name (dotted, like model.init_args.hidden_sizes)")
    key = key.removeprefix("--")
    if any(same_flag(key, owned) for owned in STUDY_OWNED):
        raise _fail(path, f"{where}: '{key}' is set by the study itself for every run; remove it")
    return key


def _mapping(path: Path, where: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(path, f"{where}: must be a mapping of flag: value, got {value!r}")
    return {_flag(path, where, k): v for k, v in value.items()}


def _resolve_config(path: Path, value: Any) -> Path:
    if not isinstance(value, str) or not value:
        raise _fail(path, "config: must name the base config file (e.g. configs/mlp.yaml)")
    p = Path(value)
    candidates = [p] if p.is_absolute() else [Path.cwd() / p, ROOT / p, path.parent / p]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise _fail(path, f"config: file '{value}' not found (looked in {', '.join(str(c.parent) for c in candidates)})")


def _search(path: Path, raw: Any) -> SearchSpec:
    if not isinstance(raw, dict):
        raise _fail(path, "search: must be a mapping with trials and params")
    if unknown := sorted(set(raw) - set(SEARCH_KEYS)):
        raise _fail(path, f"search: unknown key '{unknown[0]}' (known: {', '.join(SEARCH_KEYS)})")
    trials = raw.get("trials")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise _fail(path, f"search.trials: must be a positive integer, got {trials!r}")
    seed = raw.get("sampler_seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise _fail(path, f"search.sampler_seed: must be an integer, got {seed!r}")
    params_raw = raw.get("params")
    if not isinstance(params_raw, dict) or not params_raw:
        raise _fail(path, "search.params: must be a non-empty mapping of flag: {low, high[, log, int]} or {choices: [...]}")
    params: dict[str, SearchParam] = {}
    for key, spec in params_raw.items():
        flag = _flag(path, "search.params", key)
        where = f"search.params.{flag}"
        if not isinstance(spec, dict):
            raise _fail(path, f"{where}: must be {{low, high[, log, int]}} or {{choices: [...]}}, got {spec!r}")
        if unknown := sorted(set(spec) - set(RANGE_KEYS)):
            raise _fail(path, f"{where}: unknown key '{unknown[0]}' (known: {', '.join(RANGE_KEYS)})")
        if "choices" in spec:
            if not isinstance(spec["choices"], list) or not spec["choices"] or set(spec) != {"choices"}:
                raise _fail(path, f"{where}.choices: must be a non-empty list (and alone)")
            params[flag] = SearchParam(choices=tuple(spec["choices"]))
            continue
        low, high = spec.get("low"), spec.get("high")
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in (low, high)) or not low < high:
            raise _fail(path, f"{where}: needs numbers low < high, got low={low!r}, high={high!r}")
        if spec.get("log") and low <= 0:
            raise _fail(path, f"{where}: log: true needs low > 0, got {low}")
        params[flag] = SearchParam(low=low, high=high, log=bool(spec.get("log")), int=bool(spec.get("int")))
    return SearchSpec(trials=trials, params=params, sampler_seed=seed)


def parse_spec(path: Path, text: str) -> StudySpec:
    """Everything checkable without train.py; :func:`studies.main.check_flags` then checks the flags themselves."""
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        raise _fail(path, f"not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(raw, dict):
        raise _fail(path, "must be a YAML mapping (name, config, grid, seeds, metric, ...)")
    if unknown := [k for k in raw if k not in KEYS]:
        raise _fail(path, f"unknown key '{unknown[0]}' (known: {', '.join(KEYS)})")
    name = raw.get("name")
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise _fail(path, f"name: must be a name made of letters, digits and ._=+- (a directory name), got {name!r}")
    spec = StudySpec(path=path, text=text, name=name, config=_resolve_config(path, raw.get("config")), description=str(raw.get("description") or ""))
    spec.flags = _mapping(path, "flags", raw.get("flags"))
    grid = raw.get("grid")
    if grid is not None and not isinstance(grid, dict):
        raise _fail(path, f"grid: must be a mapping of flag: [values], got {grid!r}")
    for key, values in (grid or {}).items():
        flag = _flag(path, "grid", key)
        if not isinstance(values, list):
            raise _fail(path, f"grid.{flag}: must be a list of values, got {values!r}")
        if not values:
            raise _fail(path, f"grid.{flag}: the list of values is empty")
        spec.grid[flag] = values
    cells = raw.get("cells")
    if cells is not None and (not isinstance(cells, dict) or not cells):
        raise _fail(path, "cells: must be a non-empty mapping of cell name: {flag: value, ...}")
    for cname, flags in (cells or {}).items():
        if not isinstance(cname, str) or not SAFE_NAME.fullmatch(cname):
            raise _fail(path, f"cells: '{cname}' is not a usable cell name (letters, digits and ._=+-; it becomes a directory)")
        spec.named[cname] = _mapping(path, f"cells.{cname}", flags)
        if not spec.named[cname]:
            raise _fail(path, f"cells.{cname}: sets no flag")
    if raw.get("search") is not None:
        if spec.grid or spec.named:
            raise _fail(path, "search: give either grid/cells or search, not both")
        spec.search = _search(path, raw["search"])
    elif not spec.grid and not spec.named and "grid" in raw:
        raise _fail(path, "grid: empty; give a grid (flag: [values]), named cells or a search")
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds) or len(set(seeds)) < len(seeds):
        raise _fail(path, f"seeds: must be a non-empty list of distinct non-negative integers, got {seeds!r}")
    spec.seeds = seeds
    seed_flags = raw.get("seed_flags", ["seed_everything"])
    if not isinstance(seed_flags, list) or not seed_flags:
        raise _fail(path, f"seed_flags: must be a non-empty list of flags set to the seed, got {seed_flags!r}")
    spec.seed_flags = [f if f == "seed_everything" else _flag(path, "seed_flags", f) for f in seed_flags]
    metric = raw.get("metric", "val/acc")
    if metric not in METRICS:
        raise _fail(path, f"metric: unknown metric {metric!r} (known: {', '.join(METRICS)})")
    spec.metric = metric
    test = raw.get("test", False)
    if not isinstance(test, bool) and test not in TEST_CHECKPOINTS:
        raise _fail(path, f"test: must be true (= best), best, last or false, got {test!r}")
    spec.test, spec.test_checkpoint = test is not False, "best" if test is True or test is False else test
    _check_overlaps(spec)
    if raw.get("reported") is not None:
        spec.reported = _reported(spec, raw["reported"])
    if raw.get("slurm") is not None:
        try:
            slurm_options(raw["slurm"], {})
        except SlurmOptionError as exc:
            raise _fail(path, str(exc)) from None
        spec.slurm = raw["slurm"]
    return spec


def _reported(spec: StudySpec, raw: Any) -> Reported:
    path = spec.path
    if not isinstance(raw, dict) or set(raw) - {"source", "metric", "values"}:
        raise _fail(path, "reported: must be a mapping with metric, values and optionally source")
    metric = raw.get("metric")
    if metric not in REPORTED_METRICS:
        raise _fail(path, f"reported.metric: must be one of {', '.join(REPORTED_METRICS)}, got {metric!r}")
    if metric == "test/acc" and not spec.test:
        raise _fail(path, "reported.metric: test/acc needs test: true, best or last (each run's checkpoint evaluated on the test split)")
    if spec.search:
        raise _fail(path, "reported: compares named cells or grid points; a search has no fixed cells")
    values = raw.get("values")
    names = [c.name for c in spec.cells()]
    if not isinstance(values, dict) or not values:
        raise _fail(path, f"reported.values: must be a mapping of cell name: figure (cells: {', '.join(names)})")
    for cell, value in values.items():
        if cell not in names:
            raise _fail(path, f"reported.values: '{cell}' is not a cell of this study (cells: {', '.join(names)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise _fail(path, f"reported.values.{cell}: must be an accuracy as a fraction in [0, 1] (49.5% is 0.495), got {value!r}")
    return Reported(metric=metric, values={k: float(v) for k, v in values.items()}, source=str(raw.get("source") or ""))


def _check_overlaps(spec: StudySpec) -> None:
    """A flag set in two places (fixed and varied, or a seed flag) would silently lose one of the values."""
    varied = spec.varied_keys()
    for key in varied:
        if any(same_flag(key, f) for f in spec.flags):
            raise _fail(spec.path, f"flags: '{key}' is also varied by the study; set it in one place")
    for seed_flag in spec.seed_flags:
        if any(same_flag(seed_flag, k) for k in [*varied, *spec.flags]):
            raise _fail(spec.path, f"'{seed_flag}' is set by seeds: (seed_flags); remove it from flags/grid/cells")
    for grid_key in spec.grid:
        for cname, flags in spec.named.items():
            if any(same_flag(grid_key, k) for k in flags):
                raise _fail(spec.path, f"cells.{cname}: sets '{grid_key}', which the grid varies")
    names = [c.name for c in spec.cells()]
    if dup := next((n for n in names if names.count(n) > 1), None):
        raise _fail(spec.path, f"two cells get the same name '{dup}' (duplicate grid values?)")


def load_spec(path: str | Path) -> StudySpec:
    p = Path(path)
    if not p.is_file():
        raise StudySpecError(f"study file {p}: not found")
    return parse_spec(p, p.read_text())
