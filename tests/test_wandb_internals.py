"""The wandb detail the project relies on (core/wandb_internals.py), pinned: a wandb upgrade that changes it
fails here, by name, instead of silently costing every W&B run its start-up time again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from core.wandb_internals import LAUNCH_INPUTS_MODULE

ROOT = Path(__file__).resolve().parents[1]


def test_launch_inputs_are_staged_only_in_the_module_init_imports() -> None:
    import importlib

    from wandb.sdk.wandb_run import Run

    assert callable(Run._detect_and_apply_job_inputs), "wandb.init no longer applies Launch inputs this way"
    staged = importlib.import_module(LAUNCH_INPUTS_MODULE).StagedLaunchInputs
    assert staged()._staged_inputs == [], "the singleton that holds staged inputs lives in that module"


def _offline_init(tmp_path: Path, before: str) -> str:
    code = (
        "import sys\n"
        f"{before}\n"
        "from core.lightning_internals import QuietWandbLogger\n"
        f"logger = QuietWandbLogger(save_dir={str(tmp_path)!r}, offline=True, project='t')\n"
        "run = logger.experiment\n"
        f"print('LAUNCH' if {LAUNCH_INPUTS_MODULE!r} in sys.modules else 'NO LAUNCH', 'RUN' if run is not None else 'NO RUN')\n"
        "run.finish()\n"
    )
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout.strip().splitlines()[-1]


def test_offline_init_skips_the_launch_import_and_still_applies_staged_inputs(tmp_path: Path) -> None:
    assert _offline_init(tmp_path / "a", "") == "NO LAUNCH RUN"
    # A process that staged Launch inputs (it imported the module to do so) still gets wandb's own method.
    assert _offline_init(tmp_path / "b", f"import {LAUNCH_INPUTS_MODULE}") == "LAUNCH RUN"
