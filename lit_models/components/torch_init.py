"""Applies the shared init schemes (:mod:`lit_models.components.mlp_choices`) to ``torch.nn.Linear`` layers."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lit_models.components.mlp_choices import Distribution, linear_init


def _fill_(tensor: Tensor, dist: Distribution, generator: torch.Generator | None) -> None:
    if dist.kind == "zeros":
        tensor.zero_()
    elif dist.kind == "uniform":
        tensor.uniform_(-dist.scale, dist.scale, generator=generator)
    else:
        tensor.normal_(0.0, dist.scale, generator=generator)


@torch.no_grad()
def init_linear_(linear: nn.Linear, init: str, generator: torch.Generator | None = None) -> nn.Linear:
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
