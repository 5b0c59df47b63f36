"""The course's best MLP: deep, weight-normalised, dropout on the early layers' inputs."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from lit_models.components.torch_init import init_linears_, make_activation

DEFAULT_HIDDEN = (2000, 1000, 200, 200, 200, 200, 200, 200, 200)


class WeightNormMLP(nn.Module):
    """``3072 -> 2000 -> 1000 -> 200 x 7 -> 10``; every Linear weight-normalised, ReLU (or ``activation``) between.

    ``dropout`` is applied to the *inputs* of the first ``dropout_layers`` linear layers (the course
    recipe: 0.2 on the first 5). ``init`` names a shared scheme (``mlp_choices``); ``default`` is PyTorch's own.
    """

    def __init__(
        self,
        in_features: int = 3 * 32 * 32,
        hidden_sizes: Sequence[int] = DEFAULT_HIDDEN,
        num_classes: int = 10,
        dropout: float = 0.2,
        dropout_layers: int = 5,
        activation: str = "relu",
        init: str = "default",
    ):
        super().__init__()
        widths = [in_features, *hidden_sizes, num_classes]
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:])):
            if i < dropout_layers and dropout > 0:
                layers.append(nn.Dropout(dropout))
            layers.append(weight_norm(init_linears_(nn.Linear(w_in, w_out), init)))
            if i < len(widths) - 2:
                layers.append(make_activation(activation))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
