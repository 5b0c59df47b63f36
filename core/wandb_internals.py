"""The one private wandb detail this project relies on, pinned by ``tests/test_wandb_internals.py``.

``wandb.init`` ends by applying the inputs a W&B Launch job staged in this process
(``Run._detect_and_apply_job_inputs``). To look for them it imports ``wandb.sdk.launch.inputs.internal``,
which pulls in wandb's public API client, artifacts and Launch agent: the largest part of an offline
``wandb.init`` on a 2-core CPU (measured in the README's performance section). Inputs can only be staged
through that module (``StagedLaunchInputs``, a singleton defined there), so while it has not been imported
there is nothing to apply, and :func:`skip_unstaged_launch_inputs` skips the import; once anything imported
it, wandb's own method runs as before.
"""

from __future__ import annotations

import sys
from typing import Any

LAUNCH_INPUTS_MODULE = "wandb.sdk.launch.inputs.internal"
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
