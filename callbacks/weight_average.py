"""Weight averaging for any model: an exponential moving average (EMA) or lookahead of the weights.

Every ``every_n_steps`` optimizer steps the average moves towards the current ("raw") weights:
``avg = d * avg + (1 - d) * raw`` with ``d = decay ** every_n_steps * (step / total_steps) ** ramp_power``
(``ramp_power`` 0: a constant decay; 3: airbench94's cubic ramp, which lets early steps through almost
unaveraged). ``mode="lookahead"`` then also copies the average back into the raw weights, so training
continues from it. All floating-point entries of the state dict are averaged, BatchNorm statistics
included; the average lives on the model's device and each update is two fused ops, no host sync.

* validation during fit runs on the averaged weights (swapped in and back, no copy of the model);
* checkpoints hold the averaged weights as ``state_dict``, so ``validate/test/predict --ckpt_path``
  evaluate them with no extra flag, and the raw weights under ``raw_state_dict``;
* resuming a fit restores both (and the update counter), so a resumed run is bit-identical to an
  uninterrupted one; a checkpoint without averaging starts the average from its weights;
* after fit the model holds the averaged weights (as the checkpoints do).

Lightning's own ``WeightAveraging`` callback was not used: it deep-copies the whole LightningModule
(metrics, a compiled net), cannot write the average back (lookahead) and takes no schedule that depends on
the global step. Put this callback in ``trainer.callbacks`` (YAML): it then runs before ``last_checkpoint``,
so a checkpoint written after a step already contains that step's update.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from jsonargparse.typing import NonNegativeFloat, NonNegativeInt, PositiveInt
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor
from torch.optim.swa_utils import get_ema_multi_avg_fn

from core.arg_types import Fraction
from core.torch_internals import copy_all_

# The CLI refuses out-of-range values from the annotations (one line naming the flag); the checks in
# __init__ give the same message to plain Python use.


class WeightAverage(Callback):
    def __init__(
        self,
        mode: Literal["ema", "lookahead"] = "ema",
        decay: Fraction = 0.999,
        every_n_steps: PositiveInt = 1,
        ramp_power: NonNegativeFloat = 0.0,
        start_step: NonNegativeInt = 0,
    ):
        if mode not in ("ema", "lookahead"):
            raise ValueError(f"WeightAverage: --trainer.callbacks.mode must be 'ema' or 'lookahead', got {mode!r}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"WeightAverage: --trainer.callbacks.decay must be in [0, 1), got {decay}")
        if every_n_steps < 1:
            raise ValueError(f"WeightAverage: --trainer.callbacks.every_n_steps must be >= 1, got {every_n_steps}")
        if ramp_power < 0:
            raise ValueError(f"WeightAverage: --trainer.callbacks.ramp_power must be >= 0, got {ramp_power}")
        if start_step < 0:
            raise ValueError(f"WeightAverage: --trainer.callbacks.start_step must be >= 0, got {start_step}")
        self.mode, self.decay, self.every_n_steps, self.ramp_power, self.start_step = mode, decay, every_n_steps, ramp_power, start_step
        self.last_update_step = 0
        self._keys: list[str] = []
        self._other: list[Tensor] | None = None  # the average, or the raw weights while the model holds the average
        self._live: list[Tensor] = []  # the model's own tensors, in _keys order
        self._model_holds_average = False
        self._pending: dict[str, Tensor] | None = None  # averaged state from a checkpoint, until training starts
        self._total_steps = math.inf

    @property
    def state_key(self) -> str:
        return f"WeightAverage[{self.mode}]"

    def decay_at(self, step: int) -> float:
        """The decay of the update made after optimizer step ``step`` (1-based)."""
        d = self.decay**self.every_n_steps
        if self.ramp_power:
            d *= min(1.0, step / self._total_steps) ** self.ramp_power
        return d

    # ------------------------------------------------------------------ the average
    def _bind(self, pl_module: LightningModule) -> None:
        state = pl_module.state_dict()
        self._keys = [k for k, v in state.items() if v.is_floating_point()]
        self._live = [state[k] for k in self._keys]

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._bind(pl_module)  # after the move to the device and after any checkpoint was loaded
        source = self._pending if self._pending is not None else dict(zip(self._keys, self._live))
        self._other = [source[k].detach().to(t.device, t.dtype, copy=True) for k, t in zip(self._keys, self._live)]
        self._pending, self._model_holds_average = None, False
        self._total_steps = float(trainer.estimated_stepping_batches)
        if self.ramp_power and not math.isfinite(self._total_steps):
            raise ValueError("WeightAverage: --trainer.callbacks.ramp_power > 0 needs a finite run (max_steps or max_epochs)")

    @torch.no_grad()
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if self._other is None or step <= self.last_update_step or step <= self.start_step or step % self.every_n_steps:
            return
        # avg = d * avg + (1 - d) * raw for every tensor: torch's public EMA update, one fused lerp (all are floating point).
        get_ema_multi_avg_fn(self.decay_at(step))(self._other, self._live, None)
        if self.mode == "lookahead":
            copy_all_(self._live, self._other)
        self.last_update_step = step

    @torch.no_grad()
    def _hold_average(self, pl_module: LightningModule, hold: bool) -> None:
        """Put the average into the model (``hold``) or the raw weights back, keeping the other in ``_other``."""
        if self._other is None or hold == self._model_holds_average:
            return
        self._bind(pl_module)  # the model may have moved (teardown moves it to the CPU)
        previous = [t.clone() for t in self._live]
        copy_all_(self._live, self._other)
        self._other, self._model_holds_average = previous, hold

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            self._hold_average(pl_module, True)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            self._hold_average(pl_module, False)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._hold_average(pl_module, True)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._other is None:
            return
        model_state = checkpoint["state_dict"]
        other = {k: t.detach().clone() for k, t in zip(self._keys, self._other)}
        if self._model_holds_average:
            checkpoint["raw_state_dict"] = {**model_state, **other}
        else:
            checkpoint["state_dict"], checkpoint["raw_state_dict"] = {**model_state, **other}, model_state

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn != TrainerFn.FITTING:
            return  # evaluation: state_dict already holds the averaged weights
        averaged = checkpoint["state_dict"]
        raw = checkpoint.get("raw_state_dict")
        if raw is not None:
            pl_module.load_state_dict(raw)  # training continues from the raw weights
        if self._other is not None:  # strategies that restore after training started
            self._bind(pl_module)
            self._other = [averaged[k].detach().to(t.device, t.dtype, copy=True) for k, t in zip(self._keys, self._live)]
            self._model_holds_average = False
        else:
            self._pending = dict(averaged)

    def state_dict(self) -> dict[str, Any]:
        return {"last_update_step": self.last_update_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.last_update_step = int(state_dict["last_update_step"])
