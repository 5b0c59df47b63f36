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
    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.fail_at = fail_at

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if batch_idx == self.fail_at:
            raise RuntimeError("a failing step")
        loss = torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])
        self.log("loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1]), prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


class _Clock(L.Callback):
    """A fake clock that moves ``per_batch`` seconds at the start of every training batch."""

    def __init__(self, per_batch: float) -> None:
        self.now, self.per_batch = 100.0, per_batch

    def __call__(self) -> float:
        return self.now

    def on_train_batch_start(self, *args: object) -> None:
        self.now += self.per_batch


def _printed(bar: TQDMProgressBar, capsys: pytest.CaptureFixture, max_steps: int = -1, fail_at: int | None = None,
             clock: L.Callback | None = None, val_check_interval: int | None = None, raw: bool = False) -> str:
    """What fitting 40 training and 8 validation batches (2 epochs) prints, one redraw per line."""
    data = DataLoader(TensorDataset(torch.randn(40, 2), torch.randn(40, 1)), batch_size=1)
    val = DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=1)
    trainer = L.Trainer(max_epochs=2, max_steps=max_steps, callbacks=[bar, *([clock] if clock else [])], logger=False,
                        enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu",
                        val_check_interval=val_check_interval)
    capsys.readouterr()
    if fail_at is None:
        trainer.fit(_Tiny(), data, val)
    else:
        with pytest.raises(RuntimeError, match="a failing step"):
            trainer.fit(_Tiny(fail_at), data, val)
    printed = capsys.readouterr()
    text = printed.out + printed.err
    return text if raw else text.replace("\r", "\n")


def _frames(bar: TQDMProgressBar, capsys: pytest.CaptureFixture, **kwargs: object) -> list[str]:
    """Every redraw of the training bar, as the batch count it shows."""
    return re.findall(r"Epoch \d+: +\d+%\|[^|]*\| (\d+)/40", _printed(bar, capsys, **kwargs))


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


def test_a_failing_step_leaves_the_bar_on_the_last_batch_that_ended(capsys: pytest.CaptureFixture) -> None:
    frames = _frames(ThrottledProgressBar(min_interval_s=0.1, clock=lambda: 100.0), capsys, fail_at=12)
    assert frames[-1] == "12", frames  # batch 13 (index 12) raised: 12 batches had ended


def test_a_failed_run_ends_the_bars_line_so_its_closing_lines_start_on_their_own(capsys: pytest.CaptureFixture) -> None:
    printed = _printed(ThrottledProgressBar(min_interval_s=0.1, clock=lambda: 100.0), capsys, fail_at=12, raw=True)
    assert printed.rstrip("\r ").endswith("\n"), repr(printed[-200:])


def test_a_validation_inside_an_epoch_shows_the_training_step_it_follows(capsys: pytest.CaptureFixture) -> None:
    frames = _frames(ThrottledProgressBar(min_interval_s=0.1, clock=lambda: 100.0), capsys, val_check_interval=10)
    assert {"10", "20", "30", "40"} <= set(frames), frames  # drawn as each validation starts, not 9 or 19


def test_the_validation_bar_ends_on_its_last_batch(capsys: pytest.CaptureFixture) -> None:
    printed = _printed(ThrottledProgressBar(min_interval_s=0.1, clock=lambda: 100.0), capsys)
    assert re.findall(r"Validation DataLoader 0: +\d+%\|[^|]*\| (\d+)/8", printed)[-1] == "8"


def test_lightnings_refresh_rate_still_chooses_the_batches_and_the_interval_only_thins_them(capsys: pytest.CaptureFixture) -> None:
    """refresh_rate 4 with 0.04 s batches and a 0.1 s interval: every 4th batch is 0.16 s after the last drawn one."""
    frames = _frames(ThrottledProgressBar(refresh_rate=4, min_interval_s=0.1, clock=(clock := _Clock(0.04))), capsys, clock=clock)
    drawn = {int(n) for n in frames} - {0}
    assert drawn == set(range(4, 41, 4)), sorted(drawn)


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
