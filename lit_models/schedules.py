"""Learning-rate schedules selectable from the config (``--model.scheduler lit_models.schedules.TriangularLR``)."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LRScheduler


class TriangularLR(LRScheduler):
    """Piecewise-linear LR factor per optimizer step: ``start_factor`` -> ``peak_factor`` over the first
    ``warmup_fraction`` of ``total_steps``, then down to ``end_factor`` at the last step.

    Factors multiply each param group's own base LR, so per-group LR multipliers survive. ``total_steps``
    left unset is filled in from the Trainer (``ClassifierModule`` does it for any scheduler that takes it).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int | None = None,
        warmup_fraction: float = 0.23,
        start_factor: float = 0.2,
        peak_factor: float = 1.0,
        end_factor: float = 0.07,
        last_epoch: int = -1,
    ):
        if total_steps is None or total_steps < 1:
            raise ValueError(f"--model.scheduler.total_steps must be >= 1, got {total_steps}")
        if not 0.0 <= warmup_fraction < 1.0:
            raise ValueError(f"--model.scheduler.warmup_fraction must be in [0, 1), got {warmup_fraction}")
        for name, value in (("start_factor", start_factor), ("peak_factor", peak_factor), ("end_factor", end_factor)):
            if not value >= 0.0:
                raise ValueError(f"--model.scheduler.{name} must be >= 0 (a factor on the learning rate), got {value}")
        self.total_steps, self.warmup_steps = int(total_steps), int(total_steps * warmup_fraction)
        self.start_factor, self.peak_factor, self.end_factor = start_factor, peak_factor, end_factor
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            frac = step / self.warmup_steps
            return self.start_factor + (self.peak_factor - self.start_factor) * frac
        frac = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return self.peak_factor + (self.end_factor - self.peak_factor) * frac

    def get_lr(self) -> list[float]:
        factor = self.factor(self.last_epoch)
        return [base * factor for base in self.base_lrs]
