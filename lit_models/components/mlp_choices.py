"""The activation and initialisation choices every MLP offers, defined once for all backends.

The NumPy MLP, the autograd MLP and the PyTorch MLPs each implement the activations their own way,
but they must accept the same names and draw their initial weights from the same distributions, so a
study can switch backend without renaming a flag. This module holds the names, their validation and
the init distributions; it imports neither NumPy nor a network, so any backend can use it.

Init schemes for a Linear layer with ``fan_in`` inputs (weight and bias):

* ``default``: PyTorch ``nn.Linear``'s own draw, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for both;
* ``course``:  N(0, 1e-4^2) weights, zero biases (the course's NumPy recipe);
* ``he``:      N(0, 2/fan_in) weights, zero biases (He et al. 2015: keeps E[x^2] constant under ReLU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

Activation = Literal["relu", "sigmoid", "tanh"]
Init = Literal["default", "course", "he"]
ACTIVATIONS: tuple[str, ...] = get_args(Activation)
INITS: tuple[str, ...] = get_args(Init)
COURSE_STD = 1e-4


def check_activation(activation: str) -> str:
    if activation not in ACTIVATIONS:
        raise ValueError(f"--model.activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
    return activation


def check_init(init: str) -> str:
    if init not in INITS:
        raise ValueError(f"--model.init must be one of {', '.join(INITS)}; got {init!r}")
    return init


@dataclass(frozen=True)
class Distribution:
    """``uniform`` on [-scale, scale], ``normal`` with std ``scale``, or ``zeros``."""

    kind: Literal["uniform", "normal", "zeros"]
    scale: float = 0.0


def linear_init(init: str, fan_in: int) -> tuple[Distribution, Distribution]:
    """(weight, bias) distributions of scheme ``init`` for a Linear layer with ``fan_in`` inputs."""
    check_init(init)
    if init == "default":
        bound = 1.0 / math.sqrt(fan_in)
        return Distribution("uniform", bound), Distribution("uniform", bound)
    std = COURSE_STD if init == "course" else math.sqrt(2.0 / fan_in)
    return Distribution("normal", std), Distribution("zeros")


def check_hidden_sizes(hidden_sizes: list[int]) -> list[int]:
    if not hidden_sizes or any(h <= 0 for h in hidden_sizes):
        raise ValueError(f"--model.hidden_sizes must be a non-empty list of positive ints, got {hidden_sizes}")
    return hidden_sizes
