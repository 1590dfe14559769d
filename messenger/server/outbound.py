"""What the server has queued for one connection, bounded; and when to stop reading it.

A client that stops reading its socket must not grow the server's memory: every push and
reply it is sent would otherwise wait in its transport's write buffer without end.

`Outbound` is registered with the transport as a streaming producer (Twisted's
producer/consumer, as the magic-wormhole transit relay does). The transport pauses it once
its buffer holds more than its high-water mark (64 KiB for TCP) and resumes it when the
buffer has drained. While paused, everything written is counted; once the count passes the
configured limit (``--max-queued-bytes``) the connection is dropped with a log line.
Only pushes (what the client did not ask for) are dropped: the replies to its own
requests are bounded by the requests it may have in flight (`requests.MAX_HEAVY` pages
of at most 1 MiB, `requests.MAX_IN_FLIGHT` small ones), since reading stops while
writes are held back; a client that pipelines a few pages is answered, however slowly it
reads. What one connection may hold is therefore the limit plus that bound.
Nothing is lost by that: every message is stored, and the client syncs after it comes
back. A reader that is merely slow, but keeps up on average, drains the buffer between
bursts and is never dropped: the limit is on what is queued, not on speed.

While the transport holds our writes back and more than `HOLD_READING_AT` bytes wait,
the connection also stops reading requests (`ReadGate`), so a client that floods requests
without reading replies cannot pile up work either. (Not at the first pause: a TLS
transport pauses its producer while its handshake is under way, and must go on reading
to finish it.) The gate is shared by every reason to stop reading (writes held back, too
many requests in flight, crypto work queued), each held and released by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from messenger.server.directwrite import direct_writer

HOLD_READING_AT = 64 * 1024


class ReadGate:
    """Reading stops while at least one reason holds it, and resumes when none does."""

    __slots__ = ("_pause", "_resume", "_reasons")

    def __init__(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self._pause = pause
        self._resume = resume
        self._reasons: set[str] = set()

    def hold(self, reason: str) -> None:
        if reason in self._reasons:
            return
        self._reasons.add(reason)
        if len(self._reasons) == 1:
            self._pause()

    def release(self, reason: str) -> None:
        if reason not in self._reasons:
            return
        self._reasons.discard(reason)
        if not self._reasons:
            self._resume()

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self._reasons)


@implementer(IPushProducer)
class Outbound:
    """The write side of one connection: writes through, counts what waits, bounds it.

    ``pending`` counts bytes accepted for sending but not yet written (waiting for the
    crypto pool to seal them): they are held in memory too, so they count against the
    limit as well.
    """

    __slots__ = ("_write", "_buffered", "limit", "paused", "queued", "pending", "_gate",
                 "_overflow", "overflowed")

    def __init__(self, transport: Any, limit: int, gate: ReadGate,
                 on_overflow: Callable[[int], None]) -> None:
        self._write = direct_writer(transport)
        self._buffered = getattr(self._write, "buffered", transport.write)
        self.limit = limit
        self.paused = False
        self.queued = 0          # bytes written while the transport held us back
        self.pending = 0         # bytes waiting to be sealed
        self._gate = gate
        self._overflow = on_overflow
        self.overflowed = False

    def write(self, data: bytes, reply: bool = False, direct: bool = True) -> None:
        """Hand ``data`` to the transport, or drop the connection when a push would pass
        the limit. A ``reply`` (to one of the client's own requests) is never dropped:
        replies are bounded by the requests in flight, as reading stops meanwhile.
        ``direct`` False: through ``transport.write`` (sent on the reactor's next turn)
        even where `messenger.server.directwrite` could send at once."""
        if self.paused:
            queued = self.queued = self.queued + len(data)
            if queued + self.pending > self.limit and not reply:
                self._overflowed()
                return
            if queued > HOLD_READING_AT:
                self._gate.hold("writes")
        if direct:
            self._write(data)
        else:
            self._buffered(data)

    def reserve(self, size: int, reply: bool = False) -> bool:
        """Count ``size`` bytes that will be written later; False (and the connection is
        dropped) when a push would pass the limit."""
        self.pending += size
        if self.queued + self.pending > self.limit and not reply:
            self._overflowed()
            return False
        return True

    def unreserve(self, size: int) -> None:
        self.pending -= size

    def _overflowed(self) -> None:
        if not self.overflowed:
            self.overflowed = True
            self._overflow(self.queued + self.pending)

    # -- IPushProducer: called by the transport --------------------------------------------

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self.queued = 0
        self._gate.release("writes")

    def stopProducing(self) -> None:
        self.paused = True
