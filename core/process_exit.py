"""How a ``train.py`` process ends: everything the interpreter's own exit does that a run's files need, then
``os._exit`` instead of tearing the interpreter down.

Python's exit, after ``atexit``, clears every module and frees every object one by one. With torch and
Lightning loaded that takes ~1 s on a 2-core CPU (0.4 s for ``import torch`` alone), for nothing a run
keeps: its files are written and closed by then. A study's forked runs (``studies/launchers/forked.py``)
always ended this way, since they must never return into the study's code; ``python train.py`` now does too
(README, "Performance": ~1 s less per process). What still happens, in the interpreter's order: non-daemon
threads joined, ``atexit`` callbacks (logging's flush, multiprocessing's children, wandb's, the phase
record) run, ``sys.stdout``/``sys.stderr`` flushed, an uncaught exception's traceback printed with code 1
and an uncaught ``KeyboardInterrupt`` ending the process by SIGINT. What no longer happens: a file object
that its owner never closed is not flushed by its destructor.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import NoReturn


def exit_code(exc: SystemExit) -> int:
    """``sys.exit(x)`` the way the interpreter turns it into an exit status."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def interpreter_exit(code: int) -> int:
    """What ``Py_FinalizeEx`` does before the process ends: join non-daemon threads, run ``atexit``, flush.

    ``code < 0`` means "killed by signal -code" (an uncaught KeyboardInterrupt): the signal is delivered here.
    """
    try:
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join()
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001, S110 - a closed or broken stream: nothing more to write
                pass
    if code < 0:  # die of the signal, as the interpreter does after an uncaught KeyboardInterrupt
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    return code & 0xFF


def code_of(run: Callable[[], object]) -> int:
    """Run ``run`` as the interpreter runs a script's body, and return the exit status it would end with."""
    try:
        run()
        return 0
    except SystemExit as exc:
        return exit_code(exc)
    except KeyboardInterrupt:  # as the interpreter does: the traceback, then die of SIGINT
        traceback.print_exc()
        return -signal.SIGINT
    except BaseException:  # noqa: BLE001 - as the interpreter does: the traceback, exit code 1
        traceback.print_exc()
        return 1


def run_and_exit(run: Callable[[], object]) -> NoReturn:
    """``run`` as a script's body, then the interpreter's exit work and ``os._exit``: never a return."""
    code = 1
    try:
        code = code_of(run)
    finally:
        try:
            code = interpreter_exit(code)
        finally:
            os._exit(code if 0 <= code <= 255 else 1)
