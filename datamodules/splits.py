"""Train/validation splits as index sets into the one training tensor (no copies of the data).

``random``: ``val_size`` rows drawn with ``split_seed`` (the default, as before). ``ordered``: the last
``val_size`` rows in file order validate and the rows before them train, the Sapienza 2020 split (the
first 49,000 official training images train, the next 1,000 validate). An image folder is read class by
class, so its row order is no file order across classes: there ``ordered`` interleaves the classes by
position within each class, which keeps both splits class-balanced where the rows' order would give a
validation split of the last class alone (see ``interleaved_order``).

Either way the validation indices come in a seeded random order: evaluation visits them in that order, so
any prefix (``--trainer.limit_val_batches``) is a class-mixed, unbiased sample. Training indices are sorted
(the loader shuffles them each epoch).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _seeded_perm(n: int, seed: int) -> Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def random_split(n: int, val_size: int, seed: int) -> tuple[Tensor, Tensor]:
    """(validation, training) indices: a seeded draw of ``val_size`` of ``n`` rows, the rest sorted."""
    perm = _seeded_perm(n, seed)
    return perm[:val_size], perm[val_size:].sort().values


def interleaved_order(labels: Tensor) -> Tensor:
    """The rows of a class-by-class read ordered by (position within their class, class): the first row of
    every class, then the second of every class, and so on; with equal classes, each run of ``num_classes``
    rows holds one of each class."""
    position = torch.empty_like(labels)
    for c in labels.unique():
        rows = (labels == c).nonzero().flatten()
        position[rows] = torch.arange(len(rows))
    key = position * (int(labels.max()) + 1) + labels
    return key.argsort(stable=True)


def ordered_split(labels: Tensor, val_size: int, seed: int, class_folders: bool) -> tuple[Tensor, Tensor]:
    """(validation, training) indices: the last ``val_size`` rows in file order validate (visited in a seeded
    order), the rows before them train. ``class_folders``: the rows were read class by class (see module doc)."""
    n = len(labels)
    order = interleaved_order(labels) if class_folders else torch.arange(n)
    val = order[n - val_size :]
    return val[_seeded_perm(val_size, seed)], order[: n - val_size].sort().values
