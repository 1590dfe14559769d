"""The pieces of a media session's path discovery: path names, clocks, back-off, our own
candidate addresses.

`media.MediaSession` runs the discovery (HELLO to the relay, PROBEs to the peer's
candidates); these are its parts without I/O on the reactor, apart from the one routing
lookup of `local_endpoints` (a connected UDP socket, which sends nothing).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import NamedTuple

from messenger.wire.media import Endpoint

CONNECTING = "connecting"
DIRECT = "direct"
RELAY = "relay"


@dataclass(frozen=True)
class SessionTiming:
    """The clocks of path discovery, in seconds."""

    tick: float = 0.025              # how often the session looks at its timers
    hello_first: float = 0.05        # HELLO retry while unanswered: first gap ...
    hello_max: float = 1.0           # ... doubling up to this
    hello_give_up: float = 30.0      # stop retrying (the engine has failed the call)
    hello_keepalive: float = 15.0    # HELLO again once answered
    probe_first: float = 0.05        # PROBE retry per candidate: first gap ...
    probe_max: float = 0.5           # ... doubling up to this ...
    probes_per_round: int = 8        # ... this many per round
    direct_timeout: float = 1.0      # relay known and no direct ack for this long: relay
    direct_keepalive: float = 0.5    # keepalive PROBE on the direct path
    direct_dead_after: float = 2.0   # no PROBE_ACK this long: direct path is dead
    reprobe_interval: float = 5.0    # on the relay: check the candidates again
    tcp_after: float = 2.0           # no HELLO_ACK over UDP this long: try TCP too


class ReceivedAudio(NamedTuple):
    seq: int
    stamp: int
    codec: int
    flags: int
    payload: bytes
    via_relay: bool


class Backoff:
    """Retry times: ``first``, doubling, at most ``cap`` apart."""

    __slots__ = ("first", "cap", "gap", "due", "sent")

    def __init__(self, first: float, cap: float, now: float) -> None:
        self.first, self.cap = first, cap
        self.gap, self.due, self.sent = first, now, 0

    def fire(self, now: float) -> bool:
        if now < self.due - 1e-6:
            return False
        self.sent += 1
        self.due = now + self.gap
        self.gap = min(self.cap, self.gap * 2)
        return True


def local_endpoints(host: str, port: int, relay_host: str) -> tuple[Endpoint, ...]:
    """Our own address(es) for the peer to try: the bound one, or the one routing to the relay.

    For a wildcard socket the kernel's choice of source address toward the relay is asked
    with a connected UDP socket. This never blocks: connect() on a datagram socket to an
    IP literal is only a routing-table lookup (no packet, no DNS), and a relay given by
    name is not looked up here at all (the engine resolves it off the reactor first).
    """
    try:
        address = ipaddress.ip_address(host)
        relay = ipaddress.ip_address(relay_host)
    except ValueError:
        return ()
    if address.is_unspecified:
        if relay.version != address.version:
            return ()
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        probe = socket.socket(family, socket.SOCK_DGRAM)
        try:
            probe.connect((relay_host, 9))
            host = probe.getsockname()[0]
        except OSError:
            return ()
        finally:
            probe.close()
    return ((host, port),)
