"""SGD with momentum and L2 weight decay, computed in NumPy, as a ``torch.optim.Optimizer``.

Being an Optimizer lets the NumPy models take it like every other model
(``--model.optimizer.class_path lit_models.components.numpy_sgd.NumpySGD``, ``--model.optimizer.init_args.lr``),
with LR schedulers, the LR plot and checkpointed state (momentum buffers are tensors, so
``weights_only`` loading and exact resume work). The update reads each parameter's ``.grad`` and
writes the parameter in place through NumPy views of their memory; the NumPy models' parameters
share memory with their arrays (:mod:`lit_models.components.numpy_bridge`).

Semantics are ``torch.optim.SGD``'s (dampening 0), checked step for step in the tests:
``d = g + weight_decay * w``; with momentum ``buf = momentum * buf + d`` (``buf = d`` at the first step),
``d = buf`` (or ``d + momentum * buf`` with Nesterov); ``w -= lr * d``. The course's penalty
``lambda * ||W||^2`` has gradient ``2 * lambda * W``: it is ``weight_decay = 2 * lambda``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch


def sgd_update(weight: np.ndarray, grad: np.ndarray, buf: np.ndarray | None, lr: float, momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False) -> np.ndarray | None:
    """One step on ``weight`` in place; returns the momentum buffer (updated in place, or new at the first step)."""
    d = grad + weight_decay * weight if weight_decay else grad
    if momentum:
        if buf is None:
            buf = np.array(d)
        else:
            buf *= momentum
            buf += d
        d = d + momentum * buf if nesterov else buf
    weight -= lr * d
    return buf


class NumpySGD(torch.optim.Optimizer):
    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
        if not lr > 0:
            raise ValueError(f"--model.optimizer.init_args.lr must be positive, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"--model.optimizer.init_args.momentum must be in [0, 1), got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"--model.optimizer.init_args.weight_decay must be >= 0, got {weight_decay}")
        if nesterov and momentum == 0:
            raise ValueError("--model.optimizer.init_args.nesterov must be false without momentum")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "nesterov": nesterov})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.device.type != "cpu":
                    raise RuntimeError(f"NumpySGD updates CPU tensors only, got one on {p.device}")
                state = self.state[p]
                buf_t = state.get("momentum_buffer")
                buf = sgd_update(p.detach().numpy(), p.grad.numpy(), None if buf_t is None else buf_t.numpy(),
                                 group["lr"], group["momentum"], group["weight_decay"], group["nesterov"])
                if buf is not None and buf_t is None:
                    state["momentum_buffer"] = torch.from_numpy(buf)
        return loss
