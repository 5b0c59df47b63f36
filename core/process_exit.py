"""How a ``train.py`` process ends: everything the interpreter's own exit does that a run's files need, then
``os._exit`` instead of tearing the interpreter down.

Python's exit, after ``atexit``, clears every module and frees every object one by one. With torch and
Lightning loaded that takes ~1 s on a 2-core CPU (0.4 s for ``import torch`` alone), for nothing a run
keeps: its files are written and closed by then. A study's forked runs (``studies/launchers/forked.py``)
always ended this way, since they must never return into the study's code; ``python train.py`` now does too
(README, "Performance": ~1 s less per process). What still happens, in the interpreter's order: threading's exit
callbacks (``concurrent.futures`` pools) and non-daemon threads joined, ``atexit`` callbacks (logging's
flush, multiprocessing's children, wandb's, the phase record) run, ``sys.stdout``/``sys.stderr`` flushed,
an uncaught exception's traceback printed through ``sys.excepthook`` with code 1 and an uncaught
``KeyboardInterrupt`` ending the process by SIGINT. What no longer happens: a file object
that its owner never closed is not flushed by its destructor.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import NoReturn


def exit_code(exc: SystemExit) -> int:
    """``sys.exit(x)`` the way the interpreter turns it into an exit status (``sys.exit(-1)`` is 255)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def interpreter_exit(code: int, signum: int | None = None) -> int:
    """What ``Py_FinalizeEx`` does before the process ends: threading's exit callbacks and the join of non-daemon
    threads (``threading._shutdown``, the interpreter's own call: ``concurrent.futures`` pools stop there), then
    ``atexit``, then the flush of ``sys.stdout``/``sys.stderr`` (a failed one turns status 0 into 120, as the
    interpreter does). ``signum``: the process dies of that signal instead (an uncaught KeyboardInterrupt).
    """
    try:
        try:
            threading._shutdown()
        except Exception:  # noqa: BLE001 - a thread state it does not expect: join them as Thread.join does
            for thread in threading.enumerate():
                if thread is not threading.current_thread() and not thread.daemon:
                    thread.join()
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed or broken stream (`| head`): nothing more to write
                code = code or 120
    if signum is not None:  # die of the signal, as the interpreter does after an uncaught KeyboardInterrupt
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return 128 + signum
    return code & 0xFF


def code_of(run: Callable[[], object]) -> tuple[int, int | None]:
    """Run ``run`` as the interpreter runs a script's body: the exit status it would end with, and the signal it
    would die of (SIGINT after an uncaught KeyboardInterrupt, else None). Uncaught exceptions go to
    ``sys.excepthook`` (the traceback), as in the interpreter."""
    try:
        run()
        return 0, None
    except SystemExit as exc:
        return exit_code(exc), None
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        return 1, signal.SIGINT
    except BaseException:  # noqa: BLE001 - as the interpreter does: the traceback, exit code 1
        sys.excepthook(*sys.exc_info())
        return 1, None


def run_and_exit(run: Callable[[], object]) -> NoReturn:
    """``run`` as a script's body, then the interpreter's exit work and ``os._exit``: never a return."""
    code, signum = 1, None
    try:
        code, signum = code_of(run)
    finally:
        try:
            code = interpreter_exit(code, signum)
        finally:
            os._exit(code)
