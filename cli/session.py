"""One run's life around the Trainer: its directory, its config file, and what is left and printed at the end.

``begin`` (before the objects are built) writes ``config.yaml`` into a new run directory and tells DDP
workers where it is. ``close`` (whatever happened) flushes the loggers, writes ``status.json``, removes a
directory that holds nothing, and prints where the outputs are, plus the exact command that resumes an
interrupted run.
"""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightning.pytorch.trainer.states import TrainerStatus

from callbacks.console import command_for_user
from callbacks.divergence import DivergenceError
from callbacks.interrupts import STOP, RunInterrupted, StartupInterrupted, signal_name
from core import run_layout
from core.run_layout import CONFIG_FILE, STATUS_FILE, read_status, write_status_record
from cli.loggers import restore_csv_history, set_aside_csv_history
from cli.run_dirs import RunPlan, discard_if_empty, lock_run_dir, process_rank, restore_status, share_with_workers, start_segment, unlock_run_dir, write_status
from cli.resume_changes import ResumeChanges
from lit_models.base import CheckpointMismatchError


@dataclass
class RunSession:
    requested_ckpt: str | None = None
    checkpoint: dict[str, Any] | None = None  # the --ckpt_path file, already read safely
    plan: RunPlan | None = None
    saved_config: str = ""
    subcommand: str = ""
    trainer: Any = None
    started: float = field(default_factory=time.monotonic)
    owns_run_dir: bool = False  # False for a fit refused because another process trains there: leave its files alone
    status_before: dict | None = None  # a resume in place: the run's status.json record before this segment
    resume_changes: ResumeChanges | None = None  # a resume: the flags that differ from the checkpoint's run, all honoured

    def begin(self, plan: RunPlan, saved_config: str, subcommand: str) -> None:
        self.plan, self.saved_config, self.subcommand = plan, saved_config, subcommand
        if process_rank() != 0:
            return
        if subcommand == "fit":
            lock_run_dir(plan.run_dir)
            self.owns_run_dir = True
            self.status_before = read_status(plan.run_dir) if plan.resumed_in_place else None
            start_segment(plan.run_dir, int(self.checkpoint.get("global_step", 0)) if plan.resumed_in_place and self.checkpoint else 0)
        config = plan.run_dir / CONFIG_FILE
        if not config.is_file():
            config.write_text(saved_config)
        elif config.read_text() != saved_config:
            k = 1 + sum(1 for _ in plan.run_dir.glob("config.resume-*.yaml"))
            changed = self.resume_changes.describe() if self.resume_changes else ""
            step = int(self.checkpoint.get("global_step", 0)) if self.checkpoint else 0
            header = f"# Resumed at step {step} on {time.strftime('%Y-%m-%d %H:%M:%S')}; changed flags, all honoured: {changed or 'none'}\n"
            (plan.run_dir / f"config.resume-{k}.yaml").write_text(header + saved_config)
            print(f"Note: resumed with changed flags, all honoured: {changed}; this segment's config is {plan.run_dir / f'config.resume-{k}.yaml'}." if changed
                  else f"Note: the resumed run's config differs from {config}; it is saved as config.resume-{k}.yaml.")
        share_with_workers(plan)
        if plan.resumed_in_place and plan.ckpt_path and self.checkpoint is not None:
            set_aside_csv_history(plan.run_dir, int(self.checkpoint.get("global_step", 0)))
        if plan.note:
            print(plan.note, flush=True)

    def discard(self) -> None:
        """The run was refused after its directory was made: remove the directory, forget the run."""
        if self.plan is not None and process_rank() == 0:
            unlock_run_dir(self.plan.run_dir)
            discard_if_empty(self.plan)
        self.plan = None

    def close(self, exc: BaseException | None) -> None:
        plan = self.plan
        if isinstance(exc, StartupInterrupted):
            self._stopped_during_startup(exc)
            return
        if plan is None or process_rank() != 0 or (self.subcommand == "fit" and not self.owns_run_dir):
            return
        unlock_run_dir(plan.run_dir)
        status = self._status(exc)
        self._finish_loggers(status)
        restore_csv_history(plan.run_dir)
        if discard_if_empty(plan):
            if exc is not None and self.trainer is not None and self.trainer.state.stage is not None:
                print(f"The run stopped before producing anything; its directory {plan.run_dir} was removed.", file=sys.stderr)
            return
        step = int(self.trainer.global_step) if self.trainer is not None else 0
        if self.subcommand == "fit" and self.status_before and isinstance(exc, CheckpointMismatchError):
            restore_status(plan.run_dir, self.status_before, str(exc).strip().splitlines()[0])
        elif self.subcommand == "fit":
            error = None if exc is None or status == "interrupted" else f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            write_status(plan.run_dir, status, step, time.monotonic() - self.started, error)
        print(f"Outputs: {plan.run_dir}", flush=True)
        offline = sorted((plan.run_dir / "wandb").glob("offline-run-*"))
        if offline:  # one folder per segment of the run (a resume adds one), all of the same W&B run: sync them all
            print(f"W&B (offline): upload with `wandb sync {' '.join(shlex.quote(str(p)) for p in offline)}`")
        if status == "interrupted" and self.subcommand == "fit":
            last = run_layout.checkpoint(plan.run_dir, "last")
            if last.is_file():
                print(f"Interrupted at step {step}. Resume with:\n  {command_for_user('fit', '--config', plan.run_dir / CONFIG_FILE, '--ckpt_path', last)}", file=sys.stderr, flush=True)
            else:
                print("Interrupted before the first checkpoint: nothing to resume; run the same command again.", file=sys.stderr)
        if (note := self._shutdown_note(status)) is not None:
            print(note, file=sys.stderr, flush=True)

    def _stopped_during_startup(self, exc: StartupInterrupted) -> None:
        """A signal before training started (or before an evaluation finished): nothing was produced, so nothing of
        this command stays behind."""
        plan = self.plan
        if process_rank() != 0:
            return
        when = "during start-up, before the run" if self.subcommand in ("fit", "") else f"before the {self.subcommand} run"
        message = f"Stopped by {signal_name(exc.signum)} {when} produced anything"
        if plan is None or (self.subcommand == "fit" and not self.owns_run_dir):
            print(f"{message}.", file=sys.stderr, flush=True)
            return
        unlock_run_dir(plan.run_dir)
        self._finish_loggers("interrupted")
        restore_csv_history(plan.run_dir)
        if discard_if_empty(plan):
            message += f"; its directory {plan.run_dir} was removed"
        elif self.status_before is not None:  # a resume in place: its status.json goes back to what it was
            if self.status_before:
                write_status_record(plan.run_dir, self.status_before)
            else:
                (plan.run_dir / STATUS_FILE).unlink(missing_ok=True)
            message += f"; {plan.run_dir} is as it was"
        print(f"{message}.", file=sys.stderr, flush=True)

    def _shutdown_note(self, status: str) -> str | None:
        """One line for a signal that came while the run closed: which figures it cut short, and how to get them."""
        if STOP.closing_signum is None:
            return None
        name = signal_name(STOP.closing_signum)
        if not STOP.skipped:
            return f"{name} during shutdown: ignored, the run's files were all written."
        figures, them = ", ".join(STOP.skipped), "them" if len(STOP.skipped) > 1 else "it"
        last = run_layout.checkpoint(self.plan.run_dir, "last")
        if self.subcommand != "fit" or not last.is_file():
            how = "the data is in the run's CSV files"
        elif status == "interrupted":
            how = f"the resume command above redraws {them}"
        else:
            how = f"`python train.py fit --config {self.plan.run_dir / CONFIG_FILE} --ckpt_path {last}` redraws {them} without training further"
        return f"Stopped during shutdown by {name}: {figures} not drawn; {how}."

    def _status(self, exc: BaseException | None) -> str:
        if exc is None:
            return "completed"
        if isinstance(exc, DivergenceError):
            return "diverged"
        interrupted = self.trainer is not None and self.trainer.state.status == TrainerStatus.INTERRUPTED
        if isinstance(exc, (RunInterrupted, KeyboardInterrupt)) or (isinstance(exc, SystemExit) and interrupted):
            return "interrupted"
        return "failed"

    def _finish_loggers(self, status: str) -> None:
        """Lightning finalizes loggers only after a successful run; flush them whatever happened."""
        if self.trainer is None:
            return
        for logger in self.trainer.loggers:
            logger.save()
            if status != "completed":
                logger.finalize(status)
        if "wandb" in sys.modules:
            import wandb

            if wandb.run is not None:
                wandb.run.finish(exit_code=0 if status in ("completed", "interrupted") else 1)
                wandb.teardown()  # stops W&B's service process, which would keep writing into this run's logs/
