"""Argument types that more than one layer annotates with: jsonargparse refuses a value outside their range
in one line naming the flag (``--model.dropout: not of type Fraction: ...``) before anything is built."""

from __future__ import annotations

from jsonargparse.typing import restricted_number_type

# A probability-like hyperparameter: 0 allowed, 1 not (label smoothing, dropout, an averaging decay).
Fraction = restricted_number_type("Fraction", float, [(">=", 0.0), ("<", 1.0)])
