"""Row-wise operations of a classifier head: row normalisation, softmax, log-softmax, cross-entropy.

Each has a fused backward; the tests check it against the same function built from element-wise
operations (and against PyTorch). All act along the last axis (the classes of a ``(batch, classes)`` array).
"""

from __future__ import annotations

import numpy as np

from lit_models.components.autograd.graph import Context, Function, Node


class NormalizeRows(Function):
    """``y_ij = x_ij / s_i`` with ``s_i = sum_k x_ik``: dx_ij = (g_ij - sum_k g_ik y_ik) / s_i."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        s = x.sum(-1, keepdims=True)
        y = x / s
        ctx.save_for_backward(y, s)
        return y

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple[np.ndarray]:
        y, s = ctx.saved
        return ((g - (g * y).sum(-1, keepdims=True)) / s,)


def _shifted_exp(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z - max, e^(z - max), row sums of the latter): the max shift keeps exp finite."""
    shifted = z - z.max(-1, keepdims=True)
    e = np.exp(shifted)
    return shifted, e, e.sum(-1, keepdims=True)


class Softmax(Function):
    """``p = normalize_rows(e^z)``: dz = p * (g - sum_k g_k p_k)."""

    @staticmethod
    def forward(ctx: Context, z: np.ndarray) -> np.ndarray:
        _, e, s = _shifted_exp(z)
        p = e / s
        ctx.save_for_backward(p)
        return p

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple[np.ndarray]:
        p = ctx.saved[0]
        return (p * (g - (g * p).sum(-1, keepdims=True)),)


class LogSoftmax(Function):
    """``z - log sum e^z``: dz = g - p * sum_k g_k."""

    @staticmethod
    def forward(ctx: Context, z: np.ndarray) -> np.ndarray:
        shifted, e, s = _shifted_exp(z)
        ctx.save_for_backward(e / s)
        return shifted - np.log(s)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple[np.ndarray]:
        p = ctx.saved[0]
        return (g - p * g.sum(-1, keepdims=True),)


class CrossEntropy(Function):
    """Mean over the batch of ``-log softmax(z)[target]``: dz = (softmax(z) - onehot) / N."""

    @staticmethod
    def forward(ctx: Context, z: np.ndarray, targets: np.ndarray) -> np.ndarray:
        targets = np.asarray(targets)
        if z.ndim != 2 or targets.shape != (z.shape[0],) or not np.issubdtype(targets.dtype, np.integer):
            raise ValueError(f"cross_entropy: logits of shape {z.shape} need integer targets of shape ({z.shape[0] if z.ndim else '?'},), got {targets.dtype} of shape {targets.shape}")
        if targets.size and (targets.min() < 0 or targets.max() >= z.shape[1]):
            raise ValueError(f"cross_entropy: targets must lie in [0, {z.shape[1]}), got {targets.min()}..{targets.max()}")
        shifted, e, s = _shifted_exp(z)
        rows = np.arange(z.shape[0])
        ctx.save_for_backward(e / s, rows, targets)
        return np.asarray(-(shifted[rows, targets] - np.log(s[:, 0])).mean())

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple[np.ndarray]:
        p, rows, targets = ctx.saved
        dz = p.copy()
        dz[rows, targets] -= 1
        dz *= g / len(rows)
        return (dz,)


def normalize_rows(x: Node) -> Node:
    return NormalizeRows.apply(x)


def softmax(z: Node) -> Node:
    return Softmax.apply(z)


def log_softmax(z: Node) -> Node:
    return LogSoftmax.apply(z)


def cross_entropy(logits: Node, targets: np.ndarray) -> Node:
    return CrossEntropy.apply(logits, targets=targets)
