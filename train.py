"""Entry point: ``python train.py {fit,validate,test,predict} [--config X.yaml] [--trainer.* --model.* --data.*]``.

A LightningCLI (``cli/lightning_cli.py``) with what a researcher would otherwise script by hand:

* every run gets its own directory ``runs/<run_name>/version_<k>/`` (``config.yaml``, ``checkpoints/``,
  plots, logger files); nothing is ever overwritten, and a run that never started leaves no directory;
* ``--ckpt_path last`` resumes the newest run of that name in place (or starts it, the first time);
  Ctrl-C/SIGTERM save ``last.ckpt`` at the current step and print the command that resumes;
* ``validate``/``test``/``predict --ckpt_path X`` with nothing else rebuild the model *and* data settings
  from the checkpoint; later flags still override them;
* W&B is the default logger, offline unless ``WANDB_API_KEY`` is set; nothing waits on a network.

Exit codes (``core.run_layout.ExitCode``): 0 done, 1 an unexpected error (a traceback), 2 bad input (one line
naming the flag or path), 3 diverged, 75 the run directory is in use by another process (try again later),
128+N stopped by signal N (141: the output pipe was closed, as in ``train.py fit ... | head``). A launcher that sets ``CIFAR_OUTCOME_FILE`` also gets the code and the error
line there as JSON, so it never has to read the console.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from typing import NoReturn


def _stopped_while_importing(signum: int, frame: object) -> None:
    """Ctrl-C before ``main`` installs its handlers (the imports take seconds): the one line of a later start-up stop."""
    print("Stopped by SIGINT (Ctrl-C) during start-up, before the run produced anything.", file=sys.stderr, flush=True)
    os._exit(128 + signum)


if __name__ == "__main__":  # `python train.py` only; main() replaces it (callbacks/interrupts.py)
    signal.signal(signal.SIGINT, _stopped_while_importing)

from lightning.pytorch.utilities.exceptions import MisconfigurationException

import lit_models  # noqa: F401  - registers every model for `--model NAME`
from callbacks.divergence import DivergenceError
from callbacks.interrupts import STOP, RunInterrupted, StartupInterrupted
from cli.checkpoints import CheckpointFileError
from cli.cpu_allocator import tune_cpu_allocator
from cli.lightning_cli import CIFARCLI, ConfigError
from cli.loggers import LoggerConfigError
from cli.parser import UsageExit
from cli.resume_changes import ResumeChangeError
from cli.run_dirs import RunDirBusy, RunDirUnwritable
from cli.session import RunSession, process_rank
from cli.workers import follow_parent, parent_gone
from core.process_exit import run_and_exit
from core.run_layout import ExitCode, write_outcome
from datamodules import CIFAR10DataModule, DataError
from lit_models import ClassifierModule
from lit_models.base import CheckpointMismatchError

USER_ERRORS = (DataError, CheckpointMismatchError, CheckpointFileError, ConfigError, LoggerConfigError, MisconfigurationException, RunDirUnwritable, ResumeChangeError)


def quiet_false_alarms() -> None:
    """Console output is signal: silence warnings that are false alarms for this project, where they arise."""
    os.environ.setdefault("WANDB_SILENT", "true")  # train.py prints the run's location and the sync command itself
    for message in (
        r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",  # Lightning's pytree use under torch >= 2.10
        r"Experiment logs directory .* exists and is not empty.*",  # CSVLogger in the run directory; history is kept
        r"Checkpoint directory .* exists and is not empty.*",  # only on a resume in place: the run's own checkpoints
        r".*The number of training batches \(\d+\) is smaller than the logging interval.*",
        r".*does not have many workers.*",  # the in-memory loader needs no worker processes
        r"Total length of `list` across ranks is zero.*",  # the DataModule's [] for --data.val_size 0; an empty loader of the user's still warns
    ):
        warnings.filterwarnings("ignore", message=message)
    if "SLURM_JOB_ID" not in os.environ:  # Lightning's advice to prepend `srun` fires wherever srun is installed; outside a job it is noise
        warnings.filterwarnings("ignore", message=r"The `srun` command is available on your system but is not used.*")
    # Lightning's promotional tips ("💡 Tip: ... litlogger/litmodels") go through its rank-zero info logger.
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(lambda record: not str(record.msg).startswith("💡 Tip"))


def main(argv: list[str] | None = None) -> CIFARCLI:
    """Run the CLI in this process; exceptions propagate (``python train.py`` turns them into exit codes).

    SIGINT/SIGTERM follow ``callbacks.interrupts`` from the first line to the last: a signal during start-up
    stops the run at once, with nothing left behind; one during training is saved and resumable; one while
    the run closes never costs a file.
    """
    quiet_false_alarms()
    tune_cpu_allocator()
    worker = process_rank() != 0
    if worker:
        follow_parent()
    STOP.install(worker=worker)
    session = RunSession()
    try:
        try:
            with warnings.catch_warnings():  # filters set for one run (e.g. evaluation's) end with it, in-process callers included
                cli = CIFARCLI(ClassifierModule, CIFAR10DataModule, subclass_mode_model=True, auto_configure_optimizers=False, args=argv, session=session)
        except BaseException as exc:
            if worker and not isinstance(exc, RunInterrupted) and parent_gone():
                os._exit(0)  # rank 0 stopped or failed, and says so; this rank's error is only the echo of it
            if STOP.startup_signum is not None and not isinstance(exc, StartupInterrupted):
                exc = StartupInterrupted(STOP.startup_signum)  # what surfaced first may be a collective another rank left
            session.close(exc)
            raise exc
        session.close(None)
        if STOP.closing_signum is not None:  # training ended, then a signal came while the run closed
            raise RunInterrupted(STOP.closing_signum, cli.trainer.global_step, message="stopped during shutdown")
    finally:
        STOP.uninstall()
    return cli


def run_as_script() -> NoReturn:
    """``main()`` with its ending turned into an exit code (and, for a launcher, an outcome record)."""
    rank0 = process_rank() == 0
    if signal.getsignal(signal.SIGINT) is _stopped_while_importing:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # what main()'s handlers go back to when it ends
    try:
        main()
        code, error = ExitCode.OK, None
    except RunInterrupted as exc:
        code, error = (exc.exit_code if rank0 else 0), str(exc)  # Lightning SIGKILLs rank 0 when a worker exits non-zero
    except UsageExit as exc:  # printed by the parser
        code, error = exc.code, exc.line
    except (DivergenceError, RunDirBusy, *USER_ERRORS) as exc:
        code = ExitCode.DIVERGED if isinstance(exc, DivergenceError) else ExitCode.BUSY if isinstance(exc, RunDirBusy) else ExitCode.BAD_INPUT
        error = str(exc)
        print(f"error: {error}", file=sys.stderr)
    except BrokenPipeError:  # the console's reader went away (`train.py fit ... | head`): end as a pipe writer does
        _silence_broken_pipe()
        code, error = 128 + signal.SIGPIPE, "the output pipe was closed (SIGPIPE)"
    except SystemExit as exc:  # --help, --print_config
        code, error = (exc.code if isinstance(exc.code, int) else ExitCode.FAILED if exc.code else ExitCode.OK), None
    except BaseException as exc:  # a bug or a broken environment: the traceback is what helps, so it is kept
        if rank0:
            write_outcome(ExitCode.FAILED, " ".join(f"{type(exc).__name__}: {exc}".split())[:400])
        raise
    if rank0:
        write_outcome(code, error)
    sys.exit(code)


def _silence_broken_pipe() -> None:
    """Point stdout at /dev/null (nothing more can be shown there), and stderr too when it is the same pipe
    (``2>&1 | head``); a stderr that still reaches a terminal keeps it."""
    try:
        same = os.path.samestat(os.fstat(sys.stdout.fileno()), os.fstat(sys.stderr.fileno()))
    except (OSError, ValueError, AttributeError):
        same = False
    for stream in (sys.stdout, *([sys.stderr] if same else [])):
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        except (OSError, ValueError):
            pass


if __name__ == "__main__":
    run_and_exit(run_as_script)  # the interpreter's exit work, without its ~1 s teardown (core/process_exit.py)
