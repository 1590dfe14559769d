"""Writes to a TCP connection without the reactor's round trip, and one write per batch.

Twisted's ``transport.write`` only appends to a buffer and registers the socket for
writability (``epoll_ctl``); the next reactor turn sends the buffer and unregisters it
(``epoll_ctl`` again). At everyday load every message is two small frames (the push and
the sender's answer) on two idle connections, so each message paid four ``epoll_ctl``
calls and one more pass through the poll loop for data the kernel would have taken at
once (profile in docs/BENCHMARKS.md, "Everyday load").

`DirectWriter` sends at once with the transport's own ``writeSomeData`` when the
transport has nothing buffered, and hands anything else to ``transport.write``: what the
kernel did not take, and every write while older bytes still wait, so the byte order on
the connection never changes. Only a plain ``twisted.internet.tcp`` connection qualifies
(TLS and test transports keep ``transport.write``; `direct_writer` says which).

`CORK` keeps the batching that the buffer gave: while it is held (``with CORK:``, around
the group commit's callbacks and around the handling of one read), writes are collected
per connection and sent as one ``send`` each when the outermost block ends. The block is
synchronous, so nothing can close a connection between a write and its flush except the
code inside it, and a connection that was told to close meanwhile still gets its bytes
(``transport.write`` delivers them before the close, as before).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp


class DirectWriter:
    """Writes of one plain TCP connection: at once when nothing waits, else buffered."""

    __slots__ = ("_transport", "_held")

    def __init__(self, transport: tcp.Connection) -> None:
        self._transport = transport
        self._held: list[bytes] = []

    def __call__(self, data: bytes) -> None:
        if CORK.depth:
            if not self._held:
                CORK.dirty.append(self)
            self._held.append(data)
        else:
            self._send(data)

    def buffered(self, data: bytes) -> None:
        """Through ``transport.write`` (sent on the reactor's next turn), but behind
        anything a cork holds for this connection: never ahead of earlier writes."""
        if self._held:
            self._held.append(data)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Send what a cork held back (one ``send`` for all of it)."""
        held = self._held
        if held:
            self._held = []
            self._send(held[0] if len(held) == 1 else b"".join(held))

    def _send(self, data: bytes) -> None:
        t = self._transport
        # Nothing may be waiting in the transport's buffers (else these bytes would pass
        # them), the connection must be open and not closing, and not a TLS one.
        if (t.connected and not t.disconnecting and not t.TLS and not t._tempDataLen
                and len(t.dataBuffer) == t.offset):
            sent = t.writeSomeData(data)
            if type(sent) is int:
                if sent == len(data):
                    return
                data = data[sent:]
            # else: the connection is lost; transport.write lets Twisted find that out
            # the usual way (its own doWrite), as it would have without us.
        t.write(data)


class Cork:
    """While held, `DirectWriter` writes wait; the outermost release sends them."""

    __slots__ = ("depth", "dirty")

    def __init__(self) -> None:
        self.depth = 0
        self.dirty: list[DirectWriter] = []

    def __enter__(self) -> Cork:
        self.depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.depth -= 1
        if self.depth == 0 and self.dirty:
            dirty, self.dirty = self.dirty, []
            for writer in dirty:
                writer.flush()


CORK = Cork()


def direct_writer(transport: Any) -> Any:
    """A `DirectWriter` for a plain TCP transport; ``transport.write`` for any other."""
    if isinstance(transport, tcp.Connection) and not transport.TLS and \
            hasattr(transport, "_tempDataLen"):
        return DirectWriter(transport)
    return transport.write
