"""The NumPy MLP trained through the same Trainer, DataModule, logging and callbacks.

All math (forward, backward, SGD update) is NumPy. Lightning only sees:
* a ``torch.nn.Module`` adapter whose buffers *share memory* with the NumPy arrays, so checkpoints
  save and restore the weights with no extra code;
* :class:`NumpySGD`, a ``torch.optim.Optimizer`` whose ``step`` calls the NumPy update, so the
  Trainer counts steps, LR schedulers and the LR-plot callback work as for any model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lit_models.base import ClassifierModule
from lit_models.components.numpy_mlp import NumpyMLP


class NumpyMLPModule(nn.Module):
    """Wraps :class:`NumpyMLP` as a CPU module: ``forward`` returns log-probabilities (as logits)."""

    def __init__(self, hidden_sizes: list[int], num_classes: int, init_std: float, seed: int, dtype: str):
        super().__init__()
        self.numpy_net = NumpyMLP(hidden_sizes=hidden_sizes, num_classes=num_classes, init_std=init_std, seed=seed, dtype=np.dtype(dtype).type)
        for i, layer in enumerate(self.numpy_net.linears):
            for k, arr in layer.params.items():
                self.register_buffer(f"linear{i}_{k}", torch.from_numpy(arr))  # same memory as arr

    def _check_shared(self) -> None:
        for i, layer in enumerate(self.numpy_net.linears):
            buf = getattr(self, f"linear{i}_weight")
            if buf.device.type != "cpu" or buf.data_ptr() != layer.params["weight"].ctypes.data:
                raise RuntimeError("The NumPy MLP runs on the CPU only: use --trainer.accelerator cpu (its buffers were moved or replaced).")

    def forward(self, x: Tensor) -> Tensor:
        self._check_shared()
        p = self.numpy_net.forward(x.detach().flatten(1).numpy().astype(self.numpy_net.linears[0].params["weight"].dtype, copy=False))
        return torch.from_numpy(np.log(p + 1e-12))


class NumpySGD(torch.optim.Optimizer):
    """Plain SGD whose update is ``NumpyMLP.sgd_step`` (NumPy, in place); holds the shared buffers as params."""

    def __init__(self, module: NumpyMLPModule, lr: float):
        super().__init__(list(module.buffers()), {"lr": lr})
        self.numpy_net = module.numpy_net

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # noqa: ARG002 - gradients come from the NumPy backward
        self.numpy_net.sgd_step(self.param_groups[0]["lr"])


class NumpyMLPClassifier(ClassifierModule):
    """Manual optimisation; NumPy forward/backward/SGD. Validation, test and predict reuse the base steps."""

    def __init__(self, hidden_sizes: list[int] = [100], lr: float = 2e-3, init_std: float = 1e-4, init_seed: int = 0, dtype: str = "float32", **kwargs: Any):  # noqa: B006
        super().__init__(**kwargs)
        if lr <= 0:
            raise ValueError(f"--model.lr must be positive, got {lr}")
        self.automatic_optimization = False
        self.lr = lr
        self.net = NumpyMLPModule(hidden_sizes, self.num_classes, init_std, init_seed, dtype)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        self.net._check_shared()
        x, y = batch
        loss, p = self.net.numpy_net.loss_and_backward(x.flatten(1).numpy().astype(self.net.numpy_net.linears[0].params["weight"].dtype, copy=False), y.numpy())
        self.optimizers().step()
        sched = self.lr_schedulers()
        if sched is not None:
            sched.step()
        loss_t = torch.tensor(loss)
        self.train_acc.update(torch.from_numpy(p), y)
        self.log_train_loss(loss_t)
        return loss_t

    def configure_optimizers(self) -> Any:
        optimizer = NumpySGD(self.net, self.lr)
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.build_scheduler(optimizer)}
