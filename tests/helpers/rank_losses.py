"""A callback that writes each DDP rank's own mean training loss per epoch to ``rank_losses.csv``.

The reference for EpochLog under DDP: its ``train_loss`` must be the mean over all ranks' steps, which
differs from rank 0's own mean because each rank trains on a different shard.
"""

import torch
from lightning.pytorch import Callback

from callbacks.outputs import run_dir


class RankLosses(Callback):
    def on_train_epoch_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self._losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self._losses.append(float(loss))

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # noqa: ANN001
        mine = torch.tensor([sum(self._losses), len(self._losses)], dtype=torch.float64, device=pl_module.device)
        gathered = pl_module.all_gather(mine)  # (world, 2)
        if trainer.is_global_zero:
            with open(run_dir(trainer) / "rank_losses.csv", "a") as fh:
                fh.write(",".join(f"{s / n!r}" for s, n in gathered.tolist()) + "\n")
