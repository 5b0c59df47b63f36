"""The private torch functions this project relies on, in one place, each pinned by a test in
``tests/test_torch_internals.py``: a torch upgrade that changes one fails that test by name instead of
silently changing a run.

* ``torch._foreach_copy_`` copies a list of tensors into another in one fused kernel per device and dtype
  (``multi_tensor_apply`` on CUDA). Weight averaging copies every floating-point entry of the state dict
  (33 tensors for the fast CNN, 42 for the VGG) at each lookahead step; a loop of ``Tensor.copy_`` would
  launch one kernel per tensor, and torch has no public fused copy. On the CPU the two take the same time.
* ``torch.cpu._is_avx512_bf16_supported`` and ``torch.cpu._is_amx_tile_supported`` say whether an x86 CPU computes
  bfloat16 in hardware. ``bf16-mixed`` on the CPU (``configs/cpu_bf16.yaml``) made the fast CNN's training step
  2.6-3.0x faster than float32 on this project's AMX CPU (``bench/cpu_precision.py``); without such hardware bfloat16
  is emulated and expected to be slower than float32 (not measured: no such CPU here), so the CLI says so before
  such a run starts. torch has no public query for it (``torch.backends.cpu.get_cpu_capability()`` says "AVX512"
  for both kinds).
"""

from __future__ import annotations

import platform
from collections.abc import Sequence

import torch
from torch import Tensor


def copy_all_(destinations: Sequence[Tensor], sources: Sequence[Tensor]) -> None:
    """``d.copy_(s)`` for every pair, in place (same storage, so views of ``d`` such as a model's state-dict entries see it)."""
    torch._foreach_copy_(list(destinations), list(sources))


def cpu_has_bfloat16_hardware() -> bool | None:
    """On x86, AVX512-BF16 or AMX: bfloat16 convolutions and matmuls run natively rather than emulated. None (not
    known) on other CPUs, whose bfloat16 support (e.g. Arm's BF16 extension) these two functions do not see."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return None
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
