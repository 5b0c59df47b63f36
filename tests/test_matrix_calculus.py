"""The course reports' matrix-calculus identities, each closed form against PyTorch autograd and the
NumPy engine (float64)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from lit_models.components.autograd import Node, ops

RTOL = 1e-12


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _gradients(f_torch: Callable[[torch.Tensor], torch.Tensor], f_engine: Callable[[Node], Node], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """d f / d x by PyTorch autograd and by the engine; f is scalar."""
    xt = torch.tensor(x, requires_grad=True)
    f_torch(xt).backward()
    xn = Node(x, requires_grad=True)
    f_engine(xn).backward()
    return xt.grad.numpy(), xn.grad


def _check(closed_form: np.ndarray, f_torch: Callable, f_engine: Callable, x: np.ndarray) -> None:
    by_torch, by_engine = _gradients(f_torch, f_engine, x)
    assert closed_form.shape == x.shape, f"closed form has shape {closed_form.shape}, the variable {x.shape}"
    np.testing.assert_allclose(closed_form, by_torch, rtol=RTOL, atol=1e-14)
    np.testing.assert_allclose(closed_form, by_engine, rtol=RTOL, atol=1e-14)


def _trace(s: Node) -> Node:
    return (s * np.eye(s.shape[0])).sum()


def test_quadratic_form() -> None:
    """d(x^T B x)/dx = x^T (B + B^T); B deliberately not symmetric (else 2 B x would pass too)."""
    x, b = _rng().normal(size=4), _rng().normal(size=(4, 4)) + np.triu(np.ones((4, 4)))
    _check(x @ (b + b.T), lambda t: t @ torch.tensor(b) @ t, lambda n: n @ Node(b) @ n, x)
    assert not np.allclose(x @ (b + b.T), 2 * b @ x)


def test_trace_of_product_is_vt_wt() -> None:
    """d tr(V X W)/dX = V^T W^T. With V (2x3), X (3x5), W (5x2) the other report's V W^T is (2x3)(2x5):
    it does not even multiply, let alone have X's shape."""
    rng = _rng()
    v, x, w = rng.normal(size=(2, 3)), rng.normal(size=(3, 5)), rng.normal(size=(5, 2))
    _check(v.T @ w.T, lambda t: torch.trace(torch.tensor(v) @ t @ torch.tensor(w)), lambda n: _trace(Node(v) @ n @ Node(w)), x)
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(2, 5\) do not fit"):
        Node(v) @ Node(w).T


def test_vwt_is_wrong_even_where_the_shapes_allow_it() -> None:
    rng = _rng()
    v, x, w = (rng.normal(size=(3, 3)) for _ in range(3))
    by_torch, _ = _gradients(lambda t: torch.trace(torch.tensor(v) @ t @ torch.tensor(w)), lambda n: _trace(Node(v) @ n @ Node(w)), x)
    np.testing.assert_allclose(v.T @ w.T, by_torch, rtol=RTOL)
    assert not np.allclose(v @ w.T, by_torch, rtol=1e-3)


def test_norm() -> None:
    """d||w||/dw = w / ||w||; the engine builds the square root as exp(log(s) / 2)."""
    w = _rng().normal(size=6)
    _check(w / np.linalg.norm(w), torch.linalg.norm, lambda n: ops.exp(0.5 * ops.log((n * n).sum())), w)


def test_trace() -> None:
    """d tr(S)/dS = I."""
    s = _rng().normal(size=(4, 4))
    _check(np.eye(4), torch.trace, _trace, s)


def test_softmax_cross_entropy_is_softmax_minus_onehot_over_n() -> None:
    """d/dz of mean_i -log softmax(z_i)[y_i] = (softmax(z) - onehot(y)) / N, also through the unfused chain
    softmax -> log -> pick the target -> mean."""
    z, y = _rng().normal(size=(6, 5)), np.array([0, 4, 2, 2, 1, 3])
    onehot = np.eye(5)[y]
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    closed_form = (p - onehot) / len(y)
    _check(closed_form, lambda t: F.cross_entropy(t, torch.from_numpy(y)), lambda n: ops.cross_entropy(n, y), z)
    _check(closed_form, lambda t: F.cross_entropy(t, torch.from_numpy(y)), lambda n: -ops.mean((ops.log(ops.softmax(n)) * onehot).sum(1)), z)
