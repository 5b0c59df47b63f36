"""A study's ``train.py`` runs forked from the study process, which has imported train.py's modules once.

Why: a subprocess pays interpreter start and imports (torch, Lightning, the models: 4-5 s on a 2-core
CPU) before it trains, often for a few seconds only; a study of short runs paid that once per run. The
study process already imports almost all of it to check the flags, so a run forked from it starts
training at once.

What a forked run keeps from a subprocess, and how:

* isolation: it is its own process (a crash, a divergence or ``kill -9`` ends that run only), and it
  starts as a fresh interpreter would: the run's environment (``os.environ`` replaced) and working
  directory, ``sys.argv = [train.py, fit, ...]`` (Lightning's DDP launcher re-runs it for worker ranks),
  stdin from /dev/null, stdout and stderr into ``train.log`` (new ``sys.std*`` objects, the logging
  handlers that wrote to the old ones moved over), no file descriptor of the study's (its directory
  lock above all), the default signal handlers, the RNGs a fresh process has (Python's reseeds itself
  at fork; NumPy's from entropy, torch's to its default seed) and ``OMP_NUM_THREADS`` applied (libgomp
  read it when the study process imported torch);
* its exit code and outcome record: it runs ``train.run_as_script()`` and ends the way an interpreter
  does (non-daemon threads joined, ``atexit`` callbacks run, streams flushed, an uncaught exception's
  traceback printed with code 1), then ``os._exit`` so nothing of the study's runs in it afterwards
  (``core/process_exit.py``, the way ``python train.py`` itself ends);
* resume, files, dying with the study: unchanged, they are train.py's and the launcher's (``preexec_fn``,
  ``PR_SET_PDEATHSIG``, runs first in the child).

A fork is only safe from a process that runs no other thread, and torch's CPU thread pool is the trap:
GNU OpenMP does not survive a fork, so a child forked after the study ran one multi-threaded torch op
hangs at its first one (measured). :func:`fork_refusal` says why a fork is not safe now, and the
launcher then starts the run as a subprocess, as before.
"""

from __future__ import annotations

import io
import locale
import logging
import os
import signal
import sys
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from core.process_exit import run_and_exit
from core.wandb_internals import capture_new_console_streams
from studies.spec import ROOT

TRAIN_PY = str(ROOT / "train.py")
_HELD = {signal.SIGINT, signal.SIGTERM}
_kept_alive: list[Any] = []  # the study's stdio objects, in a child: never closed (their fds are the run's now)


def runs_train_py(argv: list[str]) -> bool:
    """``argv`` is ``python train.py ...`` with this interpreter: what a forked run can be."""
    return len(argv) >= 2 and argv[0] == sys.executable and argv[1] == TRAIN_PY


def fork_refusal(gpus: list[str]) -> str | None:
    """Why a run cannot be forked from this process now (one clause for the user), or None when it can.

    Imports ``train`` first (once): its imports must not start threads either.
    """
    if not hasattr(os, "fork") or not sys.platform.startswith("linux"):
        return f"{sys.platform} has no fork() with PR_SET_PDEATHSIG"
    if gpus:
        return "the runs use GPUs (forked children are untested with CUDA)"
    import torch

    import train  # noqa: F401  - what every run imports, paid here once

    if torch.cuda.is_initialized():
        return "CUDA is initialised in the study process"
    if (python_threads := threading.active_count()) > 1:
        names = ", ".join(t.name for t in threading.enumerate() if t is not threading.current_thread())
        return f"the study process runs {python_threads - 1} other thread(s) ({names})"
    if (native := _threads_through_a_fork() - 1) > 0:
        return f"the study process runs {native} native thread(s) (torch's CPU thread pool, started by a torch op in it?); a forked run could hang"
    return None


def _threads_through_a_fork() -> int:
    """This process's threads, but for those of pools that stop before a fork and restart when used.

    OpenBLAS's (NumPy starts it at import) is one: its ``pthread_atfork`` handler joins its threads. When
    more than this thread runs, a child that exits at once lets those pools stop; what still runs after
    it would not exist in a forked run, with whatever locks it held. After the launcher's first fork
    OpenBLAS stays stopped (nothing in a study uses it), so this costs one fork per study, not per run.
    """
    if _os_threads() > 1:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    return _os_threads()


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


class ForkedRun:
    """A ``train.py`` run forked from this process, with the part of ``subprocess.Popen`` the launchers use."""

    def __init__(self, argv: list[str], *, cwd: Path, env: dict[str, str], log: IO[Any], preexec_fn: Callable[[], None] | None = None):
        self.args, self.returncode = argv, None
        for stream in (sys.stdout, sys.stderr):  # else what they buffer would be written twice
            stream.flush()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)  # no study handler may run in the child: held until it has its own
        try:
            pid = os.fork()
            if pid == 0:
                _child(argv, cwd, env, log.fileno(), preexec_fn, mask)  # never returns
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        self.pid = pid

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _child(argv: list[str], cwd: Path, env: dict[str, str], log_fd: int, preexec_fn: Callable[[], None] | None, mask: set[signal.Signals]) -> None:
    """The forked run, from its first line to ``os._exit``: nothing raised here may reach the study's code."""

    def run() -> None:
        import gc

        gc.freeze()  # the study's objects are never collected here: none of them closes a file of the run's
        if preexec_fn is not None:
            preexec_fn()
        _fresh_process(argv, cwd, env, log_fd)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a SIGTERM that came meanwhile now ends the run, as in a starting subprocess
        import train

        train.run_as_script()

    run_and_exit(run)


def _fresh_process(argv: list[str], cwd: Path, env: dict[str, str], log_fd: int) -> None:
    """Make this forked process look to train.py like ``python train.py ...`` started with ``env`` in ``cwd``."""
    for signum in signal.valid_signals():  # the study's handlers (its SIGTERM) are not the run's: a fresh process's
        handler = signal.getsignal(signum)
        if callable(handler) and handler is not signal.default_int_handler:
            signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.set_wakeup_fd(-1)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.argv = argv[1:]
    sys.modules["__main__"].__spec__ = None  # Lightning's DDP launcher re-runs `python sys.argv`, not `python -m <study's main>`
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the study's lock, its other runs' logs, ...
    _fresh_stdio()
    _own_exit_work()
    _fresh_rngs()
    import faulthandler

    faulthandler.disable()
    if env.get("PYTHONFAULTHANDLER"):
        faulthandler.enable()
    if (threads := env.get("OMP_NUM_THREADS", "")).isdigit() and int(threads) > 0:
        import torch

        torch.set_num_threads(int(threads))  # libgomp read OMP_NUM_THREADS when the study imported torch


def _fresh_stdio() -> None:
    """New ``sys.std*`` on fds 0/1/2, as ``python -u`` has them (``PYTHONUNBUFFERED``: the runs' console is a file).

    The console handlers of ``logging`` (Lightning's, made at import in the study process) write to the new
    stdout (those on fd 1) or stderr (all others, as a fresh ``StreamHandler`` does).
    """
    _kept_alive.extend(s for s in (sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__, sys.__stderr__) if s is not None)
    encoding = os.environ.get("PYTHONIOENCODING", "").partition(":")[0] or locale.getpreferredencoding(False)
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding=encoding)
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding=encoding, write_through=True)
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding=encoding, errors="backslashreplace", write_through=True)
    loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger))]
    for handler in (h for lg in loggers for h in lg.handlers if type(h) is logging.StreamHandler):
        handler.setStream(sys.stdout if _fileno(handler.stream) == 1 else sys.stderr)
    capture_new_console_streams()  # wandb, imported by the study for its shared service, captured the old ones


def _fileno(stream: Any) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # a StringIO, a closed file
        return None


def _own_exit_work() -> None:
    """``atexit`` runs at the end as in any interpreter, but not the study's own clean-ups: multiprocessing
    finalizers and ``weakref.finalize`` objects that exist now belong to the study (multiprocessing clears
    the former in its own forked children the same way)."""
    if (mp_util := sys.modules.get("multiprocessing.util")) is not None:
        mp_util._finalizer_registry.clear()
    for finalizer in list(weakref.finalize._registry):  # type: ignore[attr-defined]
        finalizer.atexit = False


def _fresh_rngs() -> None:
    if (np := sys.modules.get("numpy")) is not None:
        np.random.seed()  # a fresh process seeds NumPy's global generator from entropy
    if (torch := sys.modules.get("torch")) is not None:
        torch.default_generator.set_state(torch.Generator().get_state())  # a new generator has torch's default seed
