"""A small, fast CIFAR-10 CNN in the style of airbench94 (Keller Jordan): ~2M parameters at widths 64/256/256.

Layout: a frozen 2x2 "whitening" conv (24 channels: the eigenvectors of the training images' 2x2 patch
second-moment matrix, scaled to unit variance, and their negations) -> GELU -> three blocks of
conv3x3 -> max-pool 2 -> BatchNorm -> GELU -> conv3x3 -> BatchNorm -> GELU -> global max-pool ->
linear (no bias) -> logits times ``logit_scale``. BatchNorm has no learnable scale, and every 3x3 conv
starts as an identity map on its first ``in_channels`` outputs (the rest keep PyTorch's default init).

A plain ``nn.Module``: ``FastCNN().init_whitening(images)`` with normalised training images, then train
it with any loop. ``lit_models.fast_cnn.FastCNNClassifier`` does this from the DataModule.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def identity_init_(conv: nn.Conv2d) -> nn.Conv2d:
    """Make the first ``in_channels`` output filters pass their input channel through unchanged."""
    with torch.no_grad():
        n = min(conv.in_channels, conv.out_channels)
        nn.init.dirac_(conv.weight[:n])
    return conv


def scale_free_batchnorm(channels: int, momentum: float, eps: float) -> nn.BatchNorm2d:
    """BatchNorm with a learnable shift only: the scale stays 1 (kept as a frozen parameter)."""
    norm = nn.BatchNorm2d(channels, eps=eps, momentum=momentum)
    norm.weight.requires_grad_(False)
    return norm


class ConvBlock(nn.Module):
    """conv3x3 -> max-pool 2 -> BN -> GELU -> conv3x3 -> BN -> GELU (pooling before the first norm)."""

    def __init__(self, in_channels: int, out_channels: int, bn_momentum: float, bn_eps: float, identity_init: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm1 = scale_free_batchnorm(out_channels, bn_momentum, bn_eps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = scale_free_batchnorm(out_channels, bn_momentum, bn_eps)
        if identity_init:
            identity_init_(self.conv1), identity_init_(self.conv2)

    def forward(self, x: Tensor) -> Tensor:
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.norm2(self.conv2(x)))


def patch_whitening_weights(images: Tensor, kernel_size: int, eps: float, chunk: int = 512) -> Tensor:
    """Conv weights ``(2*C*k*k, C, k, k)`` that whiten the ``k x k`` patches of ``images`` (N, C, H, W).

    The patches' second-moment matrix (uncentred, in float64) is eigendecomposed; filter ``i`` is
    eigenvector ``i`` (largest eigenvalue first) divided by ``sqrt(eigenvalue + eps)``, so the outputs of
    the first ``C*k*k`` filters have an identity second-moment matrix (up to ``eps``); the other half
    are their negations, so that the following GELU keeps both signs of every component.
    """
    c = images.shape[1]
    d = c * kernel_size * kernel_size
    moment = torch.zeros(d, d, dtype=torch.float64)
    count = 0
    for part in images.split(chunk):
        patches = F.unfold(part.double(), kernel_size).transpose(1, 2).reshape(-1, d)  # (N*L, C*k*k), channel-major like conv weights
        moment += patches.T @ patches
        count += len(patches)
    eigenvalues, eigenvectors = torch.linalg.eigh(moment / max(count, 1))
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
    filters = (eigenvectors.T / (eigenvalues.clamp(min=0) + eps).sqrt()[:, None]).reshape(d, c, kernel_size, kernel_size)
    return torch.cat([filters, -filters]).float()


class FastCNN(nn.Module):
    """The airbench94-style network; ``widths`` gives each block's channels (one max-pool per block)."""

    def __init__(
        self,
        widths: Sequence[int] = (64, 256, 256),
        num_classes: int = 10,
        in_channels: int = 3,
        whiten_kernel_size: int = 2,
        bn_momentum: float = 0.4,
        bn_eps: float = 1e-12,
        logit_scale: float = 1 / 9,
        identity_init: bool = True,
    ):
        super().__init__()
        k = whiten_kernel_size
        self.whiten = nn.Conv2d(in_channels, 2 * in_channels * k * k, k, bias=True)
        self.whiten.weight.requires_grad_(False)  # set by init_whitening, never trained
        nn.init.zeros_(self.whiten.bias)
        blocks, c = [], self.whiten.out_channels
        for width in widths:
            blocks.append(ConvBlock(c, int(width), bn_momentum, bn_eps, identity_init))
            c = int(width)
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c, num_classes, bias=False)
        self.logit_scale = logit_scale

    @torch.no_grad()
    def init_whitening(self, images: Tensor, eps: float = 5e-4) -> None:
        """Set the whitening filters from (normalised) training images; see :func:`patch_whitening_weights`."""
        self.set_whitening(patch_whitening_weights(images.float().cpu(), self.whiten.kernel_size[0], eps))

    @torch.no_grad()
    def set_whitening(self, weight: Tensor) -> None:
        self.whiten.weight.copy_(weight.to(self.whiten.weight.device, self.whiten.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(F.gelu(self.whiten(x)))
        return self.head(torch.amax(x, dim=(2, 3))) * self.logit_scale
