"""The shared MLP choices (:mod:`lit_models.components.mlp_choices`) for PyTorch modules: activation modules
and the init schemes applied to ``torch.nn.Linear`` layers."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lit_models.components.mlp_choices import Distribution, check_activation, linear_init

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


def make_activation(activation: str) -> nn.Module:
    """A fresh module for the named activation (``relu``/``sigmoid``/``tanh``): the same names as the NumPy MLPs."""
    return _ACTIVATIONS[check_activation(activation)]()


def init_linears_(module: nn.Module, init: str | float) -> nn.Module:
    """Redraw every Linear layer of ``module`` from scheme ``init`` (global RNG, so ``seed_everything`` fixes it).

    ``default`` leaves the layers as ``nn.Linear`` drew them: the same distribution, and the same random
    stream as before this choice existed, so runs recorded without it are reproduced exactly.
    """
    if init != "default":
        for layer in module.modules():
            if isinstance(layer, nn.Linear):
                init_linear_(layer, init)
    return module


def _fill_(tensor: Tensor, dist: Distribution, generator: torch.Generator | None) -> None:
    if dist.kind == "zeros":
        tensor.zero_()
    elif dist.kind == "uniform":
        tensor.uniform_(-dist.scale, dist.scale, generator=generator)
    else:
        tensor.normal_(0.0, dist.scale, generator=generator)


@torch.no_grad()
def init_linear_(linear: nn.Linear, init: str | float, generator: torch.Generator | None = None) -> nn.Linear:
    """Redraw ``linear``'s weight and bias from scheme ``init``, in place.

    Works on weight-normalised layers too: assigning the weight goes through the parametrisation's
    ``right_inverse``, so the effective weight is exactly the drawn one (magnitude g = row norm).
    """
    weight_dist, bias_dist = linear_init(init, linear.in_features)
    if nn.utils.parametrize.is_parametrized(linear, "weight"):
        weight = torch.empty_like(linear.weight)
        _fill_(weight, weight_dist, generator)
        linear.weight = weight
    else:
        _fill_(linear.weight, weight_dist, generator)
    if linear.bias is not None:
        _fill_(linear.bias, bias_dist, generator)
    return linear
