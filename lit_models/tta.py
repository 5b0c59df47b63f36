"""Test-time augmentation: average a classifier's logits over mirrored and shifted views of each batch.

``none``: the batch as it is. ``flip``: the mean of the batch and its left-right mirror.
``flip+translate``: half of the ``flip`` logits plus a quarter each of the ``flip`` logits of the batch
shifted by one pixel up-left and down-right: 6 forward passes in all. The shifts are always reflect-padded
(airbench94's training padding), whatever ``--data.crop_padding_mode`` the model was trained with.
Each view is one forward pass of the batch's own size, so an image's logits never depend on the
others in its batch (BatchNorm runs on running statistics in eval mode).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

TTA_MODES = ("none", "flip", "flip+translate")


def _mirror_mean(forward: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    return 0.5 * forward(x) + 0.5 * forward(x.flip(-1))


def tta_logits(forward: Callable[[Tensor], Tensor], x: Tensor, mode: str = "none") -> Tensor:
    """Logits of ``forward`` on an NCHW batch ``x`` under TTA ``mode`` (one of :data:`TTA_MODES`)."""
    if mode == "none":
        return forward(x)
    if mode not in TTA_MODES:
        raise ValueError(f"--model.tta must be one of {', '.join(TTA_MODES)}, got {mode!r}")
    logits = _mirror_mean(forward, x)
    if mode == "flip":
        return logits
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = _mirror_mean(forward, padded[..., :h, :w]) + _mirror_mean(forward, padded[..., 2:, 2:])
    return 0.5 * logits + 0.25 * shifted
