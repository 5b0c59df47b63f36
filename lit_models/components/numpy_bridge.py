"""Lets a NumPy network train through the Trainer: a ``torch.nn.Module`` whose parameters *are* its arrays.

Each parameter shares memory with one of the network's arrays, and its ``.grad`` with the array the
network's backward writes into. So checkpoints save and restore the NumPy weights with no extra code
(``load_state_dict`` copies in place), and any optimizer that updates parameters in place, like
:class:`~lit_models.components.numpy_sgd.NumpySGD`, updates the NumPy network.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn


class NumpyNet(Protocol):
    """What the bridge needs from a NumPy network (``NumpyMLP``, ``AutogradMLP``)."""

    dtype: np.dtype

    def named_arrays(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]: ...  # (name, value, gradient)

    def loss_and_backward(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]: ...  # (mean loss, class scores)

    def predict(self, x: np.ndarray) -> np.ndarray: ...  # class scores (logits or log-probabilities)


class NumpyNetModule(nn.Module):
    """A NumPy network as a CPU module; ``forward`` returns its class scores as a tensor."""

    def __init__(self, numpy_net: NumpyNet):
        super().__init__()
        self.numpy_net = numpy_net
        for name, value, grad in numpy_net.named_arrays():
            param = nn.Parameter(torch.from_numpy(value))  # same memory as value
            param.grad = torch.from_numpy(grad)
            self.register_parameter(name, param)

    def check_shared(self) -> None:
        """Fail loudly if a parameter no longer aliases its array (moved to a GPU, cast, replaced); re-attach
        gradients that were reset (``zero_grad(set_to_none=True)``)."""
        for name, value, grad in self.numpy_net.named_arrays():
            param = getattr(self, name)
            if param.device.type != "cpu" or param.data_ptr() != value.ctypes.data:
                raise RuntimeError("The NumPy models run on the CPU only: use --trainer.accelerator cpu (a parameter was moved, cast or replaced).")
            if param.grad is None or param.grad.data_ptr() != grad.ctypes.data:
                param.grad = torch.from_numpy(grad)

    def _numpy_input(self, x: Tensor) -> np.ndarray:
        return x.detach().flatten(1).numpy().astype(self.numpy_net.dtype, copy=False)

    def forward(self, x: Tensor) -> Tensor:
        self.check_shared()
        return torch.from_numpy(self.numpy_net.predict(self._numpy_input(x)))

    def loss_and_backward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(mean loss, class scores); the gradients land in every ``parameter.grad``."""
        self.check_shared()
        loss, scores = self.numpy_net.loss_and_backward(self._numpy_input(x), y.numpy())
        return torch.tensor(loss), torch.from_numpy(scores)
