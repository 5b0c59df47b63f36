"""Lightning's tqdm progress bar, redrawn at most every ``min_interval_s`` seconds instead of every batch.

Lightning's ``TQDMProgressBar`` redraws the bar and recomputes its metrics after every batch
(``refresh_rate=1``): on the course MLP (1,500 steps of ~4 ms) that is 0.6 s of a 6 s training loop, and
with W&B, which copies every console write into the run's ``output.log``, 1.7 s (README, "Performance").
A person reads a bar a few times a second at most. This one passes a batch's redraw on to Lightning only
when ``min_interval_s`` has passed since the last one; the last batch of every loop (and the last batch
seen when a loop ends early, at ``max_steps``) is always drawn, so the bar ends on the
true count and metrics, and so is the last batch that ended before an exception (an interruption, a
divergence). ``refresh_rate`` keeps Lightning's meaning. Only the public hooks are overridden; each skipped
batch keeps just its index.

``train.py`` puts it in place of the bar Lightning would add on its own; a progress bar named in
``--trainer.callbacks`` is used as given, and ``--trainer.enable_progress_bar false`` shows none.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar


class ThrottledProgressBar(TQDMProgressBar):
    def __init__(self, refresh_rate: int = 1, process_position: int = 0, leave: bool = False,
                 min_interval_s: float = 0.1, clock: Callable[[], float] = time.monotonic):
        """
        Args:
            refresh_rate: as Lightning's: a redraw at most every this many batches (then also at most every
                ``min_interval_s``).
            process_position: as Lightning's (several bars in one terminal).
            leave: as Lightning's: keep each epoch's finished bar on screen.
            min_interval_s: the least time between two redraws; 0 redraws as Lightning's bar does.
        """
        if min_interval_s < 0:
            raise ValueError(f"min_interval_s={min_interval_s}: needs to be >= 0 (seconds between redraws)")
        super().__init__(refresh_rate=refresh_rate, process_position=process_position, leave=leave)
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._drawn_at = -float("inf")
        self._skipped: dict[str, tuple[Trainer, LightningModule, int, int]] = {}  # loop -> its last undrawn batch

    # ------------------------------------------------------------------ the throttle
    def _due(self, n: int, total: int | float | None) -> bool:
        if n != total and n % self.refresh_rate:
            return False  # Lightning's own rule would not draw this batch: it does not restart the interval either
        now = self._clock()
        if n == total or now - self._drawn_at >= self.min_interval_s:
            self._drawn_at = now
            return True
        return False

    def _batch_end(self, loop: str, draw: Callable[..., None], trainer: Trainer, pl_module: LightningModule,
                   batch_idx: int, dataloader_idx: int, total: int | float | None) -> None:
        if not self.is_enabled:
            return
        if self._due(batch_idx + 1, total):
            self._skipped.pop(loop, None)
            draw(trainer, pl_module, batch_idx, dataloader_idx)
        else:
            self._skipped[loop] = (trainer, pl_module, batch_idx, dataloader_idx)

    def _catch_up(self, loop: str, draw: Callable[..., None]) -> None:
        """Draw the loop's last batch if it was skipped: the bar closes on the true count."""
        if (skipped := self._skipped.pop(loop, None)) is not None:
            draw(*skipped)

    # Lightning's own redraw per loop (its batch-end hooks, given just what they read).
    def _draw_train(self, trainer: Trainer, pl_module: LightningModule, batch_idx: int, dataloader_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, None, None, batch_idx)

    def _draw_validation(self, trainer: Trainer, pl_module: LightningModule, batch_idx: int, dataloader_idx: int) -> None:
        super().on_validation_batch_end(trainer, pl_module, None, None, batch_idx, dataloader_idx)

    def _draw_test(self, trainer: Trainer, pl_module: LightningModule, batch_idx: int, dataloader_idx: int) -> None:
        super().on_test_batch_end(trainer, pl_module, None, None, batch_idx, dataloader_idx)

    def _draw_predict(self, trainer: Trainer, pl_module: LightningModule, batch_idx: int, dataloader_idx: int) -> None:
        super().on_predict_batch_end(trainer, pl_module, None, None, batch_idx, dataloader_idx)

    # ------------------------------------------------------------------ Lightning's hooks
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._batch_end("train", self._draw_train, trainer, pl_module, batch_idx, 0, self.train_progress_bar.total)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._catch_up("train", self._draw_train)
        super().on_train_epoch_end(trainer, pl_module)

    def on_train_end(self, *args: Any) -> None:
        self._catch_up("train", self._draw_train)
        super().on_train_end(*args)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._catch_up("train", self._draw_train)  # a validation inside an epoch: the training bar shows its step
        super().on_validation_start(trainer, pl_module)

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        self._batch_end("validation", self._draw_validation, trainer, pl_module, batch_idx, dataloader_idx, self.val_progress_bar.total)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._catch_up("validation", self._draw_validation)
        super().on_validation_end(trainer, pl_module)

    def on_test_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        self._batch_end("test", self._draw_test, trainer, pl_module, batch_idx, dataloader_idx, self.test_progress_bar.total)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._catch_up("test", self._draw_test)
        super().on_test_end(trainer, pl_module)

    def on_predict_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                             batch_idx: int, dataloader_idx: int = 0) -> None:
        self._batch_end("predict", self._draw_predict, trainer, pl_module, batch_idx, dataloader_idx, self.predict_progress_bar.total)

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._catch_up("predict", self._draw_predict)
        super().on_predict_end(trainer, pl_module)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """An interrupted, diverged or failed run: each open bar shows the last batch that ended."""
        for loop, draw in (("train", self._draw_train), ("validation", self._draw_validation),
                           ("test", self._draw_test), ("predict", self._draw_predict)):
            try:
                self._catch_up(loop, draw)
            except Exception:  # noqa: BLE001, S110 - a redraw must never hide the run's own exception
                pass
        for name in ("val_progress_bar", "test_progress_bar", "predict_progress_bar", "train_progress_bar"):
            try:
                bar = getattr(self, name)  # TypeError where that loop never ran
                if not bar.disable:
                    bar.close()  # ends the bar's line: the run's closing lines start on their own
            except Exception:  # noqa: BLE001, S110 - as above
                pass
        super().on_exception(trainer, pl_module, exception)


def throttle_lightnings_bar(trainer: Trainer) -> None:
    """Put a :class:`ThrottledProgressBar` where the Trainer added its own default ``TQDMProgressBar``.

    For a Trainer built without a progress bar among its callbacks (the caller knows; a bar the user chose is
    kept). Lightning's Colab and ``TQDM_MINITERS`` rules for the refresh rate carry over.
    """
    for i, callback in enumerate(trainer.callbacks):
        if type(callback) is TQDMProgressBar:
            trainer.callbacks[i] = ThrottledProgressBar(refresh_rate=callback.refresh_rate, process_position=callback.process_position)
            return
