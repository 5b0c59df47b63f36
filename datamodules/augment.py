"""Batched preprocessing and augmentation: a few tensor ops per batch, on whatever device the batch is.

No PIL and no per-image Python: crops are one gather with per-image offsets, flips one ``torch.where``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def normalize(x_uint8: Tensor, mean: Tensor, std: Tensor | None, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(x - mean) / std`` on a uint8 NCHW batch.

    ``mean`` broadcasts against one image: ``(3, 1, 1)`` for per-channel statistics or ``(3, 32, 32)``
    for the course's mean-image preprocessing. ``std`` None keeps raw 0..255 units (the course recipe).
    """
    x = x_uint8.to(dtype) - mean
    return x if std is None else x / std


def random_crop(x: Tensor, padding: int, generator: torch.Generator | None = None) -> Tensor:
    """Random ``H x W`` crops of the zero-padded batch (zero = the mean colour after normalisation)."""
    if padding <= 0:
        return x
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=x.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # n,1,h,1
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # n,1,1,w
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def random_flip(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Mirror a random half of the batch left-right."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)
