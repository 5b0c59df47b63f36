"""Init schemes: each backend draws the documented distribution; He initialisation's derivation, and
what it does to activations through the 11-layer (10 Linear) weight-normed MLP against the course's init."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from lit_models.components.mlp_choices import check_activation, check_init
from lit_models.components.numpy_init import sample_linear
from lit_models.components.torch_init import init_linear_
from lit_models.components.wn_mlp import WeightNormMLP

FAN_IN, FAN_OUT = 400, 300


def _numpy_draw(init: str) -> tuple[np.ndarray, np.ndarray]:
    return sample_linear(np.random.default_rng(0), FAN_IN, FAN_OUT, init, np.float64)


def _torch_draw(init: str) -> tuple[np.ndarray, np.ndarray]:
    linear = init_linear_(nn.Linear(FAN_IN, FAN_OUT), init, torch.Generator().manual_seed(0))
    return linear.weight.detach().numpy(), linear.bias.detach().numpy()


@pytest.mark.parametrize("draw", [_numpy_draw, _torch_draw])
def test_default_is_pytorch_linear_default(draw: object) -> None:
    torch.manual_seed(0)
    reference = nn.Linear(FAN_IN, FAN_OUT)
    weight, bias = draw("default")
    for ours, theirs in ((weight, reference.weight), (bias, reference.bias)):
        theirs = theirs.detach().numpy()
        assert np.abs(ours).max() <= 1 / math.sqrt(FAN_IN) and np.abs(theirs).max() <= 1 / math.sqrt(FAN_IN)
        assert abs(ours.std() / theirs.std() - 1) < 0.1 and abs(ours.std() - 1 / math.sqrt(3 * FAN_IN)) < 0.1 / math.sqrt(3 * FAN_IN)


@pytest.mark.parametrize("draw", [_numpy_draw, _torch_draw])
@pytest.mark.parametrize("init,std", [("course", 1e-4), ("he", math.sqrt(2 / FAN_IN))])
def test_normal_schemes(draw: object, init: str, std: float) -> None:
    weight, bias = draw(init)
    assert abs(weight.std() / std - 1) < 0.01 and abs(weight.mean()) < 0.01 * std
    assert not bias.any(), "course and he start with zero biases"


def test_bad_names_name_the_flag() -> None:
    with pytest.raises(ValueError, match=r"--model.init must be one of default, course, he; got 'xavier'"):
        check_init("xavier")
    with pytest.raises(ValueError, match=r"--model.activation must be one of relu, sigmoid, tanh; got 'swish'"):
        check_activation("swish")


@pytest.mark.parametrize("sigma", [0.1, 1.0, 3.0])
def test_relu_halves_the_second_moment(sigma: float) -> None:
    """f ~ N(0, s^2): E[ReLU(f)^2] = s^2 / 2 (half the mass, symmetric), the step behind He's 2 / fan_in."""
    n = 400_000
    samples = np.maximum(np.random.default_rng(0).normal(0.0, sigma, n), 0.0) ** 2
    # Var[ReLU(f)^2] = E[ReLU(f)^4] - (s^2/2)^2 = 3 s^4 / 2 - s^4 / 4 = 5 s^4 / 4; allow 5 standard errors.
    tolerance = 5 * math.sqrt(5 / 4) * sigma**2 / math.sqrt(n)
    assert abs(samples.mean() - sigma**2 / 2) < tolerance
    assert abs(samples.mean() - sigma**2) > tolerance, "the tolerance must be tight enough to reject E = s^2"


def _preactivation_second_moments(init: str) -> list[float]:
    """E[z^2] at every Linear output of the weight-normed 3072-2000-1000-200x7-10 MLP, at initialisation."""
    torch.manual_seed(0)
    net = WeightNormMLP().double().eval()  # float64: the course init's moments reach 1e-50; eval: dropout off
    generator = torch.Generator().manual_seed(0)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    moments: list[float] = []
    for linear in linears:
        init_linear_(linear, init, generator)
        linear.register_forward_hook(lambda _m, _i, out: moments.append(float(out.pow(2).mean())))
    with torch.no_grad():
        net(torch.randn(128, 3072, generator=generator, dtype=torch.float64))
    assert len(moments) == 10
    return moments


def test_he_keeps_the_second_moment_while_the_course_init_makes_it_vanish() -> None:
    he, course = _preactivation_second_moments("he"), _preactivation_second_moments("course")
    table = "\n".join(f"layer {i + 1:2d}: he {a:.3e}   course {b:.3e}" for i, (a, b) in enumerate(zip(he, course)))
    # He: E[z_l^2] = fan_in * (2 / fan_in) * E[ReLU(z_{l-1})^2] = E[z_{l-1}^2], so every layer stays near the first.
    assert all(1 / 3 < m / he[0] < 3 for m in he), f"He init must keep E[z^2] roughly constant:\n{table}"
    # Course: each layer multiplies E[z^2] by fan_in * 1e-8 / 2 <= 1.6e-5.
    assert all(b < 1e-3 * a for a, b in zip(course, course[1:])), f"the course init must shrink E[z^2] at every layer:\n{table}"
    assert course[-1] < 1e-40 * course[0], f"the course init must make the signal vanish:\n{table}"
