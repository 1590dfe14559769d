"""The UDP side of calls on the server: who is in which call, and the relay itself.

`CallTable` is the in-memory state the JIM signalling drives: ``add_call`` when a call
starts (call id, call key, the two members and their relay tokens), ``remove_call`` when
it ends. A member proves itself with a HELLO signed with its token; the table then knows
that member's public endpoint (the datagram's source) and the local endpoints it
announced, tells signalling through ``on_endpoint`` / ``wait_ready``, and answers with a
HELLO_ACK carrying the observed endpoint and the peer's endpoints.

`RelayProtocol` forwards sealed packets (AUDIO, PROBE, PROBE_ACK, BYE, REPORT) of a live
call from one member's learned endpoint to the other's, and only when the GCM tag
verifies under the call key and the sequence number is fresh. Everything else is dropped
and counted; no exception leaves ``datagramReceived`` (the model is Twisted's
DNSDatagramProtocol). Per packet the relay does one dictionary lookup, one tuple
comparison, one AES-GCM open and one replay-window check.

Abuse: a HELLO_ACK is never longer than the HELLO it answers (clients pad their HELLOs),
so a forged source address gains an attacker nothing (no amplification); HELLOs are
rate-limited per source address (`hello_limit`), and a flood of garbage costs one byte
comparison and a counter per datagram.

The same relay over TCP, for networks that block UDP, is `relay_tcp.RelayStreamFactory`:
a member whose HELLO came over TCP is reached over that connection.

The UDP socket may be dual-stack (``::`` with IPv4 mapped in): addresses are kept in
their plain form (``10.0.0.2``, not ``::ffff:10.0.0.2``) and mapped back when written.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from messenger.server.ratelimit import RateLimiter
from messenger.wire import media
from messenger.wire.media import (
    AUDIO,
    BYE,
    CALL_ID_SIZE,
    HEADER,
    HELLO,
    MAX_DATAGRAM,
    MIN_SEALED,
    PROBE,
    PROBE_ACK,
    REPORT,
    TOKEN_SIZE,
    CallCipher,
    Endpoint,
    MalformedPacket,
    ReplayWindow,
)

RECEIVE_BUFFER = 4 * 1024 * 1024  # bytes; the kernel caps it at net.core.rmem_max

# first byte -> sealed packet type, for the types the relay forwards
_FORWARDED = {media.type_byte(t): t for t in (PROBE, PROBE_ACK, AUDIO, BYE, REPORT)}
HELLO_RATE = 20.0      # HELLOs per second per source address, after ...
HELLO_BURST = 40.0     # ... a burst of this many
_HELLO_BYTE = media.type_byte(HELLO)


@dataclass(frozen=True)
class MemberEndpoints:
    """Where one member can be reached: as the relay saw it, and as it announced itself."""

    public: Endpoint
    local: tuple[Endpoint, ...] = ()

    def all(self) -> tuple[Endpoint, ...]:
        """The public endpoint first, then the local ones that differ from it."""
        return (self.public,) + tuple(e for e in self.local if e != self.public)


class CallEnded(Exception):
    """The call was removed before both members said HELLO."""


EndpointCallback = Callable[[bytes, int, MemberEndpoints], None]


class RelayCall:
    """One live call as the relay sees it. Index 0 and 1 are the two members."""

    __slots__ = ("call_id", "cipher", "members", "tokens", "endpoints", "locals", "links",
                 "hello_counters", "windows", "on_endpoint", "waiters", "relayed")

    def __init__(self, call_id: bytes, key: bytes, members: tuple[str, str],
                 tokens: tuple[bytes, bytes], on_endpoint: EndpointCallback | None) -> None:
        self.call_id = call_id
        self.cipher = CallCipher(key)
        self.members = members
        self.tokens = tokens
        self.endpoints: list[Endpoint | None] = [None, None]
        self.locals: list[tuple[Endpoint, ...]] = [(), ()]
        self.links: list[Any] = [None, None]      # a member's TCP connection, if it uses one
        self.hello_counters = [-1, -1]
        # one replay window per (sender, sealed type): index sender * 8 + type
        self.windows = [ReplayWindow() for _ in range(16)]
        self.on_endpoint = on_endpoint
        self.waiters: list[Deferred[tuple[MemberEndpoints, MemberEndpoints]]] = []
        self.relayed = 0

    def member_endpoints(self, member: int) -> MemberEndpoints | None:
        public = self.endpoints[member]
        if public is None:
            return None
        return MemberEndpoints(public, self.locals[member])

    def candidates_of(self, member: int) -> tuple[Endpoint, ...]:
        """The endpoints the other member may probe: a TCP member's public endpoint is
        no UDP candidate, only its local ones."""
        endpoints = self.member_endpoints(member)
        if endpoints is None:
            return ()
        if self.links[member] is not None:
            return endpoints.local
        return endpoints.all()

    def ready(self) -> bool:
        return self.endpoints[0] is not None and self.endpoints[1] is not None


class CallTable:
    """The live calls the relay serves, keyed by call id. Driven by the JIM signalling."""

    log = Logger()

    def __init__(self) -> None:
        self.calls: dict[bytes, RelayCall] = {}

    def __len__(self) -> int:
        return len(self.calls)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self.calls

    def add_call(self, call_id: bytes, key: bytes, members: tuple[str, str],
                 tokens: tuple[bytes, bytes],
                 on_endpoint: EndpointCallback | None = None) -> None:
        """Start relaying for a call.

        ``members`` are the account names of member 0 and member 1 (for logs and
        signalling; the relay identifies members by index). ``tokens`` are their relay
        tokens, in the same order; ``key`` is the call key both members hold.
        ``on_endpoint(call_id, member_index, MemberEndpoints)`` is called each time a
        member's endpoints are learned or change.
        """
        if len(call_id) != CALL_ID_SIZE:
            raise ValueError(f"a call id has {CALL_ID_SIZE} bytes")
        if call_id in self.calls:
            raise ValueError("call id already in use")
        if len(tokens) != 2 or any(len(token) != TOKEN_SIZE for token in tokens):
            raise ValueError(f"two relay tokens of {TOKEN_SIZE} bytes are needed")
        if tokens[0] == tokens[1]:
            raise ValueError("the two members need different tokens")
        self.calls[call_id] = RelayCall(call_id, key, members, tokens, on_endpoint)

    def remove_call(self, call_id: bytes) -> bool:
        """Stop relaying for a call; True if it was there. Pending `wait_ready` fail."""
        call = self.calls.pop(call_id, None)
        if call is None:
            return False
        waiters, call.waiters = call.waiters, []
        for waiter in waiters:
            waiter.errback(CallEnded(call_id.hex()))
        return True

    def get(self, call_id: bytes) -> RelayCall | None:
        return self.calls.get(call_id)

    def endpoints(self, call_id: bytes) -> tuple[MemberEndpoints | None, MemberEndpoints | None]:
        """What the relay knows of each member's endpoints (None: no HELLO yet)."""
        call = self.calls.get(call_id)
        if call is None:
            raise KeyError(call_id.hex())
        return call.member_endpoints(0), call.member_endpoints(1)

    def wait_ready(self, call_id: bytes) -> Deferred[tuple[MemberEndpoints, MemberEndpoints]]:
        """Fires with both members' endpoints once both have said HELLO.

        Fails with `CallEnded` if the call is removed first; cancel it to stop waiting
        (signalling puts its own timeout on it).
        """
        call = self.calls.get(call_id)
        if call is None:
            raise KeyError(call_id.hex())
        if call.ready():
            first, second = call.member_endpoints(0), call.member_endpoints(1)
            assert first is not None and second is not None
            return succeed((first, second))

        def cancel(waiter: Deferred[tuple[MemberEndpoints, MemberEndpoints]]) -> None:
            if waiter in call.waiters:
                call.waiters.remove(waiter)

        waiter: Deferred[tuple[MemberEndpoints, MemberEndpoints]] = Deferred(cancel)
        call.waiters.append(waiter)
        return waiter

    def learned(self, call: RelayCall, member: int) -> None:
        """A member's endpoints were learned or changed: tell signalling."""
        endpoints = call.member_endpoints(member)
        assert endpoints is not None
        if call.on_endpoint is not None:
            try:
                call.on_endpoint(call.call_id, member, endpoints)
            except Exception:
                self.log.failure("on_endpoint callback failed")
        if call.ready() and call.waiters:
            both = (call.member_endpoints(0), call.member_endpoints(1))
            waiters, call.waiters = call.waiters, []
            for waiter in waiters:
                waiter.callback(both)


class RelayProtocol(DatagramProtocol):
    """The server's UDP endpoint for calls: HELLO answers and authenticated forwarding."""

    log = Logger()

    def __init__(self, table: CallTable, clock: Any = None) -> None:
        if clock is None:
            from twisted.internet import reactor as clock  # noqa: PLC0415
        self.table = table
        self.clock = clock
        self.hello_limit = RateLimiter(HELLO_RATE, HELLO_BURST, clock)
        self.dual_stack = False        # the socket is AF_INET6 with IPv4 mapped in
        self.dropped_rate = 0          # HELLOs over the per-address limit
        self.dropped_malformed = 0
        self.dropped_auth = 0          # bad tag, or a sender that is not that member
        self.dropped_unknown_call = 0
        self.dropped_replay = 0
        self.dropped_no_peer = 0       # the other member has not said HELLO yet
        self.dropped_error = 0         # a bug: logged with a traceback
        self.relayed = 0
        self.hellos = 0

    def startProtocol(self) -> None:  # noqa: N802
        """Ask for a large receive buffer: audio arrives in bursts from many calls, and
        the kernel's default (about 200 KiB) drops packets before the relay sees them."""
        handle = getattr(self.transport, "socket", None)
        self.dual_stack = getattr(handle, "family", None) == socket.AF_INET6
        if handle is not None:
            try:
                handle.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            except OSError:
                self.log.warn("Could not enlarge the relay's receive buffer")

    def stats(self) -> dict[str, int]:
        """The counters, for logs and the admin side."""
        return {
            "calls": len(self.table),
            "relayed": self.relayed,
            "hellos": self.hellos,
            "dropped_malformed": self.dropped_malformed,
            "dropped_auth": self.dropped_auth,
            "dropped_unknown_call": self.dropped_unknown_call,
            "dropped_replay": self.dropped_replay,
            "dropped_no_peer": self.dropped_no_peer,
            "dropped_rate": self.dropped_rate,
            "dropped_error": self.dropped_error,
        }

    def datagramReceived(self, data: bytes, addr: Endpoint,  # noqa: N802
                         link: Any = None) -> None:
        """One packet from ``addr`` (over UDP, or over the TCP connection ``link``)."""
        try:
            ptype = _FORWARDED.get(data[0]) if data else None
            if ptype is not None:
                self._forward(data, self._plain(addr), ptype, link)
            elif data and data[0] == _HELLO_BYTE:
                self._hello(data, self._plain(addr), link)
            else:
                self.dropped_malformed += 1
        except MalformedPacket:
            self.dropped_malformed += 1
        except Exception:
            self.dropped_error += 1
            self.log.failure("relay: unexpected error on a datagram")

    def _plain(self, addr: Any) -> Endpoint:
        host = addr[0]
        if host.startswith("::ffff:"):
            return media.unmap_endpoint((host, addr[1]))
        return (host, addr[1])

    def _send(self, call: RelayCall, member: int, data: bytes) -> None:
        """Write to a member wherever it is bound: its TCP link, or its UDP endpoint."""
        link = call.links[member]
        if link is not None:
            if link.transport is not None and link.connected:
                link.sendString(data)
            return
        endpoint = call.endpoints[member]
        assert endpoint is not None
        self.transport.write(data, media.map_endpoint(endpoint) if self.dual_stack
                             else endpoint)

    def _forward(self, data: bytes, addr: Endpoint, ptype: int, link: Any) -> None:
        if len(data) < MIN_SEALED or len(data) > MAX_DATAGRAM:
            self.dropped_malformed += 1
            return
        _, sender, _, _, call_id, seq, _ = HEADER.unpack_from(data)
        call = self.table.calls.get(call_id)
        if call is None:
            self.dropped_unknown_call += 1
            return
        if sender > 1:
            self.dropped_malformed += 1
            return
        if call.endpoints[sender] != addr or call.links[sender] is not link:
            self.dropped_auth += 1
            return
        window = call.windows[sender * 8 + ptype]
        if not window.check(seq):
            self.dropped_replay += 1
            return
        if call.cipher.open(data) is None:
            self.dropped_auth += 1
            return
        window.update(seq)
        if call.endpoints[1 - sender] is None:
            self.dropped_no_peer += 1
            return
        self._send(call, 1 - sender, data)
        call.relayed += 1
        self.relayed += 1

    def _hello(self, data: bytes, addr: Endpoint, link: Any) -> None:
        allowed, _ = self.hello_limit.check(addr[0])
        if not allowed:
            self.dropped_rate += 1
            return
        hello = media.parse_hello(data)
        call = self.table.calls.get(hello.call_id)
        if call is None:
            self.dropped_unknown_call += 1
            return
        member = hello.member
        if not media.verify_signed(data, call.tokens[member]):
            self.dropped_auth += 1
            return
        endpoint = (addr[0], addr[1])
        moved = call.endpoints[member] != endpoint or call.links[member] is not link
        if hello.counter <= call.hello_counters[member] and moved:
            # an old HELLO replayed from elsewhere must not move the member's endpoint
            self.dropped_replay += 1
            return
        self.hellos += 1
        call.hello_counters[member] = max(call.hello_counters[member], hello.counter)
        changed = moved or call.locals[member] != hello.endpoints
        call.endpoints[member] = endpoint
        call.links[member] = link
        call.locals[member] = hello.endpoints
        self._send_ack(call, member, hello.counter, len(data))
        if changed:
            peer = 1 - member
            if call.endpoints[peer] is not None:
                # tell the peer at once rather than at its next keepalive HELLO; its
                # address was proven by its own signed HELLO
                self._send_ack(call, peer, call.hello_counters[peer], media.MAX_DATAGRAM)
            self.table.learned(call, member)

    def _send_ack(self, call: RelayCall, member: int, counter: int, budget: int) -> None:
        """A HELLO_ACK to ``member`` of at most ``budget`` bytes (peer endpoints are left
        out until it fits: never answer with more than was received)."""
        endpoint = call.endpoints[member]
        assert endpoint is not None
        peers = call.candidates_of(1 - member)[:media.MAX_ENDPOINTS + 1]
        present = call.endpoints[1 - member] is not None
        while True:
            packet = media.encode_hello_ack(call.call_id, member, max(counter, 0),
                                            call.tokens[member], endpoint,
                                            peer_present=present, peer_endpoints=peers)
            if len(packet) <= budget or not peers:
                break
            peers = peers[:-1]
        if len(packet) > budget:
            return
        self._send(call, member, packet)
