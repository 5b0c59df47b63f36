"""DDP worker processes (global rank > 0) follow rank 0, which speaks for the run.

Lightning starts the workers as children of rank 0 (``train.py`` run again). When rank 0 stops (a signal
during start-up, an error) a worker blocked in a collective would otherwise wait for it, then print a long
``Connection closed by peer`` traceback, or wait for ever if rank 0 went before the worker connected. So a
worker dies with its parent (``PR_SET_PDEATHSIG``: SIGTERM, which it leaves on quietly during start-up), and
one that fails because rank 0 has gone exits quietly with 0: the reason is rank 0's to tell, and Lightning
SIGKILLs rank 0 while it is still closing when a worker exits with another code.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
_parent = os.getppid()


def follow_parent() -> None:
    """SIGTERM this process when its parent (rank 0) dies (Linux; elsewhere a no-op)."""
    global _parent
    _parent = os.getppid()
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != _parent:  # it died before the call above
        os.kill(os.getpid(), signal.SIGTERM)


def parent_gone(within_s: float = 3.0) -> bool:
    """Whether rank 0 has exited, or does within ``within_s``: a worker's collective fails as rank 0's process
    ends, a moment before the kernel reparents the worker."""
    deadline = time.monotonic() + within_s
    while os.getppid() == _parent:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
