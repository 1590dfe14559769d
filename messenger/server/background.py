"""Worker threads that yield the CPU to the reactor thread.

RSA work and password hashing run in threads so that the reactor thread is free to move
everyone else's bytes; cryptography and hashlib release the GIL while they compute. But
on a machine with few cores the workers still compete with the reactor for the CPU: with
both cores busy sealing a flood of rsa-oaep pages, the reactor gets a third of a core and
every other user waits. So each worker thread lowers its own scheduling priority (a nice
value of `WORKER_NICE`) the first time it runs a job: the kernel then runs the reactor
first whenever it has work, and the workers take whatever CPU is left. (On Linux a thread
id given to setpriority names that thread alone; elsewhere this does nothing.)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

WORKER_NICE = 10
_state = threading.local()


def lower_priority() -> bool:
    """Lower this thread's priority once; True if it is (now or already) lowered."""
    if getattr(_state, "lowered", None) is None:
        try:
            current = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                           min(19, max(current, 0) + WORKER_NICE))
            _state.lowered = True
        except (AttributeError, OSError):
            _state.lowered = False
    return bool(_state.lowered)


def in_background(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` in the calling worker thread, at the lowered priority (never
    lowering the main thread's: that is the reactor's)."""
    if threading.current_thread() is not threading.main_thread():
        lower_priority()
    return fn(*args)
