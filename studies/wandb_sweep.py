"""The same study as a W&B sweep file, so ``wandb agent`` on any number of machines runs it.

A grid study becomes ``method: grid`` over its grid flags and the seed; named cells (not a product)
become one ``config`` parameter whose values are the cells' flags as YAML text, which train.py reads as
an extra ``--config`` on top of the base config. A search becomes ``method: bayes`` over the same
ranges. Fixed flags and the study's command-line flags go into the command, so every agent runs the
same training runs as ``scripts/study.py`` (a grid: every cell x seed). Two differences remain: W&B ranks
runs by the last logged ``val/acc`` (the study by the best one), and a bayes search runs each trial with
the first seed only (the study averages a trial over all its seeds).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from studies.flags import to_argv
from studies.spec import ROOT, StudySpec, StudySpecError


def nested(flags: dict[str, Any]) -> dict[str, Any]:
    """``{"model.init_args.lr": 1}`` -> ``{"model": {"init_args": {"lr": 1}}}`` (a config file's shape)."""
    tree: dict[str, Any] = {}
    for key, value in flags.items():
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def _config_path(spec: StudySpec) -> str:
    try:
        return str(spec.config.relative_to(ROOT))  # agents run from the repository root
    except ValueError:
        return str(spec.config)


def sweep_config(spec: StudySpec, extra_args: list[str]) -> dict[str, Any]:
    if len(spec.seed_flags) > 1:
        raise StudySpecError(f"study file {spec.path}: --export-wandb-sweep: a W&B sweep sets one flag per parameter, but seed_flags names {len(spec.seed_flags)}")
    seed_flag = spec.seed_flags[0]
    parameters: dict[str, Any] = {}
    if spec.search:
        method = "bayes"
        for flag, p in spec.search.params.items():
            if p.choices is not None:
                parameters[flag] = {"values": list(p.choices)}
            elif p.int:
                parameters[flag] = {"distribution": "int_uniform", "min": int(p.low), "max": int(p.high)}
            else:
                parameters[flag] = {"distribution": "log_uniform_values" if p.log else "uniform", "min": p.low, "max": p.high}
        parameters[seed_flag] = {"value": spec.seeds[0]}
    else:
        method = "grid"
        if spec.named:
            parameters["config"] = {"values": [json.dumps(nested(flags)) for flags in spec.named.values()]}
        for flag, values in spec.grid.items():
            parameters[flag] = {"values": values}
        parameters[seed_flag] = {"values": list(spec.seeds)}
    config: dict[str, Any] = {
        "name": spec.name,
        "program": "train.py",
        "method": method,
        "metric": {"name": spec.metric, "goal": "maximize" if spec.higher_is_better else "minimize"},
        "parameters": parameters,
        "command": ["${env}", "${interpreter}", "${program}", "fit", "--config", _config_path(spec), *to_argv(spec.flags), *extra_args, "--run_name", spec.name, "${args}"],
    }
    if spec.description:
        config["description"] = spec.description
    if spec.search:
        config["run_cap"] = spec.search.trials
    return config


def export_sweep(spec: StudySpec, extra_args: list[str], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# W&B sweep of study '{spec.name}' (exported from {spec.path} by scripts/study.py --export-wandb-sweep).\n# Run: wandb sweep {path}  then, on any number of machines in the repository root: wandb agent <sweep-id>\n"
    path.write_text(header + yaml.safe_dump(sweep_config(spec, extra_args), sort_keys=False, width=200))
    return path
