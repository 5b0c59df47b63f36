"""An iterable of ready-to-train batches cut from tensors that already sit on the training device.

Replaces ``DataLoader`` + ``Dataset`` + worker processes: with CIFAR-10 held as one uint8 tensor, a
batch is an index gather plus a few tensor ops, so there is nothing for workers to do.

Under DDP each rank takes a disjoint, equally long slice of one permutation that every rank computes
from the same seed and epoch, so the ranks see disjoint data and take the same number of steps.
Lightning calls ``sampler.set_epoch`` (as for a ``DistributedSampler``). Augmentation randomness is
seeded per (seed, epoch, rank, batch), so ``start_batch`` can resume an epoch mid-way and produce
exactly the batches an uninterrupted run would have seen.

The loader is resumable in Lightning's sense (``state_dict``/``load_state_dict``): its state is the epoch
and how many of its batches the model has consumed. Lightning fetches one batch ahead, so the loader
cannot count that itself; its owner calls :meth:`mark_consumed` as each batch reaches the model.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
from torch import Tensor

from datamodules.augment import alternating_flip_mask, normalize, random_crop


class EpochSampler:
    """The indices one rank visits in one epoch; deterministic in (seed, epoch, rank)."""

    def __init__(self, n: int, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1, pad: bool = True):
        """``pad`` (training) wraps indices so all ranks take equally many steps; evaluation visits each image once."""
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.rank, self.world_size, self.pad = rank, world_size, pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self.pad:
            return math.ceil(self.n / self.world_size)
        return len(range(self.rank, self.n, self.world_size))

    def indices(self) -> Tensor:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        if not self.pad:
            return order[self.rank :: self.world_size]
        total = len(self) * self.world_size
        if total > self.n:  # pad by wrapping, like DistributedSampler, so every rank takes as many steps
            order = torch.cat([order, order[: total - self.n]])
        return order[self.rank : total : self.world_size]


class InMemoryLoader:
    """Yields ``(images, labels)`` batches: float, normalised, optionally augmented, on ``images.device``.

    ``images`` are uint8 NCHW images, or float (N, features) rows (the synthetic points), served as
    ``(x - mean) / std`` too but never augmented.

    ``subset`` (indices into ``images``) restricts it to one split without copying the images. With
    ``with_index`` a third element holds each image's index in ``images`` (for prediction files).
    ``flip``: True mirrors a random half of each augmented batch, ``"alternate"`` mirrors each image in
    every other epoch (:func:`alternating_flip_mask`), False never.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        mean: Tensor,
        std: Tensor | None,
        shuffle: bool = False,
        augment: bool = False,
        crop_padding: int = 4,
        flip: bool | str = True,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        subset: Tensor | None = None,
        with_index: bool = False,
        padding_mode: str = "zeros",
    ):
        features = images.is_floating_point() and images.ndim == 2 and not augment
        if not features and (images.dtype != torch.uint8 or images.ndim != 4):
            raise ValueError(f"images must be a uint8 NCHW tensor (or, unaugmented, float (N, features)), got {images.dtype} {tuple(images.shape)}")
        self.images, self.labels = images, labels.to(images.device)
        self.mean = mean.to(images.device)
        self.std = None if std is None else std.to(images.device)
        self.batch_size, self.augment, self.crop_padding, self.flip = batch_size, augment, crop_padding, flip
        self.drop_last, self.with_index, self.padding_mode = drop_last, with_index, padding_mode
        self.subset = None if subset is None else subset.to(images.device)
        n = len(images) if subset is None else len(subset)
        self.sampler = EpochSampler(n, shuffle, seed, rank, world_size, pad=shuffle)
        self.batch_sampler = None  # read by Lightning's DataLoader checks
        self.start_batch = 0  # resume point within the next epoch; consumed by the next __iter__
        self.batches_done = 0  # batches of the current epoch the model has consumed (see mark_consumed)
        self._resume_epoch: int | None = None

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def mark_consumed(self) -> None:
        self.batches_done += 1

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "batches_done": self.batches_done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume the saved epoch after its consumed batches; a finished epoch resumes with the next one whole."""
        done = int(state.get("batches_done", 0))
        self.start_batch = done if 0 < done < len(self) else 0
        self._resume_epoch = int(state["epoch"]) if self.start_batch else None

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        pos = self.sampler.indices().to(self.images.device)  # positions in the population (the split)
        idx = pos if self.subset is None else self.subset[pos]
        gen = torch.Generator(device=self.images.device) if self.augment else None
        alternate = self.augment and self.flip == "alternate"
        flips = alternating_flip_mask(self.sampler.n, self.sampler.seed, self.sampler.epoch).to(self.images.device) if alternate else None
        start, self.start_batch = self.start_batch, 0
        if self._resume_epoch is not None and self._resume_epoch != self.sampler.epoch:
            start = 0  # the saved position belongs to another epoch than the one being started
        self._resume_epoch = None
        self.batches_done = start
        for b in range(start, len(self)):
            sel = idx[b * self.batch_size : (b + 1) * self.batch_size]
            # index_select, not images[sel]: ~15x faster on the CPU (0.04 vs 0.6 ms for 256 images).
            x = normalize(self.images.index_select(0, sel), self.mean, self.std)
            if gen is not None:
                s = self.sampler
                gen.manual_seed(((s.seed * 1_000_003 + s.epoch) * 1_009 + s.rank) * 100_003 + b)
                mirrored = flips[pos[b * self.batch_size : (b + 1) * self.batch_size]] if flips is not None else None
                x = random_crop(x, self.crop_padding, gen, flip=self.flip is True, mirrored=mirrored, padding_mode=self.padding_mode)
            y = self.labels.index_select(0, sel)
            yield (x, y, sel) if self.with_index else (x, y)
