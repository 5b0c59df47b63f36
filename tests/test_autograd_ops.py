"""The NumPy autograd engine: every operation's backward against PyTorch autograd (float64) and finite
differences, broadcasting, a node reused in several places, accumulation and the error messages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from lit_models.components.autograd import Node, no_grad, ops

TARGETS = np.array([2, 0, 3, 3, 1])


@dataclass
class Case:
    engine: Callable[..., Node]
    reference: Callable[..., torch.Tensor]  # the same function in PyTorch
    shapes: tuple[tuple[int, ...], ...]
    domain: str = "any"  # "positive" (log, division, normalisation) or "off_zero" (ReLU's kink)


def _reuse_engine(x: Node, w: Node) -> Node:
    y = x * x + x / ops.exp(x)  # x three times here, once more below
    return y @ w + ops.relu(x @ w) * 0.5


def _reuse_torch(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (x * x + x / torch.exp(x)) @ w + torch.relu(x @ w) * 0.5


CASES: dict[str, Case] = {
    "add": Case(lambda a, b: a + b, lambda a, b: a + b, ((3, 4), (3, 4))),
    "add_broadcast_row": Case(lambda a, b: a + b, lambda a, b: a + b, ((3, 4), (4,))),
    "add_broadcast_both": Case(lambda a, b: a + b, lambda a, b: a + b, ((3, 1), (1, 4))),
    "sub_broadcast_3d": Case(lambda a, b: a - b, lambda a, b: a - b, ((2, 3, 4), (3, 1))),
    "mul": Case(lambda a, b: a * b, lambda a, b: a * b, ((3, 4), (3, 4))),
    "mul_broadcast_column": Case(lambda a, b: a * b, lambda a, b: a * b, ((3, 4), (3, 1))),
    "mul_scalar": Case(lambda a: 3.0 * a, lambda a: 3.0 * a, ((3, 4),)),
    "div": Case(lambda a, b: a / b, lambda a, b: a / b, ((3, 4), (3, 4)), "positive"),
    "div_broadcast": Case(lambda a, b: a / b, lambda a, b: a / b, ((3, 4), (4,)), "positive"),
    "div_scalar_numerator": Case(lambda a: 1.0 / a, lambda a: 1.0 / a, ((3, 4),), "positive"),
    "matmul": Case(lambda a, b: a @ b, lambda a, b: a @ b, ((3, 4), (4, 5))),
    "matmul_vector_matrix": Case(lambda a, b: a @ b, lambda a, b: a @ b, ((4,), (4, 5))),
    "matmul_matrix_vector": Case(lambda a, b: a @ b, lambda a, b: a @ b, ((3, 4), (4,))),
    "matmul_dot": Case(lambda a, b: a @ b, lambda a, b: a @ b, ((4,), (4,))),
    "transpose": Case(lambda a: a.T, lambda a: a.T, ((3, 4),)),
    "sum_all": Case(lambda a: a.sum(), lambda a: a.sum(), ((3, 4),)),
    "sum_axis0": Case(lambda a: a.sum(0), lambda a: a.sum(0), ((3, 4),)),
    "sum_axis1_keepdims": Case(lambda a: a.sum(1, keepdims=True), lambda a: a.sum(1, keepdim=True), ((3, 4),)),
    "sum_axes_3d": Case(lambda a: a.sum((0, 2)), lambda a: a.sum((0, 2)), ((2, 3, 4),)),
    "mean_axis0": Case(lambda a: ops.mean(a, 0), lambda a: a.mean(0), ((3, 4),)),
    "expand_row": Case(lambda a: ops.expand(a, (3, 4)), lambda a: a.expand(3, 4), ((4,),)),
    "expand_column": Case(lambda a: ops.expand(a, (3, 4)), lambda a: a.expand(3, 4), ((3, 1),)),
    "expand_new_axes": Case(lambda a: ops.expand(a, (2, 3, 4)), lambda a: a.expand(2, 3, 4), ((1, 4),)),
    "exp": Case(ops.exp, torch.exp, ((3, 4),)),
    "log": Case(ops.log, torch.log, ((3, 4),), "positive"),
    "relu": Case(ops.relu, torch.relu, ((3, 4),), "off_zero"),
    "sigmoid": Case(ops.sigmoid, torch.sigmoid, ((3, 4),)),
    "tanh": Case(ops.tanh, torch.tanh, ((3, 4),)),
    "normalize_rows": Case(ops.normalize_rows, lambda a: a / a.sum(-1, keepdim=True), ((3, 4),), "positive"),
    "softmax": Case(ops.softmax, lambda a: torch.softmax(a, -1), ((3, 4),)),
    "log_softmax": Case(ops.log_softmax, lambda a: torch.log_softmax(a, -1), ((3, 4),)),
    "cross_entropy": Case(lambda z: ops.cross_entropy(z, TARGETS), lambda z: F.cross_entropy(z, torch.from_numpy(TARGETS)), ((5, 4),)),
    "node_reused": Case(_reuse_engine, _reuse_torch, ((3, 4), (4, 2)), "off_zero"),
}


def _inputs(case: Case, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = []
    for shape in case.shapes:
        a = rng.normal(size=shape)
        if case.domain == "positive":
            a = np.abs(a) + 0.5
        elif case.domain == "off_zero":
            a = a + np.sign(a) * 0.2  # finite differences must not step across ReLU's kink
        arrays.append(a)
    return arrays


def _engine_grads(case: Case, arrays: list[np.ndarray], grad_out: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    nodes = [Node(a.copy(), requires_grad=True) for a in arrays]
    out = case.engine(*nodes)
    out.backward(grad_out)
    return out.data, [n.grad for n in nodes]


@pytest.mark.parametrize("name", sorted(CASES))
def test_backward_equals_torch_autograd(name: str) -> None:
    case = CASES[name]
    arrays = _inputs(case)
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    expected = case.reference(*tensors)
    grad_out = np.random.default_rng(1).normal(size=tuple(expected.shape))
    expected.backward(torch.from_numpy(grad_out))
    out, grads = _engine_grads(case, arrays, grad_out)
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-12, atol=1e-14)
    for i, (g, t) in enumerate(zip(grads, tensors)):
        assert g.shape == arrays[i].shape
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-13, err_msg=f"input {i}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_backward_equals_finite_differences(name: str) -> None:
    case = CASES[name]
    arrays = _inputs(case)
    with no_grad():
        out_shape = case.engine(*map(Node, arrays)).shape
    grad_out = np.random.default_rng(1).normal(size=out_shape)

    def projected(*values: np.ndarray) -> float:  # <grad_out, f(values)>: its gradient is what backward returns
        with no_grad():
            return float((case.engine(*map(Node, values)).data * grad_out).sum())

    _, grads = _engine_grads(case, arrays, grad_out)
    eps = 1e-6
    for i, a in enumerate(arrays):
        numeric = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            up, down = [x.copy() for x in arrays], [x.copy() for x in arrays]
            up[i][idx] += eps
            down[i][idx] -= eps
            numeric[idx] = (projected(*up) - projected(*down)) / (2 * eps)
        np.testing.assert_allclose(grads[i], numeric, rtol=1e-6, atol=1e-8, err_msg=f"input {i}")


FUSED_VS_COMPOSITE = {
    # fused op with its own backward: the same function from element-wise ops, shapes and broadcasting
    "normalize_rows": (ops.normalize_rows, lambda x: x / x.sum(1, keepdims=True)),
    "softmax": (ops.softmax, lambda x: ops.normalize_rows(ops.exp(x))),
    "log_softmax": (ops.log_softmax, lambda x: ops.log(ops.softmax(x))),
    "cross_entropy": (lambda z: ops.cross_entropy(z, TARGETS), lambda z: -ops.mean((ops.log_softmax(z) * np.eye(4)[TARGETS]).sum(1))),
}


@pytest.mark.parametrize("name", sorted(FUSED_VS_COMPOSITE))
def test_fused_backward_equals_the_composite_graph(name: str) -> None:
    fused, composite = FUSED_VS_COMPOSITE[name]
    x = np.abs(np.random.default_rng(2).normal(size=(5, 4))) + 0.5
    results = []
    for fn in (fused, composite):
        node = Node(x.copy(), requires_grad=True)
        out = fn(node)
        out.backward(np.random.default_rng(3).normal(size=out.shape) if out.shape else None)
        results.append((out.data, node.grad))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-10, atol=1e-14)


def test_gradients_accumulate_over_uses_and_backward_calls() -> None:
    x = Node(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    (x * 3.0 + x * x).sum().backward()  # used twice in one graph: d/dx = 3 + 2x
    np.testing.assert_array_equal(x.grad, [5.0, -1.0, 9.0])
    (x * 3.0).sum().backward()  # a second backward adds to .grad, as in PyTorch
    np.testing.assert_array_equal(x.grad, [8.0, 2.0, 12.0])
    x.zero_grad()
    assert not x.grad.any()


def test_leaf_gradient_keeps_its_memory() -> None:
    """Parameters expose ``.grad`` to torch by shared memory: backward must add in place, not rebind."""
    w = Node(np.ones(3), requires_grad=True)
    w.grad = np.zeros(3)
    memory = w.grad
    (w * 2.0).sum().backward()
    assert w.grad is memory and (memory == 2.0).all()


def test_no_grad_and_constants_build_no_graph() -> None:
    w = Node(np.ones((2, 2)), requires_grad=True)
    with no_grad():
        out = w @ w
    assert not out.requires_grad and out.fn is None and out.parents == ()
    const = Node(np.ones(2)) * 2.0
    assert not const.requires_grad and const.fn is None


def test_float32_stays_float32() -> None:
    x = Node(np.ones((2, 3), np.float32), requires_grad=True)
    out = ops.cross_entropy(ops.tanh(x * 0.5 + 1.0) @ Node(np.ones((3, 4), np.float32)), np.array([0, 3]))
    out.backward()
    assert out.dtype == np.float32 and x.grad.dtype == np.float32


@pytest.mark.parametrize(
    "build,message",
    [
        (lambda: Node(np.ones((3, 4)), requires_grad=True).backward(), "needs a scalar, but this node has shape (3, 4)"),
        (lambda: (Node(np.ones(2), requires_grad=True) * 2.0).backward(np.ones(3)), "grad_output has shape (3,) but the node has shape (2,)"),
        (lambda: Node(np.ones((3, 4))) + Node(np.ones(5)), "shapes (3, 4) and (5,) cannot be broadcast together"),
        (lambda: Node(np.ones((3, 4))) @ Node(np.ones((5, 2))), "matmul: shapes (3, 4) and (5, 2) do not fit"),
        (lambda: ops.expand(Node(np.ones(3)), (4, 2)), "shape (3,) cannot be expanded to (4, 2)"),
        (lambda: ops.cross_entropy(Node(np.ones((2, 4))), np.array([0, 1, 2])), "logits of shape (2, 4) need integer targets of shape (2,)"),
        (lambda: ops.cross_entropy(Node(np.ones((2, 4))), np.array([0, 4])), "targets must lie in [0, 4)"),
    ],
)
def test_errors_name_the_shapes(build: Callable[[], Any], message: str) -> None:
    with pytest.raises(ValueError) as exc:
        build()
    assert message in str(exc.value)


def test_backward_without_any_input_requiring_grad_is_refused() -> None:
    with pytest.raises(RuntimeError, match="does not require grad"):
        (Node(np.ones(2)) * 2.0).sum().backward()
