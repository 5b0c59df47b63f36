"""Draws the shared init schemes (:mod:`lit_models.components.mlp_choices`) with a NumPy generator.

The NumPy MLP and the autograd MLP both call :func:`sample_linear`, so with the same seed they start
from the same weights, and the course scheme draws exactly what the course's NumPy code drew.
"""

from __future__ import annotations

import numpy as np

from lit_models.components.mlp_choices import Distribution, linear_init


def sample(dist: Distribution, rng: np.random.Generator, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    if dist.kind == "zeros":
        return np.zeros(shape, dtype)
    if dist.kind == "uniform":
        return rng.uniform(-dist.scale, dist.scale, shape).astype(dtype)
    return rng.normal(0.0, dist.scale, shape).astype(dtype)


def sample_linear(rng: np.random.Generator, in_features: int, out_features: int, init: str | float, dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """(weight of shape (out, in), bias of shape (out,)), weight drawn first."""
    weight_dist, bias_dist = linear_init(init, in_features)
    return sample(weight_dist, rng, (out_features, in_features), dtype), sample(bias_dist, rng, (out_features,), dtype)
