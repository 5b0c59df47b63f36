"""Fully connected classifier on flattened 32x32x3 images."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from lit_models.components.batchnorm import make_norm
from lit_models.components.torch_init import init_linears_, make_activation


class MLP(nn.Module):
    """``in -> [Linear -> norm -> activation -> Dropout]* -> Linear``; the course net is ``hidden_sizes=[100]`` with ReLU.

    ``activation`` and ``init`` take the names every MLP of the project shares (``mlp_choices``).
    """

    def __init__(
        self,
        in_features: int = 3 * 32 * 32,
        hidden_sizes: Sequence[int] = (100,),
        num_classes: int = 10,
        dropout: float = 0.0,
        norm: str = "none",
        activation: str = "relu",
        init: str = "default",
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden_sizes:
            layers += [nn.Linear(width, h), make_norm(norm, h, dims=1), make_activation(activation)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.layers = init_linears_(nn.Sequential(*layers), init)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
