"""Give memory back to the system after a crowd of connections has gone.

Connections that come and go in a crowd (an attacker's idle or half-sent connections, a
network outage that drops everyone at once) leave the freed memory in the C allocator's
heap: it is reused by the next crowd, so it is bounded, but the process stays at its
peak. glibc's ``malloc_trim`` hands the free pages back (also those inside the heap, not
only at its top), so the server goes back near its resting footprint when they leave.
Elsewhere (no glibc) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

# Trim once this many connections have gone since the last peak.
TRIM_AFTER = 64


def _malloc_trim() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


_trim = _malloc_trim()


def release_free_memory() -> bool:
    """Return free heap pages to the system; True when something was released."""
    return bool(_trim(0)) if _trim is not None else False


class Trimmer:
    """Decides when to trim: after the number of connections fell by `TRIM_AFTER` from
    its highest point since the last trim (checked by the keepalive sweep)."""

    __slots__ = ("peak", "trims", "_release")

    def __init__(self, release: Any = release_free_memory) -> None:
        self.peak = 0
        self.trims = 0
        self._release = release

    def opened(self, connections: int) -> None:
        if connections > self.peak:
            self.peak = connections

    def check(self, connections: int) -> None:
        if self.peak - connections >= TRIM_AFTER:
            self._release()
            self.trims += 1
            self.peak = connections
