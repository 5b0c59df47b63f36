"""The progress bar redraws at most every ``min_interval_s`` and always ends on the true count; train.py uses it
in place of Lightning's own unless the user chose a bar or none."""

from __future__ import annotations

import re
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from torch.utils.data import DataLoader, TensorDataset

from callbacks.progress_bar import ThrottledProgressBar
from tests.cli_helpers import base_args, run_cli


class _Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])
        self.log("loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1]), prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _frames(bar: TQDMProgressBar, capsys: pytest.CaptureFixture, max_steps: int = -1) -> list[str]:
    """Every redraw of the training bar while fitting 40 training and 8 validation batches, as printed."""
    data = DataLoader(TensorDataset(torch.randn(40, 2), torch.randn(40, 1)), batch_size=1)
    val = DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=1)
    trainer = L.Trainer(max_epochs=2, max_steps=max_steps, callbacks=[bar], logger=False, enable_checkpointing=False,
                        enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu")
    capsys.readouterr()
    trainer.fit(_Tiny(), data, val)
    printed = capsys.readouterr()
    return re.findall(r"Epoch \d+: +\d+%\|[^|]*\| (\d+)/40", (printed.out + printed.err).replace("\r", "\n"))


def test_lightnings_bar_redraws_every_batch_and_ours_only_when_its_interval_has_passed(capsys: pytest.CaptureFixture) -> None:
    lightnings = _frames(TQDMProgressBar(), capsys)
    assert {str(n) for n in range(1, 41)} <= set(lightnings)  # the cost this bar removes
    frozen = _frames(ThrottledProgressBar(min_interval_s=0.1, clock=lambda: 100.0), capsys)
    # A clock that never moves: the first batch (nothing drawn yet) and each epoch's last; never the ones between.
    assert set(frozen) <= {"0", "1", "40"} and "40" in frozen and len(frozen) < len(lightnings) / 4
    ticks = iter(range(10**6))
    every = _frames(ThrottledProgressBar(min_interval_s=0.1, clock=lambda: float(next(ticks))), capsys)
    assert {str(n) for n in range(1, 41)} <= set(every)  # a second between batches: each one drawn


def test_a_fit_stopped_mid_epoch_ends_its_bar_on_the_last_step_not_the_last_one_drawn(capsys: pytest.CaptureFixture) -> None:
    frames = _frames(ThrottledProgressBar(min_interval_s=0.1, clock=lambda: 100.0), capsys, max_steps=53)
    assert frames[-1] == "13", frames  # 53 steps: the second epoch stopped after 13 batches


def test_a_negative_interval_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="min_interval_s=-1"):
        ThrottledProgressBar(min_interval_s=-1)


def _bars(cli: object) -> list[object]:
    return [c for c in cli.trainer.callbacks if isinstance(c, TQDMProgressBar)]


def test_train_py_throttles_lightnings_default_bar_and_keeps_a_bar_the_user_chose(batches_dir: Path, tmp_path: Path) -> None:
    shown = base_args(batches_dir, tmp_path / "runs", "--trainer.max_steps", "2")
    i = shown.index("--trainer.enable_progress_bar")
    del shown[i:i + 2]
    assert [type(b) for b in _bars(run_cli("fit", *shown))] == [ThrottledProgressBar]
    chosen = run_cli("fit", *shown, "--trainer.callbacks+=TQDMProgressBar", "--trainer.callbacks.refresh_rate", "5")
    assert [(type(b), b.refresh_rate) for b in _bars(chosen)] == [(TQDMProgressBar, 5)]
    assert _bars(run_cli("fit", *base_args(batches_dir, tmp_path / "runs", "--trainer.max_steps", "2"))) == []
