"""An MLP built on the autograd engine: the same network as :class:`~lit_models.components.numpy_mlp.NumpyMLP`,
but no layer has a hand-written backward; ``loss.backward()`` derives them all from the graph."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from lit_models.components.autograd import ops
from lit_models.components.autograd.graph import Node, no_grad
from lit_models.components.mlp_choices import check_activation, check_init
from lit_models.components.numpy_init import sample_linear


def parameter(value: np.ndarray) -> Node:
    """A leaf that requires grad, with a zeroed gradient allocated once (``zero_grad`` keeps its memory)."""
    node = Node(value, requires_grad=True)
    node.grad = np.zeros_like(value)
    return node


class Linear:
    """``x @ W.T + b``: a matmul, then the bias (out,) expanded over the batch; ``W`` is (out, in) as in PyTorch."""

    def __init__(self, in_features: int, out_features: int, rng: np.random.Generator, init: str = "course", dtype: type = np.float32):
        weight, bias = sample_linear(rng, in_features, out_features, init, dtype)
        self.weight, self.bias = parameter(weight), parameter(bias)

    def __call__(self, x: Node) -> Node:
        return x @ self.weight.T + self.bias


class AutogradMLP:
    """``Linear -> activation -> ... -> Linear``; ``forward`` returns logits, the loss is ``cross_entropy``.

    With the same arguments it draws the same initial weights as ``NumpyMLP`` (shared ``sample_linear``).
    """

    def __init__(
        self,
        in_features: int = 3072,
        hidden_sizes: Sequence[int] = (100,),
        num_classes: int = 10,
        activation: str = "relu",
        init: str = "course",
        seed: int = 0,
        dtype: type = np.float32,
    ):
        self.activation = ops.ACTIVATION_OPS[check_activation(activation)]
        check_init(init)
        rng = np.random.default_rng(seed)
        widths = [in_features, *hidden_sizes, num_classes]
        self.dtype = np.dtype(dtype)
        self.linears = [Linear(a, b, rng, init, dtype) for a, b in zip(widths[:-1], widths[1:])]

    def forward(self, x: np.ndarray) -> Node:
        h = Node(x)
        for i, linear in enumerate(self.linears):
            h = linear(h)
            if i < len(self.linears) - 1:
                h = self.activation(h)
        return h

    def parameters(self) -> list[Node]:
        return [p for linear in self.linears for p in (linear.weight, linear.bias)]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def loss_and_backward(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Gradients of the mean cross-entropy into every ``parameter.grad`` (zeroed first); returns (loss, logits)."""
        self.zero_grad()
        logits = self.forward(x)
        loss = ops.cross_entropy(logits, y)
        loss.backward()
        return float(loss.data), logits.data

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits, without building a graph."""
        with no_grad():
            return self.forward(x).data

    def named_arrays(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """``(name, value, gradient)`` of every parameter, named as ``NumpyMLP`` names them."""
        for i, linear in enumerate(self.linears):
            yield f"linear{i}_weight", linear.weight.data, linear.weight.grad
            yield f"linear{i}_bias", linear.bias.data, linear.bias.grad
