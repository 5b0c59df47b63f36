"""Operations that change shapes: broadcasting (``expand``), reduction (``sum``), ``transpose``, ``matmul``.

``expand`` and ``sum`` are each other's backward: copying a value along an axis sends back the sum of
the copies' gradients along it, and summing along an axis sends the gradient back to every summand.
"""

from __future__ import annotations

import numpy as np

from lit_models.components.autograd.graph import Context, Function, Node


def sum_to_shape(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Undo NumPy broadcasting of a ``shape`` array to ``g.shape``: sum over the leading axes it added and
    over the axes where ``shape`` had a 1."""
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)
    return g.sum(axis=axes).reshape(shape) if axes else g


class Expand(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        try:
            fits = np.broadcast_shapes(x.shape, shape) == shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"expand: shape {x.shape} cannot be expanded to {shape}")
        ctx.save_for_backward(x.shape)
        return np.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple[np.ndarray]:
        return (sum_to_shape(g, ctx.saved[0]),)


class Sum(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: int | tuple[int, ...] | None, keepdims: bool) -> np.ndarray:
        ctx.save_for_backward(x.shape, axis, keepdims)
        return np.asarray(x.sum(axis=axis, keepdims=keepdims))

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple[np.ndarray]:
        shape, axis, keepdims = ctx.saved
        if axis is not None and not keepdims:
            g = np.expand_dims(g, axis)
        return (np.broadcast_to(g, shape),)


class Transpose(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2:
            raise ValueError(f"transpose: needs a 2-D node, got shape {x.shape}")
        return x.T

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple[np.ndarray]:
        return (g.T,)


class MatMul(Function):
    """``C = A B`` (1-D or 2-D, as NumPy): dA = G B^T, dB = A^T G; a 1-D operand is a row (left) or column (right)."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if not (1 <= a.ndim <= 2 and 1 <= b.ndim <= 2) or a.shape[-1] != b.shape[0]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not fit (need 1-D/2-D operands, columns of the first = rows of the second)")
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        a, b = ctx.saved
        a2, b2 = a.reshape(-1, a.shape[-1]), b.reshape(b.shape[0], -1)
        g2 = g.reshape(a2.shape[0], b2.shape[1])
        da = (g2 @ b2.T).reshape(a.shape) if ctx.needs_input_grad[0] else None
        db = (a2.T @ g2).reshape(b.shape) if ctx.needs_input_grad[1] else None
        return da, db


def expand(x: Node, shape: tuple[int, ...]) -> Node:
    return x if x.shape == tuple(shape) else Expand.apply(x, shape=tuple(shape))


def sum(x: Node, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Node:  # noqa: A001 - NumPy's name
    return Sum.apply(x, axis=axis, keepdims=keepdims)


def mean(x: Node, axis: int | None = None) -> Node:
    n = x.data.size if axis is None else x.shape[axis]
    return sum(x, axis) * (1.0 / n)


def transpose(x: Node) -> Node:
    return Transpose.apply(x)


def matmul(a: Node, b: Node) -> Node:
    return MatMul.apply(a, b)
