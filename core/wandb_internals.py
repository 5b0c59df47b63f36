"""The two private wandb details this project relies on, pinned by ``tests/test_wandb_internals.py``.

1. Launch inputs. ``wandb.init`` ends by applying the inputs a W&B Launch job staged in this process
(``Run._detect_and_apply_job_inputs``). To look for them it imports ``wandb.sdk.launch.inputs.internal``,
which pulls in wandb's public API client, artifacts and Launch agent: the largest part of an offline
``wandb.init`` on a 2-core CPU (measured in the README's performance section). Inputs can only be staged
through that module (``StagedLaunchInputs``, a singleton defined there), so while it has not been imported
there is nothing to apply, and :func:`skip_unstaged_launch_inputs` skips the import; once anything imported
it, wandb's own method runs as before.

2. One wandb-core for a study's runs (:class:`SharedService`). Each process's first ``wandb.init``
starts its own ``wandb-core`` service and waits for it (a 0.2 s poll of its port file), unless
``WANDB_SERVICE`` names one already running: wandb's own mechanism for the processes of one program. A
study's runs are such processes; the study starts one service (``wandb.sdk.lib.service.service_process``,
which the public ``wandb.setup()`` would also start, but with a client connection and its asyncio thread in
the study process, which would make forking runs from it unsafe) and gives its token to the runs it launches.
Importing wandb there has one consequence for a forked run: wandb patches ``sys.stdout.write`` and
``sys.stderr.write`` when it is imported (``wandb.sdk.lib.console_capture``), to capture its runs' console
into ``output.log``, and a forked run replaces those streams; :func:`capture_new_console_streams` patches
the new ones the same way.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

LAUNCH_INPUTS_MODULE = "wandb.sdk.launch.inputs.internal"
CONSOLE_CAPTURE_MODULE = "wandb.sdk.lib.console_capture"
_PATCHED = "_cifar10_skips_unstaged_launch_inputs"


def skip_unstaged_launch_inputs() -> None:
    """Make ``wandb.init`` skip the Launch inputs when none can have been staged (idempotent)."""
    from wandb.sdk.wandb_run import Run

    original = Run._detect_and_apply_job_inputs
    if getattr(original, _PATCHED, False):
        return

    def detect_and_apply_job_inputs(self: Any) -> None:
        if LAUNCH_INPUTS_MODULE in sys.modules:
            original(self)

    setattr(detect_and_apply_job_inputs, _PATCHED, True)
    Run._detect_and_apply_job_inputs = detect_and_apply_job_inputs


SERVICE_ENV = "WANDB_SERVICE"


class SharedService:
    """One ``wandb-core`` for the runs this process launches, started when the first of them asks (:meth:`env`).

    Detached, with an idle timeout: should this process die while runs still log (a second Ctrl-C), the service
    outlives it until the last run has finished its W&B files, then exits by itself. Where it cannot start
    (wandb missing, its binary refused) or once it has died, :meth:`env` offers nothing and each run starts
    its own, as before. Starting it starts no thread in this process.
    """

    IDLE_TIMEOUT = "60s"

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._token: str | None = None
        self._tried = False

    def env(self) -> dict[str, str]:
        """``WANDB_SERVICE`` for the next run while the service runs; nothing where it does not."""
        if not self._tried:
            self._tried = True
            self._start()
        return {SERVICE_ENV: self._token} if self._process is not None and self._process.poll() is None and self._token else {}

    def _start(self) -> None:
        try:
            from wandb.sdk.lib.service import service_process
            from wandb.sdk.wandb_settings import Settings

            started = service_process.start_detached(Settings(), idle_timeout=self.IDLE_TIMEOUT)
            self._process, self._token = started._process, started.token.env_value
        except Exception:  # noqa: BLE001 - wandb missing, or its service would not start: the runs' own path
            self._process = None

    def close(self) -> None:
        """Stop it once every run has ended (each run's W&B ``finish`` waited for its files to be written)."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def capture_new_console_streams() -> None:
    """Give a new ``sys.stdout``/``sys.stderr`` the console capture wandb gave the old ones at import (no-op
    where wandb was not imported: it patches the streams of the moment when it is)."""
    module = sys.modules.get(CONSOLE_CAPTURE_MODULE)
    if module is None:
        return
    module._patch(sys.stdout, module._stdout_callbacks)
    module._patch(sys.stderr, module._stderr_callbacks)
