"""What a resumed fit does with a flag that differs from the run it resumes: honour it, or refuse the resume.

Lightning's ``fit(ckpt_path=...)`` restores the weights, the optimizer and LR-scheduler states, the loops'
position and the callbacks' states over the objects the new flags built. So a changed
``--model.optimizer.lr`` would be recorded as the new config yet ignored (the restored optimizer state
carries the old one), and a changed ``--data.batch_size`` would resume the epoch in progress at a saved
batch count of the *old* batch order. Each flag therefore falls in one of two classes:

* honoured: the Trainer's flags (``max_steps``, ``limit_val_batches``, ``precision``, loggers, ...), the
  outputs' settings, and the few model and data settings that the restored state does not overwrite and
  that keep the run one run (``tta``, ``compile``, ``label_smoothing``, ``dropout``, the data's location,
  augmentation, the evaluation batch size);
* refused, in one line naming the flag and why, before anything of the run is touched: everything else
  of the model (optimizer, scheduler, architecture, init) and of the data's split, normalisation and
  batch order, the seed, and what ``best.ckpt`` is chosen by.

The comparison base is what the checkpoint was trained with: its own hyperparameters for the model and
the data, and its run directory's newest config file for the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core import run_layout

# Not compared: where the run lives and what it resumes from (they are how the run is found).
IGNORED = ("run_name", "runs_dir", "ckpt_path", "config", "trainer.default_root_dir", "checkpoint.dirpath", "last_checkpoint.dirpath", "weights_only")
HONOURED_MODEL = ("model.tta", "model.compile", "model.channels_last", "model.label_smoothing", "model.dropout")
HONOURED_DATA = (
    "data.data_dir", "data.download", "data.archive_md5", "data.cache_dir", "data.data_on_device", "data.eval_batch_size",
    "data.predict_dir", "data.predict_resize", "data.augment", "data.crop_padding", "data.crop_padding_mode", "data.flip",
)  # fmt: skip
OPTIMIZER_KEYS = ("model.optimizer", "model.scheduler", "model.scheduler_interval", "model.lr_multipliers", "model.lr_multipliers_keep_weight_decay", "model.no_weight_decay_on_norm_and_bias")
BATCH_ORDER_KEYS = ("data.batch_size", "data.drop_last", "data.shuffle_seed", "seed_everything")
SELECTION_KEYS = ("checkpoint.monitor", "checkpoint.mode")


class ResumeChangeError(ValueError):
    """A flag changed on resume that the resumed state would silently override."""


@dataclass
class ResumeChanges:
    honoured: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # flag -> (old, new)

    def describe(self) -> str:
        return ", ".join(f"--{k} {_show(old)} -> {_show(new)}" for k, (old, new) in self.honoured.items())


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{model: {init_args: {optimizer: {init_args: {lr: 1}}}}}`` -> ``{"model.optimizer.lr": 1}``; a
    ``class_path`` stays a key of its own, lists stay whole values."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if key == "init_args" and prefix:
            flat.update(flatten(value or {}, prefix))
            continue
        dotted = f"{prefix}{key}" if not prefix else f"{prefix}.{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, dotted))
        else:
            flat[dotted] = value
    return flat


def _hparams(section: dict[str, Any] | None) -> dict[str, Any]:
    hp = {k: v for k, v in (section or {}).items() if not k.startswith("_")}
    if section and section.get("_class_path"):
        hp = {"class_path": section["_class_path"], **hp}
    return hp


def trained_config(checkpoint: dict[str, Any], run_config_text: str | None) -> dict[str, Any]:
    """Flat config the checkpoint was trained with: the run's config file, its model and data replaced by
    the checkpoint's own hyperparameters (the truth about the weights and the data they saw)."""
    flat = flatten(yaml.safe_load(run_config_text) or {}) if run_config_text else {}
    flat = {k: v for k, v in flat.items() if not k.startswith(("model.", "data."))}
    flat.update(flatten({"model": _hparams(checkpoint.get("hyper_parameters"))}))
    flat.update(flatten({"data": _hparams(checkpoint.get("datamodule_hyper_parameters"))}))
    return flat


def newest_config(run_dir: Path) -> Path | None:
    """The config the run's newest segment ran with: ``config.resume-<k>.yaml`` with the highest k, else ``config.yaml``."""
    resumes = sorted(run_dir.glob("config.resume-*.yaml"), key=lambda p: int(p.stem.rsplit("-", 1)[1]) if p.stem.rsplit("-", 1)[1].isdigit() else -1)
    path = resumes[-1] if resumes else run_dir / "config.yaml"
    return path if path.is_file() else None


def run_dir_of_checkpoint(ckpt: str | Path) -> Path:
    return run_layout.run_dir_of_checkpoint(Path(ckpt).resolve())


def _within(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def refusal_reason(key: str) -> str | None:
    """Why a change of ``key`` on resume cannot be honoured (None: it is honoured)."""
    if _within(key, OPTIMIZER_KEYS):
        return "the checkpoint's optimizer and LR-scheduler states (learning rates, momenta, schedule) are restored over it"
    if _within(key, BATCH_ORDER_KEYS):
        return "the epoch in progress resumes at a saved position in the old batch order"
    if _within(key, SELECTION_KEYS):
        return "best.ckpt's saved best score was chosen by the old one"
    if key.startswith("model.") and not _within(key, HONOURED_MODEL):
        return "the checkpoint's weights belong to the model it was trained as"
    if key.startswith("data.") and not _within(key, HONOURED_DATA):
        return "it changes the train/validation split or the normalisation the checkpoint was trained with"
    return None


def check_resume_changes(checkpoint: dict[str, Any], run_config_text: str | None, new_config_text: str, resume_command: str) -> ResumeChanges:
    """The flags that differ from what ``checkpoint`` was trained with, all honoured; else :class:`ResumeChangeError`."""
    old = trained_config(checkpoint, run_config_text)
    new = flatten(yaml.safe_load(new_config_text) or {})
    # Only what the checkpoint's run recorded: a flag added to the code since then was not there to change.
    compared = [k for k in old if not _within(k, IGNORED)]
    if not run_config_text:  # a checkpoint without its run's config: only its model and data can be compared
        compared = [k for k in compared if k.startswith(("model.", "data."))]
    changed = {k: (old.get(k), new.get(k)) for k in compared if old.get(k) != new.get(k)}
    refused = {k: reason for k in changed if (reason := refusal_reason(k))}
    if refused:
        shown = list(refused)[:3]
        more = f" (and {len(refused) - 3} more)" if len(refused) > 3 else ""
        flags = "; ".join(f"--{k} {_show(changed[k][0])} -> {_show(changed[k][1])}" for k in shown)
        raise ResumeChangeError(
            f"{flags}{more}: cannot change on resume ({refused[shown[0]]}). Resume with the run's own values ({resume_command}), "
            "or start a new run without --ckpt_path; nothing of the run was changed"
        )
    missing_average = "raw_state_dict" in checkpoint and not _has_weight_average(new)
    if missing_average:
        raise ResumeChangeError(
            "the checkpoint was trained with callbacks.weight_average.WeightAverage (it holds averaged and raw weights); "
            f"resume it with the same trainer.callbacks ({resume_command}), or evaluate it with validate/test/predict; nothing of the run was changed"
        )
    return ResumeChanges(honoured=changed)


def _has_weight_average(flat: dict[str, Any]) -> bool:
    return any(k.startswith("trainer.callbacks") and "WeightAverage" in str(v) for k, v in flat.items())


def _show(value: Any) -> str:
    return "(unset)" if value is None else yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()
