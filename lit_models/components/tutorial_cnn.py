"""The network of PyTorch's "Training a classifier" tutorial (the 60-minute blitz, CIFAR-10).

conv 3->6 5x5 -> ReLU -> max-pool 2 -> conv 6->16 5x5 -> ReLU -> max-pool 2 -> fc 400->120 -> ReLU ->
fc 120->84 -> ReLU -> fc 84->10: 62,006 parameters. The VU Amsterdam 2020 report (003b) trains it as the
tutorial does. Layer names are the tutorial's (``conv1``, ``pool``, ``conv2``, ``fc1``-``fc3``), so a state dict
saved by the tutorial's script (``cifar_net.pth``) loads into it as is, and PyTorch's default init applies.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class TutorialCNN(nn.Module):
    """The tutorial's ``Net`` for 3x32x32 inputs; ``num_classes`` outputs (logits)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 5)  # 32x32 -> 28x28, pooled to 14x14
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)  # 14x14 -> 10x10, pooled to 5x5
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)
