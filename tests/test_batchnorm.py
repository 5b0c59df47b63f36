"""The hand-derived batch-norm backward equals autograd and torch.nn.BatchNorm* to float64 precision."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lit_models.components.batchnorm import BatchNorm1d, BatchNorm2d, BatchNormFunction, make_norm


def test_gradcheck_of_the_closed_form_backward() -> None:
    torch.manual_seed(0)
    x = torch.randn(8, 5, dtype=torch.float64, requires_grad=True)
    gamma = torch.randn(5, dtype=torch.float64, requires_grad=True)
    beta = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, g, b: BatchNormFunction.apply(a, g, b, 1e-5)[0], (x, gamma, beta))


@pytest.mark.parametrize("ours_cls,ref_cls,shape", [(BatchNorm1d, nn.BatchNorm1d, (16, 6)), (BatchNorm2d, nn.BatchNorm2d, (4, 6, 5, 3))])
def test_matches_torch_outputs_gradients_and_running_stats(ours_cls: type, ref_cls: type, shape: tuple) -> None:
    torch.manual_seed(1)
    ours, ref = ours_cls(6).double(), ref_cls(6).double()
    with torch.no_grad():
        for m in (ours, ref):
            m.weight.copy_(torch.linspace(0.5, 2.0, 6))
            m.bias.copy_(torch.linspace(-1.0, 1.0, 6))
    assert set(ours.state_dict()) == set(ref.state_dict()), "drop-in: same state_dict keys"
    for step in range(3):
        x = (torch.randn(*shape, dtype=torch.float64) * (step + 1) + step).requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        up = torch.randn(*shape, dtype=torch.float64)
        y, y_ref = ours(x), ref(x_ref)
        torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
        (y * up).sum().backward()
        (y_ref * up).sum().backward()
        torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(ours.bias.grad, ref.bias.grad, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(ours.running_mean, ref.running_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours.running_var, ref.running_var, rtol=1e-12, atol=1e-12)
    assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == 3
    ours.eval(), ref.eval()
    x = torch.randn(*shape, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-10, atol=1e-10)


def test_backward_uses_the_hand_written_formula() -> None:
    x = torch.randn(10, 3, dtype=torch.float64, requires_grad=True)
    y, _, _ = BatchNormFunction.apply(x, torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), 1e-5)
    assert type(y.grad_fn).__name__ == "BatchNormFunctionBackward"


def test_make_norm_choices() -> None:
    assert isinstance(make_norm("torch", 4, 2), nn.BatchNorm2d)
    assert isinstance(make_norm("custom", 4, 1), BatchNorm1d)
    assert isinstance(make_norm("none", 4, 2), nn.Identity)
    with pytest.raises(ValueError, match="norm must be"):
        make_norm("layer", 4, 2)
