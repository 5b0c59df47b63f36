"""The search's sampler: Optuna's TPE, its randomness for trial n drawn from ``seed + n``.

Several workers start on one search at the same moment (a SLURM array does exactly that). Seeded once per
process, say by the history's length, they would all hold the same random state and propose the same first
values: the same cell, evaluated twice. Seeded by the trial's number, which the storage hands out once per
trial, no two trials share a random state, in one process or many, and one worker alone still proposes the
same values on every run of the same history (a resumed search does not replay the proposals it started
with: its trials have new numbers). TPE's ``constant_liar`` (Optuna 5.0's default) counts the trials other
workers are running, so their neighbourhoods are not proposed again either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState


class TrialSeededTPE(BaseSampler):
    """A fresh ``TPESampler(seed=seed + trial.number)`` for every trial; every call goes to that trial's one."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._tpe = TPESampler(seed=seed)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._tpe = TPESampler(seed=self.seed + trial.number, constant_liar=True)
        self._tpe.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._tpe.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._tpe.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        return self._tpe.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._tpe.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._tpe.reseed_rng()
