"""Muon on the conv filters and SGD on everything else, as ONE ``torch.optim.Optimizer`` (airbench94_muon's split).

Why one class: Lightning's automatic optimisation steps one optimizer per training step, and this
codebase builds it from YAML (``optimizer: {class_path: ..., init_args: {...}}``) out of the model's
parameter groups (``ClassifierModule.parameter_groups``: LR multipliers, weight-decay exemptions).
airbench94_muon (github KellerJordan/cifar10-airbench) steps two optimizers side by side; here each
incoming group is split by parameter shape into a Muon part and an SGD part, each with its own
hyperparameters, so any model (the fast CNN, the VGG, ...) can use it with one ``class_path``, and LR
schedulers, ``lr_multipliers`` and checkpoints see ordinary param groups. ``torch.optim.Muon`` cannot
be used for the filters: it accepts 2-D parameters only.

Which part a parameter goes to: ``muon_ndims`` (default ``(4,)``: conv filters, as airbench). Parameters
of other dimensionalities (norm and conv biases, linear layers such as the head) get SGD. Each group of
``param_groups`` carries ``algorithm`` (``"muon"`` or ``"sgd"``); a group's own keys (``lr_multiplier``,
...) are copied to both of its parts, except ``weight_decay``, which only the SGD part has.

Muon step, per parameter ``p`` with gradient ``g`` (airbench94_muon's maths):

* ``buf = momentum * buf + g`` (``buf`` starts at 0); with Nesterov ``u = g + momentum * buf``, else ``u = buf``;
* with ``normalize_weights``: ``p *= sqrt(len(p)) / ||p||`` (the whole tensor, Frobenius norm: its filters
  get an RMS norm of 1; harmless before a BatchNorm, which undoes any scale of the filters feeding it);
* ``p -= lr * NS(u)``: ``u`` reshaped to ``(len(u), -1)``, scaled to norm 1 (``/ (||u|| + 1e-7)``), transposed
  if it has more rows than columns, then ``newton_schulz_steps`` times ``X = a X + (b A + c A A) X`` with
  ``A = X X^T`` and ``(a, b, c) = newton_schulz_coefficients``: an approximate orthogonalisation (singular
  values pushed towards ~1). No shape-dependent factor multiplies the update (airbench's choice;
  ``torch.optim.Muon``'s ``"original"`` adjustment would be ``max(1, rows / cols) ** 0.5``).

The orthogonalisation runs in ``newton_schulz_dtype``: ``"auto"`` is bfloat16 for CUDA parameters (what
airbench does on its GPU, where bfloat16 matmuls are the fast path) and float32 elsewhere (CPUs, as in the
float32 CPU patch of airbench); the update is cast back to the parameter's dtype.

SGD step: exactly ``torch.optim.SGD`` with dampening 0 (``g += weight_decay * p``; ``buf = g`` at the first
step, then ``buf = momentum * buf + g``; ``g + momentum * buf`` with Nesterov, else ``buf``; ``p -= lr * g``).

State: one ``momentum_buffer`` tensor per parameter, and plain numbers, strings and tuples in the groups,
so ``state_dict()`` survives ``torch.load(weights_only=True)`` and a resumed fit continues bit-identically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch
from torch import Tensor

NewtonSchulzDtype = Literal["auto", "float32", "bfloat16"]
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def newton_schulz(g: Tensor, steps: int, coefficients: tuple[float, float, float], dtype: torch.dtype, eps: float = 1e-7) -> Tensor:
    """Approximately orthogonalise the 2-D ``g`` (its singular values pushed towards ~1), computed in ``dtype``."""
    a, b, c = coefficients
    x = g.to(dtype)
    x = x / (x.norm() + eps)  # top singular value <= 1, where the iteration converges
    tall = g.size(0) > g.size(1)
    if tall:
        x = x.T  # X X^T is then the smaller Gram matrix
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


class MuonWithSGD(torch.optim.Optimizer):
    """Muon (momentum, Nesterov, weight normalisation, Newton-Schulz) on ``muon_ndims``-D parameters, SGD on the rest.

    ``lr``, ``momentum``, ``nesterov`` are Muon's; ``sgd_lr``, ``sgd_momentum``, ``sgd_nesterov``,
    ``sgd_weight_decay`` the SGD part's. Defaults: airbench94_muon's Muon and its SGD momentum; its SGD
    learning rates depend on the loss's reduction and the model (see ``configs/fast_cnn_muon.yaml``).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.24,
        momentum: float = 0.6,
        nesterov: bool = True,
        normalize_weights: bool = True,
        newton_schulz_steps: int = 3,
        newton_schulz_coefficients: tuple[float, float, float] = (3.4445, -4.775, 2.0315),
        newton_schulz_dtype: NewtonSchulzDtype = "auto",
        muon_ndims: tuple[int, ...] = (4,),
        sgd_lr: float = 0.01,
        sgd_momentum: float = 0.85,
        sgd_nesterov: bool = True,
        sgd_weight_decay: float = 0.0,
    ):
        for name, value in (("lr", lr), ("sgd_lr", sgd_lr), ("sgd_weight_decay", sgd_weight_decay)):
            if not value >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        for name, value, use_nesterov in (("momentum", momentum, nesterov), ("sgd_momentum", sgd_momentum, sgd_nesterov)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
            if use_nesterov and value == 0.0:
                raise ValueError(f"Nesterov needs a momentum > 0: {name} is 0")
        if newton_schulz_steps < 1:
            raise ValueError(f"newton_schulz_steps must be >= 1, got {newton_schulz_steps}")
        if len(newton_schulz_coefficients) != 3:
            raise ValueError(f"newton_schulz_coefficients must be three numbers (a, b, c), got {newton_schulz_coefficients}")
        if newton_schulz_dtype not in ("auto", *_DTYPES):
            raise ValueError(f"newton_schulz_dtype must be auto, float32 or bfloat16, got {newton_schulz_dtype!r}")
        if not muon_ndims or any(n < 2 for n in muon_ndims):
            raise ValueError(f"muon_ndims must be dimensionalities >= 2 (Muon orthogonalises matrices), got {muon_ndims}")
        # Set before Optimizer.__init__, which calls add_param_group for every group.
        self.muon_ndims = tuple(int(n) for n in muon_ndims)
        self.part_defaults = {
            "muon": {"lr": lr, "momentum": momentum, "nesterov": nesterov, "normalize_weights": normalize_weights,
                     "newton_schulz_steps": int(newton_schulz_steps),
                     "newton_schulz_coefficients": tuple(float(c) for c in newton_schulz_coefficients),
                     "newton_schulz_dtype": newton_schulz_dtype},
            "sgd": {"lr": sgd_lr, "momentum": sgd_momentum, "nesterov": sgd_nesterov, "weight_decay": sgd_weight_decay},
        }
        super().__init__(params, {"lr": lr})

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Split a group into its Muon and SGD parts (an empty part is left out); an already split group is kept."""
        if "algorithm" in param_group:
            super().add_param_group(param_group)
            return
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        extra = {k: v for k, v in param_group.items() if k != "params"}
        for algorithm in ("muon", "sgd"):
            mine = [p for p in params if (p.ndim in self.muon_ndims) == (algorithm == "muon")]
            if not mine:
                continue
            overrides = {k: v for k, v in extra.items() if algorithm == "sgd" or k != "weight_decay"}
            super().add_param_group({**self.part_defaults[algorithm], **overrides, "params": mine, "algorithm": algorithm})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            update = self._muon_update if group["algorithm"] == "muon" else self._sgd_update
            for p in group["params"]:
                if p.grad is not None:
                    update(p, group)
        return loss

    def _muon_update(self, p: Tensor, group: dict[str, Any]) -> None:
        g, state, momentum = p.grad, self.state[p], group["momentum"]
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = torch.zeros_like(g)
        buf.mul_(momentum).add_(g)
        g = g.add(buf, alpha=momentum) if group["nesterov"] else buf
        if group["normalize_weights"]:  # an all-zero tensor stays zero instead of becoming NaN
            p.mul_(len(p) ** 0.5 / p.norm().clamp_min(torch.finfo(p.dtype).tiny))
        name = group["newton_schulz_dtype"]
        dtype = _DTYPES[name] if name != "auto" else (torch.bfloat16 if p.is_cuda else torch.float32)
        orthogonal = newton_schulz(g.reshape(len(g), -1), group["newton_schulz_steps"], group["newton_schulz_coefficients"], dtype)
        p.add_(orthogonal.reshape(g.shape).to(p.dtype), alpha=-group["lr"])

    def _sgd_update(self, p: Tensor, group: dict[str, Any]) -> None:
        g, momentum = p.grad, group["momentum"]
        if group["weight_decay"]:
            g = g.add(p, alpha=group["weight_decay"])
        if momentum:
            buf = self.state[p].get("momentum_buffer")
            if buf is None:
                buf = self.state[p]["momentum_buffer"] = torch.clone(g).detach()
            else:
                buf.mul_(momentum).add_(g)
            g = g.add(buf, alpha=momentum) if group["nesterov"] else buf
        p.add_(g, alpha=-group["lr"])
