"""What a run does not use, it does not import: a fit without a logger never loads W&B, Optuna or TensorBoard
(W&B alone costs ~1 s of CPU to import on a 2-core CPU; Optuna and TensorBoard are for studies and their
loggers). Checked in a fresh interpreter, at its exit, so that an import anywhere in the run counts.

matplotlib is not in the list: torchmetrics imports ``matplotlib.pyplot`` when it is imported itself, so every
process that imports Lightning has it, whatever this project does (README, "Performance")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli_helpers import ROOT, base_args, script_env

NOT_NEEDED = ("wandb", "optuna", "tensorboard", "tensorboardX")

REPORT_AT_EXIT = """
import atexit, json, runpy, sys
atexit.register(lambda: print("MODULES " + json.dumps(sorted({m.split('.')[0] for m in sys.modules}))))
sys.argv = ["train.py", *sys.argv[1:]]
runpy.run_path("train.py", run_name="__main__")
"""


def test_a_fit_without_a_logger_never_imports_wandb_optuna_or_tensorboard(batches_dir: Path, tmp_path: Path) -> None:
    args = base_args(batches_dir, tmp_path / "runs", "--trainer.max_steps", "3")
    assert args[args.index("--trainer.logger") + 1] == "false"
    res = subprocess.run([sys.executable, "-c", REPORT_AT_EXIT, "fit", *map(str, args)], cwd=ROOT, env=script_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    [line] = [line for line in res.stdout.splitlines() if line.startswith("MODULES ")]
    loaded = set(json.loads(line.removeprefix("MODULES ")))
    assert "lightning" in loaded and "torchmetrics" in loaded, "the report is the run's own"
    assert not loaded & set(NOT_NEEDED), sorted(loaded & set(NOT_NEEDED))
