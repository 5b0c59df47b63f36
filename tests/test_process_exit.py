"""A train.py process ends with the interpreter's exit work (threads, atexit, flushed streams, exit status,
tracebacks, SIGINT) but without the interpreter's teardown (core/process_exit.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import atexit, sys, threading, time
sys.path.insert(0, {root!r})
from core.process_exit import run_and_exit

class Teardown:
    def __del__(self):
        sys.stderr.write("TORN DOWN\\n")  # module teardown frees this object; os._exit skips that

kept = Teardown()
atexit.register(lambda: sys.stderr.write("ATEXIT\\n"))

def body():
    threading.Thread(target=lambda: (time.sleep(0.3), sys.stdout.write("THREAD ")), daemon=False).start()
    sys.stdout.write("BUFFERED ")  # no newline: still in the stream's buffer at the end
    {ending}

{call}
"""


def _run(ending: str, fast: bool = True) -> subprocess.CompletedProcess:
    call = "run_and_exit(body)" if fast else "body()"
    code = SCRIPT.format(root=str(ROOT), ending=ending, call=call)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("ending,status", [("pass", 0), ("sys.exit(3)", 3), ("sys.exit(-1)", 255), ("sys.exit(256 + 7)", 7),
                                           ("sys.exit('a message')", 1), ("raise ValueError('boom')", 1)])
def test_the_exit_keeps_the_interpreters_exit_work_and_status_and_skips_its_teardown(ending: str, status: int) -> None:
    fast, normal = _run(ending), _run(ending, fast=False)
    assert fast.returncode == normal.returncode == status
    assert fast.stdout == normal.stdout == "BUFFERED THREAD ", "buffered output flushed, the non-daemon thread joined"
    assert "ATEXIT" in fast.stderr and "ATEXIT" in normal.stderr
    assert "TORN DOWN" in normal.stderr and "TORN DOWN" not in fast.stderr
    for err in (fast.stderr, normal.stderr):
        assert ("ValueError: boom" in err) == ("ValueError" in ending) and ("a message" in err) == ("message" in ending)


def test_an_uncaught_keyboard_interrupt_ends_the_process_by_sigint_as_the_interpreter_does() -> None:
    fast, normal = _run("raise KeyboardInterrupt"), _run("raise KeyboardInterrupt", fast=False)
    assert fast.returncode == normal.returncode == -signal.SIGINT
    assert "KeyboardInterrupt" in fast.stderr and "ATEXIT" in fast.stderr



def test_a_thread_pool_left_running_stops_as_at_the_interpreters_exit() -> None:
    """concurrent.futures pools stop through threading's exit callbacks, which run before the join."""
    ending = "import concurrent.futures; pool = concurrent.futures.ThreadPoolExecutor(1); pool.submit(print, end='POOL ').result()"
    fast, normal = _run(ending), _run(ending, fast=False)
    assert fast.returncode == normal.returncode == 0 and fast.stdout == normal.stdout == "BUFFERED POOL THREAD "


def test_a_stdout_that_cannot_be_flushed_exits_120_as_the_interpreter_does() -> None:
    ending = "import os; os.close(1)"  # what `train.py ... | head` meets once head has gone
    fast, normal = _run(ending), _run(ending, fast=False)
    assert fast.returncode == normal.returncode == 120
