"""Optimizer parameter groups: weight-decay exemptions and per-group learning-rate multipliers.

``lr_multipliers`` maps a selector to a factor on the optimizer's (and scheduler's) learning rate:

* ``norm_weight`` / ``norm_bias``: scales and shifts of normalisation layers (BatchNorm, LayerNorm, ...);
* ``bias`` / ``weight``: the biases / weights of every other layer;
* anything else: a regular expression searched in the parameter's full name (``net\\.head\\.``).

The first selector that matches a parameter wins (dict order); unmatched parameters keep factor 1.
With ``keep_weight_decay`` the group's ``weight_decay`` is divided by its factor, so the decay per step
(``lr * weight_decay`` in SGD and AdamW) stays that of the base learning rate: the factor speeds up
learning without strengthening the decay (airbench's 64x on BatchNorm biases).
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

KINDS = ("norm_weight", "norm_bias", "bias", "weight")


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)) or "Norm" in type(module).__name__


def check_lr_multipliers(lr_multipliers: dict[str, float]) -> None:
    for key, factor in lr_multipliers.items():
        if not factor > 0:
            raise ValueError(f"--model.lr_multipliers must map selectors to positive factors, got {key}: {factor}")
        if key not in KINDS:
            try:
                re.compile(key)
            except re.error as exc:
                raise ValueError(f"--model.lr_multipliers must have keys {', '.join(KINDS)} or regular expressions; {key!r}: {exc}") from None


def parameter_groups(module: nn.Module, no_weight_decay_on_norm_and_bias: bool, lr_multipliers: dict[str, float] | None) -> list[dict[str, Any]]:
    """Trainable parameters grouped by (weight decay exempt, LR factor); one group when nothing differs.

    Groups carry ``lr_multiplier`` (applied by :func:`apply_lr_multipliers` once the optimizer exists).
    Without multipliers the groups are exactly the historical ones: one, or [decayed, exempt].
    """
    lr_multipliers = dict(lr_multipliers or {})
    groups: dict[tuple[bool, float], list[nn.Parameter]] = {}
    used: set[str] = set()
    for module_name, sub in module.named_modules():
        norm = _is_norm(sub)
        for name, p in sub.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            full = f"{module_name}.{name}" if module_name else name
            kind = ("norm_" if norm else "") + ("bias" if name.endswith("bias") else "weight")
            key = next((k for k in lr_multipliers if k == kind or (k not in KINDS and re.search(k, full))), None)
            if key is not None:
                used.add(key)
            exempt = no_weight_decay_on_norm_and_bias and (norm or name.endswith("bias"))
            groups.setdefault((exempt, lr_multipliers.get(key, 1.0)), []).append(p)
    unused = sorted(set(lr_multipliers) - used)
    if unused:
        raise ValueError(f"--model.lr_multipliers must select trainable parameters: {', '.join(map(repr, unused))} matches none")
    if not no_weight_decay_on_norm_and_bias and set(groups) <= {(False, 1.0)}:
        return [{"params": groups.get((False, 1.0), [])}]
    order = sorted(groups, key=lambda g: (g[1] != 1.0, g[0], g[1]))  # base groups first: decayed, then exempt
    if no_weight_decay_on_norm_and_bias:
        for base in ((False, 1.0), (True, 1.0)):  # the historical two groups, even when one is empty
            if base not in groups:
                order.insert(int(base[0]), base)
    out = []
    for exempt, factor in order:
        group: dict[str, Any] = {"params": groups.get((exempt, factor), [])}
        if exempt:
            group["weight_decay"] = 0.0
        if factor != 1.0:
            group["lr_multiplier"] = factor
        out.append(group)
    return out


def apply_lr_multipliers(optimizer: torch.optim.Optimizer, keep_weight_decay: bool = True) -> None:
    """Scale each group's ``lr`` by its ``lr_multiplier`` (before any scheduler reads it as its base LR)."""
    for group in optimizer.param_groups:
        factor = group.get("lr_multiplier", 1.0)
        if factor == 1.0:
            continue
        group["lr"] = group["lr"] * factor
        if keep_weight_decay and group.get("weight_decay"):
            group["weight_decay"] = group["weight_decay"] / factor
