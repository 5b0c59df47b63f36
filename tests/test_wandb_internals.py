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


CAPTURED = """
import io, sys
sys.path.insert(0, {root!r})
import wandb.sdk.lib.console_capture as capture  # patches the streams of this moment, as in a study process
sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)  # a forked run's new stream
if {repatch}:
    from core.wandb_internals import capture_new_console_streams
    capture_new_console_streams()
seen = []
capture.capture_stdout(lambda s, n: seen.append(s))
print("a run's line")
sys.stderr.write("CAPTURED " + repr("".join(seen)) + "\\n")
"""


def test_a_forked_runs_new_stdout_is_captured_as_the_stream_wandb_patched_at_import() -> None:
    """Else a run forked from a study that imported wandb (for its shared service) has an empty ``output.log``."""
    def captured(repatch: bool) -> str:
        res = subprocess.run([sys.executable, "-c", CAPTURED.format(root=str(ROOT), repatch=repatch)], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
        return res.stderr.strip().splitlines()[-1]

    assert captured(False) == "CAPTURED ''", "wandb patches the streams it finds at import, not later ones"
    assert captured(True) == "CAPTURED \"a run's line\\n\""


def test_runs_given_the_shared_service_connect_to_it_and_close_stops_it(tmp_path: Path) -> None:
    from core.wandb_internals import SERVICE_ENV, SharedService

    service = SharedService()
    assert service._process is None, "nothing starts before the first run asks"
    try:
        offered = service.env()
        assert set(offered) == {SERVICE_ENV}, offered
        env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "PATH": "/usr/bin:/bin", **offered}
        code = f"import wandb\nrun = wandb.init(dir={str(tmp_path)!r}, project='t')\nrun.log({{'a': 1}})\nrun.finish()\n"
        res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        (debug,) = tmp_path.glob("wandb/offline-run-*/logs/debug.log")
        assert "Connected to an existing wandb-core service via WANDB_SERVICE" in debug.read_text(), "wandb's own note that it used the token"
    finally:
        service.close()
    assert service.env() == {}, "a stopped service is offered to no further run: they start their own"
    assert SERVICE_ENV == "WANDB_SERVICE"


def test_the_runs_logger_setting_says_whether_they_log_to_wandb() -> None:
    from jsonargparse import Namespace

    from cli.loggers import logs_to_wandb

    assert logs_to_wandb(None) and logs_to_wandb(True), "W&B is the default logger"
    assert logs_to_wandb(Namespace(class_path="lightning.pytorch.loggers.WandbLogger"))
    assert logs_to_wandb([Namespace(class_path="lightning.pytorch.loggers.CSVLogger"), Namespace(class_path="WandbLogger")])
    assert not logs_to_wandb(False) and not logs_to_wandb(Namespace(class_path="lightning.pytorch.loggers.CSVLogger"))
