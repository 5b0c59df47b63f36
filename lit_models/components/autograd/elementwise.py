"""Element-wise operations. Binary ones broadcast like NumPy by inserting explicit ``expand`` nodes,
so the gradient of a broadcast input is reduced in one place (``Expand.backward``), never here."""

from __future__ import annotations

from typing import Any

import numpy as np

from lit_models.components.autograd.graph import Context, Function, Node
from lit_models.components.autograd.shapes import expand


def as_node(value: Any, like: Node | None = None) -> Node:
    """A constant node; Python numbers take ``like``'s dtype (a float32 net stays float32)."""
    if isinstance(value, Node):
        return value
    if like is not None and np.ndim(value) == 0 and not isinstance(value, np.ndarray):
        return Node(np.asarray(value, dtype=like.dtype))
    return Node(value)


def _broadcast(op: type[Function], a: Any, b: Any) -> Node:
    a, b = as_node(a, b if isinstance(b, Node) else None), as_node(b, a if isinstance(a, Node) else None)
    if a.shape != b.shape:
        try:
            shape = np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(f"{op.__name__.lower()}: shapes {a.shape} and {b.shape} cannot be broadcast together") from None
        a, b = expand(a, shape), expand(b, shape)
    return op.apply(a, b)


class Add(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a + b

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return g, g


class Sub(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a - b

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return g, -g if ctx.needs_input_grad[1] else None


class Mul(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        a, b = ctx.saved
        return g * b if ctx.needs_input_grad[0] else None, g * a if ctx.needs_input_grad[1] else None


class Div(Function):
    """``Z = X / Y``: dX = G / Y, dY = -G X / Y^2 (the course's derivation)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(x, y)
        return x / y

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        x, y = ctx.saved
        return g / y if ctx.needs_input_grad[0] else None, -g * x / (y * y) if ctx.needs_input_grad[1] else None


class _DerivativeFromOutput(Function):
    """A unary operation whose derivative is a function of its output (exp, sigmoid, tanh): only the output is kept."""

    @staticmethod
    def function(x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def derivative(out: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @classmethod
    def forward(cls, ctx: Context, x: np.ndarray) -> np.ndarray:
        out = cls.function(x)
        ctx.save_for_backward(out)
        return out

    @classmethod
    def backward(cls, ctx: Context, g: np.ndarray) -> tuple[np.ndarray]:
        return (g * cls.derivative(ctx.saved[0]),)


class Exp(_DerivativeFromOutput):
    function = staticmethod(np.exp)

    @staticmethod
    def derivative(out: np.ndarray) -> np.ndarray:
        return out


class Sigmoid(_DerivativeFromOutput):
    """``s = 1 / (1 + e^-x)``, ``ds/dx = s (1 - s)``: at most 1/4, so deep sigmoid nets shrink gradients."""

    @staticmethod
    def function(x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-x))

    @staticmethod
    def derivative(out: np.ndarray) -> np.ndarray:
        return out * (1.0 - out)


class Tanh(_DerivativeFromOutput):
    """``t = tanh(x)``, ``dt/dx = 1 - t^2``."""

    function = staticmethod(np.tanh)

    @staticmethod
    def derivative(out: np.ndarray) -> np.ndarray:
        return 1.0 - out * out


class Log(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(x)
        return np.log(x)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple[np.ndarray]:
        return (g / ctx.saved[0],)


class ReLU(Function):
    """Gradient 1 where x > 0, else 0 (0 at x = 0, as in PyTorch)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        mask = x > 0
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple[np.ndarray]:
        return (g * ctx.saved[0],)


def add(a: Any, b: Any) -> Node:
    return _broadcast(Add, a, b)


def sub(a: Any, b: Any) -> Node:
    return _broadcast(Sub, a, b)


def mul(a: Any, b: Any) -> Node:
    return _broadcast(Mul, a, b)


def div(a: Any, b: Any) -> Node:
    return _broadcast(Div, a, b)


def exp(x: Node) -> Node:
    return Exp.apply(x)


def log(x: Node) -> Node:
    return Log.apply(x)


def relu(x: Node) -> Node:
    return ReLU.apply(x)


def sigmoid(x: Node) -> Node:
    return Sigmoid.apply(x)


def tanh(x: Node) -> Node:
    return Tanh.apply(x)
