"""Lightning's model summary without a FLOPs column that reads 0 for every layer.

Lightning counts FLOPs only by running a model's ``example_input_array``, which none of this project's models
define (a forward pass at summary time would also compile a ``torch.compile`` network for a batch of one), so
its table ends in "Total Flops 0": a false figure. Where FLOPs were counted the table is Lightning's own.
"""

from __future__ import annotations

import logging
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelSummary

from core.lightning_internals import summary_settings, summary_table_without_flops

log = logging.getLogger("lightning.pytorch.callbacks.model_summary")  # where Lightning's summary goes: same handlers and level


class CountedFlopsSummary(ModelSummary):
    """Lightning's ``ModelSummary``, with the FLOPs column and total only when they were counted."""

    @staticmethod
    def summarize(summary_data: list[tuple[str, list[str]]], total_parameters: int, trainable_parameters: int, model_size: float,
                  total_training_modes: dict[str, int], total_flops: int, **summarize_kwargs: Any) -> None:
        if total_flops:
            ModelSummary.summarize(summary_data, total_parameters, trainable_parameters, model_size, total_training_modes, total_flops,
                                   **summarize_kwargs)
        else:
            log.info("\n" + summary_table_without_flops(summary_data, total_parameters, trainable_parameters, model_size, total_training_modes))


def summarize_counted_flops_only(trainer: Trainer) -> None:
    """Put a :class:`CountedFlopsSummary` with the same settings where the Trainer has a plain ``ModelSummary`` (its own
    default or one given in ``trainer.callbacks``); a subclass of the user's is kept as it is."""
    for i, callback in enumerate(trainer.callbacks):
        if type(callback) is ModelSummary:
            max_depth, kwargs = summary_settings(callback)
            trainer.callbacks[i] = CountedFlopsSummary(max_depth=max_depth, **kwargs)
            return
