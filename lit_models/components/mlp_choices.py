"""The activation and initialisation choices every MLP offers, defined once for all backends.

The NumPy MLP, the autograd MLP and the PyTorch MLPs each implement the activations their own way,
but they must accept the same names and draw their initial weights from the same distributions, so a
study can switch backend without renaming a flag. This module holds the names, their validation and
the init distributions; it imports neither NumPy nor a network, so any backend can use it.

Init schemes for a Linear layer with ``fan_in`` inputs (weight and bias):

* ``default``: PyTorch ``nn.Linear``'s own draw, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for both;
* ``course``:  N(0, 1e-4^2) weights, zero biases (the course's NumPy recipe);
* ``he``:      N(0, 2/fan_in) weights, zero biases (He et al. 2015: keeps E[x^2] constant under ReLU);
* a number s:  N(0, s^2) weights, zero biases, whatever the fan-in (``init: 1.0e-3`` is the Sapienza 2020
  PyTorch MLPs' draw; ``init: 1.0e-4`` draws exactly what ``course`` draws, the same random stream).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

Activation = Literal["relu", "sigmoid", "tanh"]
InitName = Literal["default", "course", "he"]
# A named scheme, or the std of a fixed-std normal draw (a config states the std it was given, not a name for it);
# ``check_init`` refuses a std that is not positive, naming the flag.
Init = InitName | float
ACTIVATIONS: tuple[str, ...] = get_args(Activation)
INITS: tuple[str, ...] = get_args(InitName)
COURSE_STD = 1e-4


def check_activation(activation: str) -> str:
    if activation not in ACTIVATIONS:
        raise ValueError(f"--model.activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
    return activation


def check_init(init: str | float) -> str | float:
    """A scheme name, or a positive finite number (the std); booleans are not numbers here."""
    if isinstance(init, (int, float)) and not isinstance(init, bool):
        if not 0.0 < float(init) < math.inf:
            raise ValueError(f"--model.init as a number is the std of N(0, std^2) weights and must be positive and finite; got {init!r}")
        return init
    if init not in INITS:
        raise ValueError(f"--model.init must be one of {', '.join(INITS)}; got {init!r} (or a positive number: the std of N(0, std^2) weights)")
    return init


@dataclass(frozen=True)
class Distribution:
    """``uniform`` on [-scale, scale], ``normal`` with std ``scale``, or ``zeros``."""

    kind: Literal["uniform", "normal", "zeros"]
    scale: float = 0.0


def linear_init(init: str | float, fan_in: int) -> tuple[Distribution, Distribution]:
    """(weight, bias) distributions of scheme ``init`` for a Linear layer with ``fan_in`` inputs."""
    check_init(init)
    if init == "default":
        bound = 1.0 / math.sqrt(fan_in)
        return Distribution("uniform", bound), Distribution("uniform", bound)
    if isinstance(init, str):
        std = COURSE_STD if init == "course" else math.sqrt(2.0 / fan_in)
    else:
        std = float(init)
    return Distribution("normal", std), Distribution("zeros")


def check_hidden_sizes(hidden_sizes: list[int]) -> list[int]:
    if not hidden_sizes or any(h <= 0 for h in hidden_sizes):
        raise ValueError(f"--model.hidden_sizes must be a non-empty list of positive ints, got {hidden_sizes}")
    return hidden_sizes
