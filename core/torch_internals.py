"""The private torch functions this project relies on, in one place, each pinned by a test in
``tests/test_torch_internals.py``: a torch upgrade that changes one fails that test by name instead of
silently changing a run.

* ``torch._foreach_copy_`` copies a list of tensors into another in one fused kernel per device and dtype
  (``multi_tensor_apply`` on CUDA). Weight averaging copies every floating-point entry of the state dict
  (33 tensors for the fast CNN, 42 for the VGG) at each lookahead step; a loop of ``Tensor.copy_`` would
  launch one kernel per tensor, and torch has no public fused copy. On the CPU the two take the same time.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def copy_all_(destinations: Sequence[Tensor], sources: Sequence[Tensor]) -> None:
    """``d.copy_(s)`` for every pair, in place (same storage, so views of ``d`` such as a model's state-dict entries see it)."""
    torch._foreach_copy_(list(destinations), list(sources))
