"""The course ConvNet, a mini-VGG (the VGG-11 layout) with batch norm."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from lit_models.components.batchnorm import make_norm

# Output channels per conv; "M" = max-pool(3, stride 2, padding 1). 32x32 -> 1x1 after five pools.
COURSE_LAYOUT: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class MiniVGG(nn.Module):
    """conv3x3(s1, p1) -> norm -> ReLU blocks with max-pools, then ``Linear(512, num_classes)``."""

    def __init__(self, layout: Sequence[int | str] = COURSE_LAYOUT, num_classes: int = 10, norm: str = "torch", in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for item in layout:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
                continue
            layers += [nn.Conv2d(c, int(item), 3, stride=1, padding=1, bias=norm == "none"), make_norm(norm, int(item), dims=2), nn.ReLU(inplace=True)]
            c = int(item)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))
