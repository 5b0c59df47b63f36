"""Fully connected classifier on flattened 32x32x3 images."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from lit_models.components.batchnorm import make_norm


class MLP(nn.Module):
    """``in -> [Linear -> norm -> ReLU -> Dropout]* -> Linear``; the course net is ``hidden_sizes=[100]``."""

    def __init__(self, in_features: int = 3 * 32 * 32, hidden_sizes: Sequence[int] = (100,), num_classes: int = 10, dropout: float = 0.0, norm: str = "none"):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden_sizes:
            layers += [nn.Linear(width, h), make_norm(norm, h, dims=1), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
