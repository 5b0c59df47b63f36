"""NumPy SGD: momentum, weight decay and Nesterov step for step against ``torch.optim.SGD``; the course's
L2 term; state that survives a ``weights_only`` checkpoint round trip."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from lit_models.components.autograd import AutogradMLP, ops
from lit_models.components.numpy_bridge import NumpyNetModule
from lit_models.components.numpy_sgd import NumpySGD

SHAPES = [(5, 3), (3,)]


def _twin_params() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    ours = [torch.randn(s, generator=g, dtype=torch.float64, requires_grad=True) for s in SHAPES]
    theirs = [p.detach().clone().requires_grad_() for p in ours]
    return ours, theirs


def _set_grads(params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
    for p, g in zip(params, grads):
        p.grad = g.clone()


@pytest.mark.parametrize(
    "momentum,weight_decay,nesterov",
    [(0.0, 0.0, False), (0.9, 0.0, False), (0.0, 0.01, False), (0.9, 0.05, False), (0.5, 0.05, True)],
)
def test_steps_equal_torch_sgd(momentum: float, weight_decay: float, nesterov: bool) -> None:
    ours, theirs = _twin_params()
    kwargs = {"lr": 0.1, "momentum": momentum, "weight_decay": weight_decay, "nesterov": nesterov}
    opt_ours, opt_theirs = NumpySGD(ours, **kwargs), torch.optim.SGD(theirs, **kwargs)
    g = torch.Generator().manual_seed(1)
    start = [p.detach().clone() for p in ours]
    for step in range(12):
        grads = [torch.randn(s, generator=g, dtype=torch.float64) for s in SHAPES]
        _set_grads(ours, grads)
        _set_grads(theirs, grads)
        opt_ours.step()
        opt_theirs.step()
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-13, atol=1e-15, err_msg=f"step {step}")
    if momentum:
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(opt_ours.state[a]["momentum_buffer"].numpy(), opt_theirs.state[b]["momentum_buffer"].numpy(), rtol=1e-13)
    assert all(not torch.equal(p, s) for p, s in zip(ours, start)), "parameters must have moved"


def test_weight_decay_is_the_gradient_of_the_course_l2_term() -> None:
    """The course adds lambda * ||W||^2 to the loss; its gradient 2 lambda W is ``weight_decay = 2 lambda``
    (on the weights only: biases go in a group without decay)."""
    lam, args = 0.03, {"in_features": 6, "hidden_sizes": (5,), "num_classes": 3, "init": "he", "seed": 0, "dtype": np.float64}
    decayed, penalised = AutogradMLP(**args), AutogradMLP(**args)
    module = NumpyNetModule(decayed)
    weights = [p for name, p in module.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in module.named_parameters() if name.endswith("bias")]
    opt_decayed = NumpySGD([{"params": weights, "weight_decay": 2 * lam}, {"params": biases}], lr=0.2)
    opt_penalised = NumpySGD(NumpyNetModule(penalised).parameters(), lr=0.2)
    rng = np.random.default_rng(0)
    for _ in range(10):
        x, y = rng.normal(size=(4, 6)), rng.integers(0, 3, 4)
        decayed.loss_and_backward(x, y)
        opt_decayed.step()
        penalised.zero_grad()
        loss = ops.cross_entropy(penalised.forward(x), y)
        for linear in penalised.linears:
            loss = loss + lam * (linear.weight * linear.weight).sum()
        loss.backward()
        opt_penalised.step()
    for (name, a, _), (_, b, _) in zip(decayed.named_arrays(), penalised.named_arrays()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15, err_msg=name)
    undecayed = AutogradMLP(**args)
    assert np.linalg.norm(decayed.linears[0].weight.data) < np.linalg.norm(undecayed.linears[0].weight.data), "decay must shrink W"


def test_state_survives_a_weights_only_round_trip() -> None:
    ours, _ = _twin_params()
    opt = NumpySGD(ours, lr=0.1, momentum=0.9, weight_decay=0.01)
    g = torch.Generator().manual_seed(2)
    grads = [[torch.randn(s, generator=g, dtype=torch.float64) for s in SHAPES] for _ in range(6)]
    for step_grads in grads[:3]:
        _set_grads(ours, step_grads)
        opt.step()
    buffer = io.BytesIO()
    torch.save({"params": [p.detach().clone() for p in ours], "optimizer": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = [p.clone().requires_grad_() for p in saved["params"]]
    opt_resumed = NumpySGD(resumed, lr=0.1, momentum=0.9, weight_decay=0.01)
    opt_resumed.load_state_dict(saved["optimizer"])
    for step_grads in grads[3:]:
        for params, o in ((ours, opt), (resumed, opt_resumed)):
            _set_grads(params, step_grads)
            o.step()
    for a, b in zip(ours, resumed):
        assert torch.equal(a, b), "a resumed optimizer must continue bit-identically"


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"lr": 0.0}, "--model.optimizer.init_args.lr must be positive, got 0.0"),
        ({"lr": 0.1, "momentum": 1.0}, "--model.optimizer.init_args.momentum must be in [0, 1), got 1.0"),
        ({"lr": 0.1, "weight_decay": -1.0}, "--model.optimizer.init_args.weight_decay must be >= 0, got -1.0"),
        ({"lr": 0.1, "nesterov": True}, "--model.optimizer.init_args.nesterov must be false without momentum"),
    ],
)
def test_bad_values_name_the_flag(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        NumpySGD([torch.zeros(2, requires_grad=True)], **kwargs)
    assert message in str(exc.value)
