"""Bad networks on loopback: blocked paths, a lossy reordering forwarder, polling.

* `FilteringTransport` wraps a UDP port and silently drops writes to addresses a
  predicate refuses; `blocking_session_factory` builds MediaSessions whose every send
  goes through one, so "the direct path is blocked" without touching the host firewall.
* `LossyForwarder` sits between a client and the relay: it forwards both ways and, on
  the way to the client, drops and delays the datagrams its predicates pick.
* `wait_until` polls a condition on the real reactor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import reactor as global_reactor
from twisted.internet import task
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import DatagramProtocol

from messenger.client.calls.media import MediaSession
from messenger.wire import media


class FilteringTransport:
    """A UDP port whose writes pass only where ``allow(addr)`` says so."""

    def __init__(self, transport: Any, allow: Callable[[tuple[str, int]], bool]) -> None:
        self._transport = transport
        self.allow = allow
        self.blocked = 0

    def write(self, data: bytes, addr: tuple[str, int]) -> Any:
        if not self.allow(addr):
            self.blocked += 1
            return None
        return self._transport.write(data, addr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def blocking_session_factory(allow: Callable[[MediaSession, tuple[str, int]], bool],
                             ) -> Callable[..., MediaSession]:
    """A MediaSession factory whose sessions send only where ``allow(session, addr)``."""

    class FilteredSession(MediaSession):
        def makeConnection(self, transport: Any) -> None:  # noqa: N802
            super().makeConnection(FilteringTransport(transport,
                                                      lambda addr: allow(self, addr)))

    return FilteredSession


def relay_only(session: MediaSession, addr: tuple[str, int]) -> bool:
    """The direct path is blocked: only the relay is reachable."""
    return (addr[0], addr[1]) == session.params.relay


class Switch:
    """A direct path that a test can cut and restore (relay always open)."""

    def __init__(self) -> None:
        self.direct_open = True

    def __call__(self, session: MediaSession, addr: tuple[str, int]) -> bool:
        return self.direct_open or (addr[0], addr[1]) == session.params.relay


def audio_seq(data: bytes) -> int | None:
    """The sequence number of an AUDIO datagram, None for any other datagram."""
    try:
        header = media.parse_header(data)
    except media.MalformedPacket:
        return None
    return header.seq if header.ptype == media.AUDIO else None


class LossyForwarder(DatagramProtocol):
    """client <-> forwarder <-> target; towards the client it drops and delays.

    The client uses the forwarder's address as its relay. ``drop(data)`` and
    ``delay(data)`` (seconds, 0 for none) decide per datagram towards the client.
    """

    def __init__(self, target: tuple[str, int], drop: Callable[[bytes], bool],
                 delay: Callable[[bytes], float], reactor: Any = None) -> None:
        self.target = target
        self.drop = drop
        self.delay = delay
        self.reactor = reactor if reactor is not None else global_reactor
        self.client: tuple[str, int] | None = None
        self.dropped: list[bytes] = []
        self.delayed: list[bytes] = []
        self.forwarded = 0
        self._pending: list[Any] = []

    def datagramReceived(self, data: bytes, addr: Any) -> None:  # noqa: N802
        source = (addr[0], addr[1])
        if source != self.target:
            self.client = source
            self.transport.write(data, self.target)
            return
        if self.client is None:
            return
        if self.drop(data):
            self.dropped.append(data)
            return
        self.forwarded += 1
        wait = self.delay(data)
        if wait > 0:
            self.delayed.append(data)
            self._pending.append(self.reactor.callLater(wait, self._late, data))
        else:
            self.transport.write(data, self.client)

    def _late(self, data: bytes) -> None:
        if self.transport is not None and self.client is not None:
            self.transport.write(data, self.client)

    def stopProtocol(self) -> None:  # noqa: N802
        for call in self._pending:
            if call.active():
                call.cancel()


@inlineCallbacks
def wait_until(condition: Callable[[], bool], timeout: float = 5.0, step: float = 0.02,
               reactor: Any = None) -> Any:
    """Poll ``condition`` on the real reactor; fail with AssertionError after ``timeout``."""
    clock = reactor if reactor is not None else global_reactor
    waited = 0.0
    while not condition():
        if waited >= timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        yield task.deferLater(clock, step, lambda: None)
        waited += step


def sleep(seconds: float, reactor: Any = None) -> Deferred[None]:
    """A Deferred that fires after ``seconds`` on the real reactor."""
    clock = reactor if reactor is not None else global_reactor
    return task.deferLater(clock, seconds, lambda: None)
