"""The engine's core: graph nodes, the operation protocol, and the reverse-mode walk.

A :class:`Node` holds a NumPy array. An operation (a :class:`Function` subclass) computes its output
array in ``forward(ctx, *arrays)``, keeping in ``ctx`` whatever its backward needs, and the output
node remembers the operation, the context and its input nodes. ``node.backward()`` orders the graph
below ``node`` so that every node comes after all nodes computed from it, then visits it in that
order, each operation turning the gradient of its output into gradients of its inputs
(``backward(ctx, grad_out)``, the chain rule one step at a time). A node used by several operations
receives the sum of their gradients before its own backward runs. Gradients end up on the leaves
that require them (parameters, or inputs marked ``requires_grad``), added to what is there already,
as in PyTorch; intermediate gradients are dropped once used.

No operation is defined here (see ``ops.py``); the operators on :class:`Node` forward to them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

_grad_enabled = True


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Operations inside build no graph (evaluation: nothing is kept for a backward pass)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


class Context:
    """What an operation's forward leaves for its backward; ``needs_input_grad`` lets it skip work."""

    def __init__(self, needs_input_grad: tuple[bool, ...]):
        self.needs_input_grad = needs_input_grad
        self.saved: tuple[Any, ...] = ()

    def save_for_backward(self, *values: Any) -> None:
        self.saved = values


class Function:
    """An operation: subclasses define ``forward(ctx, *arrays, **options)`` and ``backward(ctx, grad_out)``.

    ``backward`` returns one gradient per node input, each of that input's shape (or None where
    ``ctx.needs_input_grad`` is False). ``options`` are non-differentiable arguments (axis, shape, labels).
    """

    @staticmethod
    def forward(ctx: Context, *arrays: np.ndarray, **options: Any) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad_out: np.ndarray) -> tuple[np.ndarray | None, ...]:
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Node, **options: Any) -> Node:
        needs = tuple(node.requires_grad for node in inputs)
        ctx = Context(needs)
        out = Node(cls.forward(ctx, *(node.data for node in inputs), **options))
        if _grad_enabled and any(needs):
            out.requires_grad, out.fn, out.ctx, out.parents = True, cls, ctx, inputs
        return out


def _ops() -> Any:
    from lit_models.components.autograd import ops  # ops imports this module: resolved at call time

    return ops


class Node:
    """A value in the computation graph: ``data`` (an array), ``grad`` (same shape, on leaves) and the
    operation that made it (``fn``, ``ctx``, ``parents``; None for leaves)."""

    __array_ufunc__ = None  # ``array * node`` calls Node.__rmul__ instead of making an object array

    def __init__(self, data: Any, requires_grad: bool = False):
        self.data = np.asarray(data)
        self.requires_grad = requires_grad
        self.grad: np.ndarray | None = None
        self.fn: type[Function] | None = None
        self.ctx: Context | None = None
        self.parents: tuple[Node, ...] = ()

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def __repr__(self) -> str:
        made_by = f", fn={self.fn.__name__}" if self.fn else (", requires_grad=True" if self.requires_grad else "")
        return f"Node(shape={self.shape}, dtype={self.dtype}{made_by})"

    def zero_grad(self) -> None:
        """Zero the gradient in place (its memory may be shared, e.g. with a torch tensor)."""
        if self.grad is not None:
            self.grad[...] = 0

    def backward(self, grad_output: np.ndarray | None = None) -> None:
        run_backward(self, grad_output)

    # Operators, so formulas read as maths: ``x @ w.T + b``.
    def __add__(self, other: Any) -> Node:
        return _ops().add(self, other)

    def __radd__(self, other: Any) -> Node:
        return _ops().add(other, self)

    def __sub__(self, other: Any) -> Node:
        return _ops().sub(self, other)

    def __rsub__(self, other: Any) -> Node:
        return _ops().sub(other, self)

    def __mul__(self, other: Any) -> Node:
        return _ops().mul(self, other)

    def __rmul__(self, other: Any) -> Node:
        return _ops().mul(other, self)

    def __truediv__(self, other: Any) -> Node:
        return _ops().div(self, other)

    def __rtruediv__(self, other: Any) -> Node:
        return _ops().div(other, self)

    def __neg__(self) -> Node:
        return _ops().mul(self, -1.0)

    def __matmul__(self, other: Node) -> Node:
        return _ops().matmul(self, other)

    @property
    def T(self) -> Node:  # noqa: N802 - NumPy's name
        return _ops().transpose(self)

    def sum(self, axis: int | None = None, keepdims: bool = False) -> Node:
        return _ops().sum(self, axis, keepdims)


def _reverse_topological(root: Node) -> list[Node]:
    """Nodes below ``root`` that need a gradient, each before every node it was computed from."""
    order: list[Node] = []
    seen: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:  # iterative depth-first search: deep graphs need no recursion limit
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend((parent, False) for parent in node.parents if parent.requires_grad and id(parent) not in seen)
    return order[::-1]


def _accumulate_leaf(node: Node, grad: np.ndarray) -> None:
    if node.grad is None:
        node.grad = np.array(grad, dtype=node.dtype)  # a copy: backward may return views or shared arrays
    else:
        node.grad += grad  # in place: a parameter's gradient keeps its memory


def _check_grads(node: Node, grads: Sequence[np.ndarray | None]) -> None:
    if len(grads) != len(node.parents):
        raise RuntimeError(f"{node.fn.__name__}.backward returned {len(grads)} gradients for {len(node.parents)} inputs")
    for parent, grad in zip(node.parents, grads):
        if grad is not None and parent.requires_grad and grad.shape != parent.shape:
            raise RuntimeError(f"{node.fn.__name__}.backward returned a gradient of shape {grad.shape} for an input of shape {parent.shape}")


def run_backward(root: Node, grad_output: np.ndarray | None = None) -> None:
    """Add d(root)/d(leaf), contracted with ``grad_output``, to ``leaf.grad`` for every leaf that requires it."""
    if grad_output is None:
        if root.data.size != 1:
            raise ValueError(f"backward() without grad_output needs a scalar, but this node has shape {root.shape}; pass grad_output of shape {root.shape}")
        grad_output = np.ones_like(root.data)
    grad_output = np.asarray(grad_output, dtype=root.dtype)
    if grad_output.shape != root.shape:
        raise ValueError(f"backward(): grad_output has shape {grad_output.shape} but the node has shape {root.shape}")
    if not root.requires_grad:
        raise RuntimeError("backward() on a node that does not require grad: no input of its graph has requires_grad=True")
    pending: dict[int, np.ndarray] = {id(root): grad_output}
    for node in _reverse_topological(root):
        grad = pending.pop(id(node), None)
        if grad is None:  # every consumer's backward returned None for it
            continue
        if node.fn is None:
            _accumulate_leaf(node, grad)
            continue
        input_grads = node.fn.backward(node.ctx, grad)
        _check_grads(node, input_grads)
        for parent, g in zip(node.parents, input_grads):
            if g is None or not parent.requires_grad:
                continue
            key = id(parent)
            pending[key] = pending[key] + g if key in pending else g  # out of place: g may be shared
