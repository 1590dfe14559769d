"""The call relay over TCP, for networks that block UDP (like TURN over TCP).

Each media packet travels as one frame with a 2-byte length; `RelayProtocol` handles it
exactly as a datagram, and answers a member whose HELLO came over TCP over that
connection. Connections are capped per address and in all, and one that has not said
a good HELLO within ``HELLO_TIMEOUT`` is closed.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import Factory
from twisted.protocols.basic import Int16StringReceiver

from messenger.server.relay import RelayProtocol
from messenger.wire.media import MAX_DATAGRAM, Endpoint


class RelayStream(Int16StringReceiver):
    """One TCP connection to the relay: frames in, `RelayProtocol` does the rest."""

    MAX_LENGTH = MAX_DATAGRAM
    HELLO_TIMEOUT = 10.0     # a connection that has not said a good HELLO by then goes

    def __init__(self, relay: RelayProtocol, factory: RelayStreamFactory) -> None:
        self.relay = relay
        self.factory = factory
        self.peer: Endpoint = ("", 0)
        self._timer: Any = None
        self.counted = False     # admitted, so counted in the factory's totals

    def connectionMade(self) -> None:  # noqa: N802
        address = self.transport.getPeer()
        self.peer = self.relay._plain((address.host, address.port))
        if not self.factory.admit(self):
            self.transport.abortConnection()
            return
        self._timer = self.relay.clock.callLater(self.HELLO_TIMEOUT, self._check_bound)

    def _check_bound(self) -> None:
        self._timer = None
        bound = any(self in call.links for call in self.relay.table.calls.values())
        if not bound:
            self.transport.abortConnection()

    def stringReceived(self, data: bytes) -> None:  # noqa: N802
        self.relay.datagramReceived(data, self.peer, link=self)

    def lengthLimitExceeded(self, length: int) -> None:  # noqa: N802
        self.relay.dropped_malformed += 1
        self.transport.abortConnection()

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self.factory.gone(self)


class RelayStreamFactory(Factory):
    """The relay's TCP listener, with a cap on connections per address and in all."""

    def __init__(self, relay: RelayProtocol, max_connections: int = 2000,
                 per_address: int = 8) -> None:
        self.relay = relay
        self.max_connections = max_connections
        self.per_address = per_address
        self.connections: dict[str, int] = {}
        self.total = 0
        self.refused = 0

    def buildProtocol(self, addr: Any) -> RelayStream:  # noqa: N802
        return RelayStream(self.relay, self)

    def admit(self, stream: RelayStream) -> bool:
        host = stream.peer[0]
        if self.total >= self.max_connections or \
                self.connections.get(host, 0) >= self.per_address:
            self.refused += 1
            stream.counted = False
            return False
        stream.counted = True
        self.total += 1
        self.connections[host] = self.connections.get(host, 0) + 1
        return True

    def gone(self, stream: RelayStream) -> None:
        if not stream.counted:
            return
        stream.counted = False
        self.total -= 1
        host = stream.peer[0]
        left = self.connections.get(host, 1) - 1
        if left:
            self.connections[host] = left
        else:
            self.connections.pop(host, None)

