"""A callback that fails a DDP run whose ranks end with different weights or different weight averages.

Parameters only: BatchNorm running statistics legitimately differ between ranks (each normalises its
own shard; DDP re-broadcasts rank 0's buffers before every training forward and rank 0 saves checkpoints).
"""

import torch
from lightning.pytorch import Callback

from callbacks.weight_average import WeightAverage


class ReplicasAgree(Callback):
    def on_train_end(self, trainer, pl_module) -> None:  # noqa: ANN001
        params = {name for name, _ in pl_module.named_parameters()}
        tensors = [p.detach() for p in pl_module.parameters()]
        for cb in trainer.callbacks:
            if isinstance(cb, WeightAverage):
                tensors += [t for k, t in zip(cb._keys, cb._other) if k in params]
        digest = torch.stack([t.double().sum() for t in tensors])
        gathered = pl_module.all_gather(digest)
        if not all(torch.equal(gathered[0], g) for g in gathered):
            raise RuntimeError(f"DDP replicas disagree: {gathered.tolist()}")
        if trainer.is_global_zero:
            print(f"replicas agree on {len(digest)} tensors", flush=True)
