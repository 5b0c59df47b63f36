"""One test per private torch function the project relies on (see core/torch_internals.py): a torch upgrade
that changes one fails here, by name, instead of silently changing a run."""

from __future__ import annotations

import torch
from torch import nn

from core.torch_internals import copy_all_


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
