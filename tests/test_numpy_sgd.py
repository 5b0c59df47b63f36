"""NumPy SGD: momentum, weight decay and Nesterov step for step against ``torch.optim.SGD``; state that
survives a ``weights_only`` checkpoint round trip."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

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
