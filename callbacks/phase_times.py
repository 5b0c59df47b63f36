"""Where one ``train.py`` process spends its wall time, phase by phase, for ``bench/end_to_end.py``.

Off unless ``CIFAR_PHASES_FILE`` names a file (``train.py`` then appends this callback on rank 0; ``{pid}`` in
the name becomes the process id, so that every run of a study writes its own). The file gets one JSON
object when the process exits: instants on ``time.monotonic()`` (on Linux one clock for all
processes, so the launching process can subtract its own launch instant), and the summed time of every
validation and test loop:

* ``start``: ``train.py``'s imports are done (its ``main`` begins);
* ``built``: the command line parsed, the run directory made, the objects built, the loggers started
  (an offline ``wandb.init`` included);
* ``data``: ``prepare_data`` and the DataModule's ``setup`` done (the images in memory, their statistics);
* ``train_start``/``train_end``: the training loop (the validations inside it included; the sanity check,
  before it, not);
* ``test_start``/``test_end``: the test loop of ``train.py test``;
* ``fit_end``: after ``on_fit_end``'s figures and files; ``stopped``: instead of ``train_end`` and ``fit_end``,
  where the fit ended with an exception (diverged, interrupted);
* ``exit``: the command has returned (loggers finished, ``status.json`` written); only interpreter
  shutdown remains.

The numbers come from the run itself, not from console text; nothing in them changes what a run does.
"""

from __future__ import annotations

import atexit
import json
import os
import time
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

PHASES_ENV = "CIFAR_PHASES_FILE"


class PhaseTimes(Callback):
    def __init__(self, path: str | os.PathLike, marks: dict[str, float] | None = None, command: str = ""):
        self.command = command  # fit, test, ...
        self.path = Path(str(path).replace("{pid}", str(os.getpid())))
        self.marks: dict[str, float] = dict(marks or {})
        self.loops: dict[str, float] = {"validation_s": 0.0, "sanity_check_s": 0.0, "test_s": 0.0}
        self.validations = 0
        self._loop_started: float | None = None
        atexit.register(self.write)

    def mark(self, name: str) -> None:
        """The first time ``name`` happens (a resumed or repeated hook keeps the first instant)."""
        self.marks.setdefault(name, time.monotonic())

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.mark("data")  # Lightning calls the DataModule's setup (after prepare_data), then the callbacks'

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.mark("train_start")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.mark("train_end")

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.mark("fit_end")

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self.mark("stopped")  # a diverged or interrupted fit: no train_end

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._loop_started = time.monotonic()

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._add("sanity_check_s" if trainer.sanity_checking else "validation_s")
        if not trainer.sanity_checking:
            self.validations += 1

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.mark("test_start")
        self._loop_started = time.monotonic()

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._add("test_s")
        self.mark("test_end")

    def _add(self, key: str) -> None:
        if self._loop_started is not None:
            self.loops[key] += time.monotonic() - self._loop_started
            self._loop_started = None

    def write(self, **extra: Any) -> None:
        self.mark("exit")
        record = {"clock": "monotonic", "command": self.command, "marks": self.marks, **{k: round(v, 4) for k, v in self.loops.items()}, "validations": self.validations, **extra}
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(record) + "\n")
        os.replace(tmp, self.path)
