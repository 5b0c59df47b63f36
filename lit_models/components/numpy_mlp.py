"""The course's NumPy MLP: every module has ``forward`` and a hand-derived ``backward``; no autograd.

Conventions (as in the course): inputs are ``(batch, features)``; gradients are averaged over the
batch (the 1/N lives in the cross-entropy backward). An optional L2 penalty on the weights is part of
the loss (the Sapienza 2020 two-layer net's ``lambda * (||W1||^2 + ||W2||^2)``, no 1/2, biases free).
Weights and gradients are arrays that never change their memory (backward writes into the gradients,
optimisers update the weights in place), so ``lit_models.components.numpy_bridge`` can expose them as
torch tensors sharing that memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from lit_models.components.mlp_choices import check_activation, check_init
from lit_models.components.numpy_init import sample_linear


class LinearModule:
    """``out = x @ W.T + b`` with ``W`` of shape (out, in), drawn from init scheme ``init`` (course: N(0, 1e-4^2), zero bias)."""

    def __init__(self, in_features: int, out_features: int, rng: np.random.Generator, init: str | float = "course", dtype: type = np.float32):
        weight, bias = sample_linear(rng, in_features, out_features, init, dtype)
        self.params = {"weight": weight, "bias": bias}
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


class SigmoidModule:
    """``s = 1 / (1 + e^-x)``; ``ds/dx = s (1 - s)``, so only the output is kept."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = 1.0 / (1.0 + np.exp(-x))
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self.out * (1.0 - self.out)


class TanhModule:
    """``t = tanh(x)``; ``dt/dx = 1 - t^2``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * (1.0 - self.out * self.out)


ACTIVATION_MODULES = {"relu": ReLUModule, "sigmoid": SigmoidModule, "tanh": TanhModule}


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
    """``Linear -> activation -> ... -> Linear -> SoftMax``; ``forward`` returns probabilities.

    ``l2`` is lambda of the penalty ``lambda * sum_l ||W_l||^2`` (squared Frobenius norms of every weight
    matrix; no 1/2, biases not penalised, as the Sapienza 2020 exercise defines it): the loss is the mean
    cross-entropy plus the penalty, and each weight's gradient gains ``2 * lambda * W``.
    """

    def __init__(
        self,
        in_features: int = 3072,
        hidden_sizes: Sequence[int] = (100,),
        num_classes: int = 10,
        activation: str = "relu",
        init: str | float = "course",
        seed: int = 0,
        dtype: type = np.float32,
        l2: float = 0.0,
    ):
        check_activation(activation)
        check_init(init)
        if not 0.0 <= l2 < float("inf"):
            raise ValueError(f"--model.l2 must be a finite number >= 0 (lambda of lambda * sum ||W||^2), got {l2}")
        self.l2 = float(l2)
        rng = np.random.default_rng(seed)
        widths = [in_features, *hidden_sizes, num_classes]
        self.dtype = np.dtype(dtype)
        self.layers: list = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            self.layers.append(LinearModule(a, b, rng, init, dtype))
            if i < len(widths) - 2:
                self.layers.append(ACTIVATION_MODULES[activation]())
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
        """One forward/backward pass; returns (mean cross-entropy + L2 penalty, probabilities)."""
        p = self.forward(x)
        onehot = np.eye(p.shape[1], dtype=p.dtype)[y]
        loss = self.loss_module.forward(p, onehot)
        self.backward(self.loss_module.backward(p, onehot))
        if self.l2:
            loss += self.add_l2_penalty()
        return loss, p

    def add_l2_penalty(self) -> float:
        """Add ``2 * l2 * W`` to every weight gradient (after ``backward`` wrote them); returns ``l2 * sum ||W||^2``."""
        penalty = 0.0
        for layer in self.linears:
            weight = layer.params["weight"]
            penalty += float(np.vdot(weight, weight))
            layer.grads["weight"] += (2.0 * self.l2) * weight
        return self.l2 * penalty

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Log-probabilities (the scores the Lightning side treats as logits)."""
        return np.log(self.forward(x) + self.loss_module.eps)

    def named_arrays(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """``(name, value, gradient)`` of every parameter; optimisers update ``value`` in place."""
        for i, layer in enumerate(self.linears):
            for k, value in layer.params.items():
                yield f"linear{i}_{k}", value, layer.grads[k]
