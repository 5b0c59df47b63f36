"""One test per private torch function the project relies on (see core/torch_internals.py): a torch upgrade
that changes one fails here, by name, instead of silently changing a run."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from core.torch_internals import copy_all_, cpu_has_bfloat16_hardware


def test_foreach_copy_writes_every_tensor_in_place_exactly_across_dtypes_and_shapes() -> None:
    """WeightAverage relies on it to swap the averaged and raw weights through the model's own state-dict tensors."""
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).double()
    model[0].float()  # a state dict of float32 and float64 entries, as under a mixed model
    live = [v for v in model.state_dict().values() if v.is_floating_point()]
    sources = [torch.randn(t.shape, dtype=t.dtype, generator=torch.Generator().manual_seed(i)) for i, t in enumerate(live)]
    before = [t.data_ptr() for t in live]

    copy_all_(live, sources)

    assert [t.data_ptr() for t in live] == before, "in place: the model's own storage"
    assert all(torch.equal(t, s) and t.dtype == s.dtype for t, s in zip(live, sources))
    assert torch.equal(model[0].weight.detach(), sources[0]), "the module sees the copy"
    sources[0].add_(1.0)
    assert not torch.equal(model[0].weight.detach(), sources[0]), "a copy, not an alias of the source"



def _cpu_flags() -> set[str]:
    import platform

    import pytest

    cpuinfo = Path("/proc/cpuinfo")
    line = next((l for l in cpuinfo.read_text().splitlines() if l.startswith("flags")), None) if cpuinfo.is_file() else None
    if line is None or platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("no x86 /proc/cpuinfo flags to compare with")
    return set(line.split(":", 1)[1].split())


def test_avx512_bf16_query_agrees_with_the_flag_linux_reports() -> None:
    """cpu_has_bfloat16_hardware, behind the CLI's bf16-mixed-on-a-slow-CPU note and its CPU overlay advice, rests on it."""
    assert torch.cpu._is_avx512_bf16_supported() == ("avx512_bf16" in _cpu_flags())


def test_amx_tile_query_agrees_with_the_flag_linux_reports() -> None:
    assert torch.cpu._is_amx_tile_supported() == ("amx_tile" in _cpu_flags())


def test_bfloat16_hardware_is_either_query_and_unknown_off_x86(monkeypatch) -> None:
    import platform

    flags = _cpu_flags()
    assert cpu_has_bfloat16_hardware() == bool({"avx512_bf16", "amx_tile"} & flags)
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert cpu_has_bfloat16_hardware() is None
