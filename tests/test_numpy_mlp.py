"""The NumPy MLP's hand-written gradients equal autograd's; NumPy and PyTorch training stay identical."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lit_models.components.mlp import MLP
from lit_models.components.numpy_bridge import NumpyNetModule
from lit_models.components.numpy_mlp import CrossEntropyModule, LinearModule, NumpyMLP, ReLUModule, SigmoidModule, SoftMaxModule, TanhModule
from lit_models.components.numpy_sgd import NumpySGD

RTOL = 1e-6


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_linear_backward_equals_autograd() -> None:
    lin = LinearModule(7, 4, _rng(), init="default", dtype=np.float64)
    x = _rng().normal(size=(5, 7))
    dout = _rng().normal(size=(5, 4))
    lin.forward(x)
    dx = lin.backward(dout)
    xt = torch.tensor(x, requires_grad=True)
    w = torch.tensor(lin.params["weight"], requires_grad=True)
    b = torch.tensor(lin.params["bias"], requires_grad=True)
    (torch.nn.functional.linear(xt, w, b) * torch.tensor(dout)).sum().backward()
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=RTOL)
    np.testing.assert_allclose(lin.grads["weight"], w.grad.numpy(), rtol=RTOL)
    np.testing.assert_allclose(lin.grads["bias"], b.grad.numpy(), rtol=RTOL)


@pytest.mark.parametrize("module,fn", [(ReLUModule, torch.relu), (SigmoidModule, torch.sigmoid), (TanhModule, torch.tanh), (SoftMaxModule, lambda t: torch.softmax(t, 1))])
def test_elementwise_backward_equals_autograd(module: type, fn: object) -> None:
    x = _rng().normal(size=(6, 10))
    dout = _rng().normal(size=(6, 10)) + 0.1
    m = module()
    m.forward(x)
    xt = torch.tensor(x, requires_grad=True)
    (fn(xt) * torch.tensor(dout)).sum().backward()
    np.testing.assert_allclose(m.backward(dout), xt.grad.numpy(), rtol=RTOL, atol=1e-12)


def test_cross_entropy_backward_equals_autograd() -> None:
    logits = _rng().normal(size=(8, 10))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = np.eye(10)[_rng().integers(0, 10, 8)]
    ce = CrossEntropyModule()
    pt = torch.tensor(p, requires_grad=True)
    loss = -(torch.tensor(y) * torch.log(pt + ce.eps)).sum(1).mean()
    loss.backward()
    assert ce.forward(p, y) == pytest.approx(float(loss), rel=1e-12)
    np.testing.assert_allclose(ce.backward(p, y), pt.grad.numpy(), rtol=RTOL)


def _twins(hidden: tuple[int, ...] = (20, 15)) -> tuple[NumpyMLP, MLP]:
    """A NumPy MLP and a PyTorch MLP with identical float64 weights."""
    np_net = NumpyMLP(in_features=12, hidden_sizes=hidden, num_classes=10, init="he", seed=3, dtype=np.float64)
    torch_net = MLP(in_features=12, hidden_sizes=hidden, num_classes=10).double()
    linears = [m for m in torch_net.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for t, n in zip(linears, np_net.linears):
            t.weight.copy_(torch.from_numpy(n.params["weight"]))
            t.bias.copy_(torch.from_numpy(n.params["bias"]))
    return np_net, torch_net


def test_whole_network_gradients_equal_autograd() -> None:
    np_net, torch_net = _twins()
    x, y = _rng().normal(size=(9, 12)), _rng().integers(0, 10, 9)
    loss, _ = np_net.loss_and_backward(x, y)
    t_loss = torch.nn.functional.cross_entropy(torch_net(torch.tensor(x)), torch.tensor(y))
    t_loss.backward()
    assert loss == pytest.approx(float(t_loss), rel=1e-9)
    linears = [m for m in torch_net.modules() if isinstance(m, torch.nn.Linear)]
    for t, n in zip(linears, np_net.linears):
        np.testing.assert_allclose(n.grads["weight"], t.weight.grad.numpy(), rtol=RTOL, atol=1e-14)
        np.testing.assert_allclose(n.grads["bias"], t.bias.grad.numpy(), rtol=RTOL, atol=1e-14)


def test_numerical_gradient_check() -> None:
    np_net = NumpyMLP(in_features=6, hidden_sizes=(5,), num_classes=4, init="default", seed=1, dtype=np.float64)
    x, y = _rng().normal(size=(3, 6)), np.array([0, 3, 1])
    np_net.loss_and_backward(x, y)
    for layer in np_net.linears:
        for k, param in layer.params.items():
            analytic = layer.grads[k].copy()
            numeric = np.zeros_like(param)
            for idx in np.ndindex(param.shape):
                old = param[idx]
                param[idx] = old + 1e-6
                up = np_net.loss_module.forward(np_net.forward(x), np.eye(4)[y])
                param[idx] = old - 1e-6
                down = np_net.loss_module.forward(np_net.forward(x), np.eye(4)[y])
                param[idx] = old
                numeric[idx] = (up - down) / 2e-6
            np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_numpy_and_torch_sgd_stay_identical_for_20_steps() -> None:
    np_net, torch_net = _twins()
    np_opt = NumpySGD(NumpyNetModule(np_net).parameters(), lr=0.05)
    opt = torch.optim.SGD(torch_net.parameters(), lr=0.05)
    rng = _rng()
    for _ in range(20):
        x, y = rng.normal(size=(16, 12)), rng.integers(0, 10, 16)
        np_loss, _ = np_net.loss_and_backward(x, y)
        np_opt.step()
        opt.zero_grad()
        t_loss = torch.nn.functional.cross_entropy(torch_net(torch.tensor(x)), torch.tensor(y))
        t_loss.backward()
        opt.step()
        assert np_loss == pytest.approx(float(t_loss), rel=1e-6)
    linears = [m for m in torch_net.modules() if isinstance(m, torch.nn.Linear)]
    for t, n in zip(linears, np_net.linears):
        np.testing.assert_allclose(n.params["weight"], t.weight.detach().numpy(), rtol=RTOL, atol=1e-12)


def test_course_init() -> None:
    net = NumpyMLP(hidden_sizes=(100,), init="course", seed=0)
    w = net.linears[0].params["weight"]
    assert w.shape == (100, 3072) and abs(w.std() - 1e-4) < 2e-6 and not net.linears[0].params["bias"].any()
