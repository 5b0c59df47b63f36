"""The course's NumPy MLP: every module has ``forward`` and a hand-derived ``backward``; no autograd.

Conventions (as in the course): inputs are ``(batch, features)``; gradients are averaged over the
batch (the 1/N lives in the cross-entropy backward); SGD updates the arrays in place, which lets a
LightningModule expose them as torch tensors sharing the same memory (for checkpoints).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class LinearModule:
    """``out = x @ W.T + b`` with ``W`` of shape (out, in); course init N(0, std^2) weights, zero bias."""

    def __init__(self, in_features: int, out_features: int, rng: np.random.Generator, std: float = 1e-4, dtype: type = np.float32):
        self.params = {"weight": rng.normal(0.0, std, (out_features, in_features)).astype(dtype), "bias": np.zeros(out_features, dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return x @ self.params["weight"].T + self.params["bias"]

    def backward(self, dout: np.ndarray) -> np.ndarray:
        self.grads["weight"][...] = dout.T @ self.x
        self.grads["bias"][...] = dout.sum(0)
        return dout @ self.params["weight"]


class ReLUModule:
    def forward(self, x: np.ndarray) -> np.ndarray:
        self.mask = x > 0
        return x * self.mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self.mask


class SoftMaxModule:
    """Row-wise softmax, shifted by the row max for stability."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max(1, keepdims=True))
        self.out = e / e.sum(1, keepdims=True)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        # Jacobian-vector product of softmax: p * (dout - <dout, p>)
        p = self.out
        return p * (dout - (dout * p).sum(1, keepdims=True))


class CrossEntropyModule:
    """Mean over the batch of ``-sum_k y_k log p_k`` for one-hot ``y`` and probabilities ``p``."""

    eps = 1e-12

    def forward(self, p: np.ndarray, y_onehot: np.ndarray) -> float:
        return float(-(y_onehot * np.log(p + self.eps)).sum(1).mean())

    def backward(self, p: np.ndarray, y_onehot: np.ndarray) -> np.ndarray:
        return -y_onehot / (p + self.eps) / p.shape[0]


class NumpyMLP:
    """``Linear -> ReLU -> ... -> Linear -> SoftMax``; ``forward`` returns probabilities."""

    def __init__(self, in_features: int = 3072, hidden_sizes: Sequence[int] = (100,), num_classes: int = 10, init_std: float = 1e-4, seed: int = 0, dtype: type = np.float32):
        rng = np.random.default_rng(seed)
        widths = [in_features, *hidden_sizes, num_classes]
        self.layers: list = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            self.layers.append(LinearModule(a, b, rng, init_std, dtype))
            if i < len(widths) - 2:
                self.layers.append(ReLUModule())
        self.layers.append(SoftMaxModule())
        self.loss_module = CrossEntropyModule()

    @property
    def linears(self) -> list[LinearModule]:
        return [m for m in self.layers if isinstance(m, LinearModule)]

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout: np.ndarray) -> None:
        for layer in reversed(self.layers):
            dout = layer.backward(dout)

    def loss_and_backward(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """One forward/backward pass; returns (mean cross-entropy, probabilities)."""
        p = self.forward(x)
        onehot = np.eye(p.shape[1], dtype=p.dtype)[y]
        loss = self.loss_module.forward(p, onehot)
        self.backward(self.loss_module.backward(p, onehot))
        return loss, p

    def sgd_step(self, lr: float) -> None:
        """Vanilla SGD, in place (the arrays' memory never changes)."""
        for layer in self.linears:
            for k, v in layer.params.items():
                v -= lr * layer.grads[k]
