"""vugrad's synthetic data set (VU Amsterdam DL 2020, Assignment 2; report 003a) as a data source.

The rule is vugrad's ``load_synth``: two features x ~ N(0, I_2), label y = 1[x^T Q x > 0.6] with
Q = [[1, 0.5], [1, 0.2]] (an indefinite quadratic form, so the class boundary is a pair of hyperbola branches
and P(y = 1) ~ 0.45). vugrad draws with an unseeded ``np.random.randn``, so each of its runs trains and
validates on other points; here the draw is a function of ``synthetic_seed`` alone.

Why a *source* of the one DataModule (``--data.source synthetic``), not a second DataModule class:
``train.py`` builds its CLI around ``CIFAR10DataModule`` (the developers' guide: one DataModule shared by
all models), and everything after "where the arrays come from" is the same for these points as for
images: the train/validation split (``val_size``, ``split``, ``split_seed``), the in-memory loader
(per-epoch shuffle, DDP shards, exact mid-epoch resume), the checkpointed state, the evaluation order and
every callback. A second class would need the CLI's subclass mode for data, which changes the ``data:``
section of every config and checkpoint into ``class_path``/``init_args``. What differs is small and
explicit: this module makes the arrays, the points are served as drawn (no image preprocessing or
augmentation; the DataModule refuses those settings), and the classes are ``"0"`` and ``"1"``.

Sizes: vugrad draws 60,000 training and 10,000 validation points at once. Here a training pool of
``size`` points (default 70,000) is split like CIFAR-10's training set; ``split: ordered`` with
``val_size: 10000`` is vugrad's layout exactly (the first 60,000 train, the next 10,000 validate). A
separate test set (``test_size``, vugrad has none) serves ``test`` and ``predict``; it comes from its own
random stream, so it stays the same whatever the pool's size.
"""

from __future__ import annotations

import numpy as np

from datamodules.sources import RawCIFAR10

QUADRATIC_FORM = np.array([[1.0, 0.5], [1.0, 0.2]])
THRESHOLD = 0.6
CLASSES: tuple[str, ...] = ("0", "1")
FEATURES = 2


def label(x: np.ndarray) -> np.ndarray:
    """``1[x^T Q x > 0.6]`` per row, in float64 arithmetic on the given values."""
    x = x.astype(np.float64)
    return (np.einsum("bf,fk,bk->b", x, QUADRATIC_FORM, x) > THRESHOLD).astype(np.int64)


def _draw(n: int, seed: int, stream: int) -> tuple[np.ndarray, np.ndarray]:
    # float32 first, then the labels from the stored values: the rule holds exactly for the data as served.
    x = np.random.default_rng([seed, stream]).standard_normal((n, FEATURES)).astype(np.float32)
    return x, label(x)


def synthetic_raw(size: int = 70_000, test_size: int = 10_000, seed: int = 0) -> RawCIFAR10:
    """The training pool (stream 0) and the test set (stream 1) of seed ``seed``, as float32 (N, 2) arrays."""
    train_x, train_y = _draw(size, seed, 0)
    test_x, test_y = _draw(test_size, seed, 1)
    return RawCIFAR10(
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        source=f"synthetic (vugrad's rule: x ~ N(0, I2), label 1[x^T Q x > 0.6]; seed {seed})",
        test_names=[f"synthetic_test[{i}]" for i in range(test_size)],
    )
