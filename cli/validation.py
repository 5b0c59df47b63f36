"""Checks made after parsing and before any data is read, for values no type annotation can refuse.

Our own classes declare their ranges as jsonargparse types (``PositiveInt``, bounded floats) and the parser
refuses bad values itself. The Trainer's signature is Lightning's (``val_check_interval: int | float | ...``),
so its ranges live in the table below; without it ``--trainer.val_check_interval 0`` is a ZeroDivisionError
minutes later. Each check returns a one-line message naming the flag, or None.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

from jsonargparse import Namespace

from cli.run_dirs import runs_dir_problem
from core.torch_internals import cpu_has_bfloat16_hardware


def _int_at_least(low: int) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            return f"must be an integer >= {low}"
        return None

    return check


def _count_or_fraction(zero_ok: bool) -> Callable[[Any], str | None]:
    """Lightning's convention for batch limits and intervals: an int counts batches, a float is a fraction."""

    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            return None  # strings/timedeltas (time-based intervals) are Lightning's to parse
        low = 0 if zero_ok else 1
        if isinstance(v, int) and v < low:
            return f"must be an integer >= {low} (batches) or a float in {'[0' if zero_ok else '(0'}, 1] (a fraction)"
        if isinstance(v, float) and not ((0.0 <= v if zero_ok else 0.0 < v) and v <= 1.0):
            count = f" (write {int(v)} for {int(v)} batches)" if v.is_integer() and v > 1 else ""
            return f"must be a float in {'[0' if zero_ok else '(0'}, 1] (a fraction) or an integer count of batches{count}"
        return None

    return check


def _non_negative_number(v: Any) -> str | None:
    return "must be >= 0" if isinstance(v, numbers.Real) and not isinstance(v, bool) and v < 0 else None


def _one_of(*allowed: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in allowed else f"must be one of {', '.join(allowed)}"


# flag -> check; None values mean "Lightning's default" and are never checked.
TRAINER_RANGES: dict[str, Callable[[Any], str | None]] = {
    "max_epochs": _int_at_least(-1),
    "min_epochs": _int_at_least(0),
    "max_steps": _int_at_least(-1),
    "min_steps": _int_at_least(0),
    "num_nodes": _int_at_least(1),
    "limit_train_batches": _count_or_fraction(zero_ok=True),
    "limit_val_batches": _count_or_fraction(zero_ok=True),
    "limit_test_batches": _count_or_fraction(zero_ok=True),
    "limit_predict_batches": _count_or_fraction(zero_ok=True),
    "overfit_batches": _count_or_fraction(zero_ok=True),
    "val_check_interval": _count_or_fraction(zero_ok=False),
    "check_val_every_n_epoch": _int_at_least(1),
    "num_sanity_val_steps": _int_at_least(-1),
    "log_every_n_steps": _int_at_least(0),
    "accumulate_grad_batches": _int_at_least(1),
    "gradient_clip_val": _non_negative_number,
    "gradient_clip_algorithm": _one_of("norm", "value"),
    "reload_dataloaders_every_n_epochs": _int_at_least(0),
}


def trainer_range_errors(trainer: Namespace) -> list[str]:
    errors = []
    for key, check in TRAINER_RANGES.items():
        value = trainer.get(key)
        if value is not None and (problem := check(value)):
            errors.append(f"--trainer.{key} {problem}, got {value!r}")
    fast = trainer.get("fast_dev_run")
    if isinstance(fast, int) and not isinstance(fast, bool) and fast < 0:
        errors.append(f"--trainer.fast_dev_run must be true/false or a number of batches >= 0, got {fast}")
    return errors


def accelerator_error(trainer: Namespace, config_files: list[str]) -> str | None:
    """A GPU config on a machine without one: say which flag makes it run, instead of Lightning's traceback."""
    import torch

    accelerator = str(trainer.get("accelerator") or "auto").lower()
    where = f"{config_files[-1]} asks for" if config_files else "The run asks for"
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        if cpu_has_bfloat16_hardware():
            overlays = ("--config configs/cpu_bf16.yaml after it (bf16-mixed, which this CPU computes in hardware; no compile) "
                        "or --config configs/cpu.yaml (float32)")
        else:
            overlays = "--config configs/cpu.yaml after it (float32, no compile)"
        return (
            f"{where} --trainer.accelerator {accelerator}, but no CUDA GPU is available here. Run it on the CPU by adding {overlays}, "
            "or with --trainer.accelerator cpu alone (the recipe's other settings, e.g. --model.compile true, still work there, only slower)."
        )
    if accelerator == "mps" and not torch.backends.mps.is_available():
        return f"{where} --trainer.accelerator mps, but MPS is not available here: use --trainer.accelerator cpu."
    return None


def run_location_errors(cfg: Namespace) -> list[str]:
    """Paths derived from the run directory may not be set by hand: they would point two runs at one folder.
    And the folder runs go in must be able to hold them (named by the flag that chose it)."""
    errors = []
    for flag in ("checkpoint.dirpath", "last_checkpoint.dirpath"):
        if cfg.get(flag):
            errors.append(
                f"--{flag} is set by the run directory (runs_dir/run_name/version_k/checkpoints); "
                "choose where runs go with --runs_dir and --run_name instead"
            )
    root = cfg.get("trainer.default_root_dir")
    flag, runs_dir = ("--trainer.default_root_dir", root) if root else ("--runs_dir", cfg.get("runs_dir"))
    if runs_dir and (problem := runs_dir_problem(runs_dir)):
        errors.append(f"{flag} {runs_dir} cannot hold run directories: {problem}")
    return errors
