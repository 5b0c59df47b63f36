"""Batched preprocessing and augmentation: a few tensor ops per batch, on whatever device the batch is.

No PIL and no per-image Python: a crop (and its optional mirror) is a row ``index_select`` and a column
gather with per-image offsets.
"""

from __future__ import annotations

import torch
from torch import Tensor


def normalize(x_uint8: Tensor, mean: Tensor, std: Tensor | None, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(x - mean) / std`` on a uint8 NCHW batch (or a float batch of feature rows: a fresh copy, as the loader's
    ``index_select`` makes, since a float32 batch is then changed in place).

    ``mean`` broadcasts against one image: ``(3, 1, 1)`` for per-channel statistics or ``(3, 32, 32)``
    for the course's mean-image preprocessing. ``std`` None keeps raw 0..255 units (the course recipe).
    """
    # In place on the fresh float copy: on the CPU a new multi-MB buffer per op costs page faults
    # (measured 6.5 ms vs 0.2 ms for a 256-image batch on 2 cores).
    x = x_uint8.to(dtype).sub_(mean)
    return x if std is None else x.div_(std)


def random_crop(
    x: Tensor, padding: int, generator: torch.Generator | None = None, flip: bool = False, mirrored: Tensor | None = None, padding_mode: str = "zeros"
) -> Tensor:
    """Random ``H x W`` crops of the padded batch: zero padding (zero = the mean colour after
    normalisation) or ``padding_mode="reflect"`` (mirrored border pixels, no artificial edges).

    With ``flip`` a random half of the crops is also mirrored left-right; ``mirrored`` (a bool per image)
    says which instead (see :func:`alternating_flip_mask`). A mirrored crop is the same column gather with
    the column indices reversed, so the flip costs nothing extra.
    """
    n, c, h, w = x.shape
    pad_mode = "constant" if padding_mode == "zeros" else padding_mode
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding), mode=pad_mode) if padding > 0 else x
    dy = torch.randint(0, 2 * padding + 1, (n,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=x.device, generator=generator)
    col = torch.arange(w, device=x.device).expand(n, w)
    if flip and mirrored is None:
        mirrored = torch.rand(n, device=x.device, generator=generator) < 0.5
    if mirrored is not None:
        col = torch.where(mirrored.to(x.device)[:, None], col.flip(1), col)
    # Rows first, as whole padded rows picked by index_select (a contiguous copy per row), then columns
    # as one gather with a broadcast (stride-0) index. Measured on a 2-core CPU for 256 images: 2.0 ms,
    # vs 3.5 ms for two gathers and ~7 ms for one advanced-indexing gather over four index tensors.
    height, width = h + 2 * padding, w + 2 * padding
    first_row = torch.arange(n * c, device=x.device).view(n, c, 1) * height + dy.view(n, 1, 1)
    rows = (first_row + torch.arange(h, device=x.device)).reshape(-1)
    picked = padded.reshape(n * c * height, width).index_select(0, rows).view(n, c * h, width)
    cols = (dx[:, None] + col)[:, None, :].expand(n, c * h, w)
    return picked.gather(2, cols).view(n, c, h, w)


def alternating_flip_mask(n: int, seed: int, epoch: int) -> Tensor:
    """Which of ``n`` images are mirrored in ``epoch``: a seeded random half in even epochs, the other half
    in odd ones, so every image is seen mirrored in exactly one of any two consecutive epochs.

    A function of (seed, epoch, position) only: every DDP rank and a run resumed mid-epoch compute the
    same mask, and each batch picks its images' bits by their position in the epoch's population.
    """
    base = torch.rand(n, generator=torch.Generator().manual_seed(seed * 7_919 + 17)) < 0.5
    return base ^ bool(epoch % 2)
