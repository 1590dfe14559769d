"""The client's UDP side of one call: relay HELLO, direct-path probing, sealed audio.

`MediaSession` is a DatagramProtocol on its own UDP socket. Once listening it

1. says HELLO to the relay (signed with this member's token) until a HELLO_ACK comes
   back, at most ``hello_attempts`` times, then again every ``hello_keepalive`` seconds
   so the relay keeps our NAT binding and learns a changed one; the HELLO_ACK tells us
   our public endpoint and the peer's endpoints (public and local), which become
   candidates;
2. probes every candidate of the peer directly (``probes_per_round`` PROBEs each,
   ``probe_interval`` apart); the first PROBE_ACK makes the path ``direct`` to the
   endpoint that answered. Without one within ``direct_timeout`` of the start, the path
   is ``relay``. A PROBE from an endpoint we did not know makes it a candidate too;
3. on the direct path sends a keepalive PROBE every ``direct_keepalive`` seconds; when no
   PROBE_ACK came back for ``direct_dead_after`` seconds it falls back to the relay, and
   while on the relay it probes all candidates again every ``reprobe_interval``.

Audio goes to the direct endpoint on the ``direct`` path and to the relay otherwise
(including while ``connecting``). Incoming sealed packets are accepted from any address:
the call key authenticates them, and a replay window per packet type refuses repeats.
All timing runs on the injected reactor (a `task.Clock` in tests).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from messenger.wire import media
from messenger.wire.media import (
    AUDIO,
    BYE,
    CALL_ID_SIZE,
    HELLO_ACK,
    KEY_SIZE,
    MAX_SEQ,
    PROBE,
    PROBE_ACK,
    SEALED_TYPES,
    TOKEN_SIZE,
    CallCipher,
    Endpoint,
    MalformedPacket,
    ReplayWindow,
)

CONNECTING = "connecting"
DIRECT = "direct"
RELAY = "relay"

MAX_CANDIDATES = 8


@dataclass(frozen=True)
class CallParams:
    """Everything signalling hands a client for one call."""

    call_id: bytes                       # 8 bytes, the same for both members and the relay
    member: int                          # this client's index in the call: 0 or 1
    key: bytes                           # 32-byte AES-256-GCM call key (both members + relay)
    token: bytes                         # 32-byte relay token of this member only
    relay: Endpoint                      # the relay's UDP address (IP literal, port)
    peer_candidates: tuple[Endpoint, ...] = ()  # the peer's endpoints, if signalling has them
    codec: str = "pcm"                   # the negotiated codec for what we send

    def __post_init__(self) -> None:
        if len(self.call_id) != CALL_ID_SIZE:
            raise ValueError(f"call_id must have {CALL_ID_SIZE} bytes")
        if self.member not in (0, 1):
            raise ValueError("member must be 0 or 1")
        if len(self.key) != KEY_SIZE:
            raise ValueError(f"key must have {KEY_SIZE} bytes")
        if len(self.token) != TOKEN_SIZE:
            raise ValueError(f"token must have {TOKEN_SIZE} bytes")
        _check_endpoint(self.relay, "relay")
        for endpoint in self.peer_candidates:
            _check_endpoint(endpoint, "peer candidate")

    @property
    def peer(self) -> int:
        return 1 - self.member


def _check_endpoint(endpoint: Any, what: str) -> None:
    if (not isinstance(endpoint, tuple) or len(endpoint) != 2
            or not isinstance(endpoint[0], str) or not isinstance(endpoint[1], int)
            or not 0 < endpoint[1] < 65536):
        raise ValueError(f"{what} must be a (host, port) pair")


def _endpoint(value: Any, what: str) -> Endpoint:
    if isinstance(value, list | tuple) and len(value) == 2:
        endpoint = (value[0], value[1])
        _check_endpoint(endpoint, what)
        return endpoint  # type: ignore[return-value]
    raise ValueError(f"{what} must be a [host, port] pair")


def call_params_from_jim(message: Mapping[str, Any]) -> CallParams:
    """CallParams from a ``call_start`` push (field names as proposed in docs/CALLS.md).

    ``call_id`` is hex, ``key`` and ``token`` are base64, ``relay`` is ``[host, port]``,
    ``peer_endpoints`` a list of such pairs (optional), ``codec`` a codec name.
    Raises ValueError on anything malformed.
    """
    try:
        call_id = bytes.fromhex(message["call_id"])
        key = base64.b64decode(message["key"], validate=True)
        token = base64.b64decode(message["token"], validate=True)
        member = message["member"]
        if type(member) is not int:
            raise ValueError("member must be an integer")
        relay = _endpoint(message["relay"], "relay")
        peers = tuple(_endpoint(e, "peer endpoint")
                      for e in message.get("peer_endpoints", ())[:MAX_CANDIDATES])
        codec = message.get("codec", "pcm")
        if not isinstance(codec, str):
            raise ValueError("codec must be a string")
    except (KeyError, TypeError, binascii.Error) as exc:
        raise ValueError(f"bad call_start: {exc!r}") from None
    return CallParams(call_id, member, key, token, relay, peers, codec)


@dataclass(frozen=True)
class SessionTiming:
    """The clocks of path discovery, in seconds."""

    tick: float = 0.05               # how often the session looks at its timers
    hello_interval: float = 0.25     # HELLO retry while unanswered ...
    hello_attempts: int = 12         # ... this many times in a burst
    hello_keepalive: float = 15.0    # HELLO again once answered (and after a failed burst)
    probe_interval: float = 0.2      # between PROBEs to one candidate ...
    probes_per_round: int = 5        # ... this many per round
    direct_timeout: float = 1.0      # no PROBE_ACK this long after start: use the relay
    direct_keepalive: float = 0.5    # keepalive PROBE on the direct path
    direct_dead_after: float = 2.0   # no PROBE_ACK this long: direct path is dead
    reprobe_interval: float = 5.0    # on the relay: probe the candidates again


class ReceivedAudio(NamedTuple):
    seq: int
    stamp: int
    codec: int
    payload: bytes
    via_relay: bool


class MediaSession(DatagramProtocol):
    """One member's UDP media endpoint for one call."""

    log = Logger()

    def __init__(self, params: CallParams, reactor: Any, *,
                 timing: SessionTiming | None = None,
                 on_audio: Callable[[ReceivedAudio], None] | None = None,
                 on_path: Callable[[str], None] | None = None,
                 on_bye: Callable[[], None] | None = None,
                 advertise_local: bool = True) -> None:
        self.params = params
        self._clock = reactor
        self.timing = timing or SessionTiming()
        self.on_audio = on_audio
        self.on_path = on_path
        self.on_bye = on_bye
        self.advertise_local = advertise_local
        self._cipher = CallCipher(params.key)
        self._call_id = params.call_id
        self._me = params.member
        self._peer = params.peer
        self._relay: Endpoint = (params.relay[0], params.relay[1])
        self._ipv6 = False
        # path state
        self.path = CONNECTING
        self.direct_endpoint: Endpoint | None = None
        self.public_endpoint: Endpoint | None = None
        self.local_endpoints: tuple[Endpoint, ...] = ()
        self.hello_acked = False
        self.relay_ready = False         # the relay knows the peer: relaying works
        self.candidates: list[Endpoint] = []
        self._probes: dict[Endpoint, list[float]] = {}  # endpoint -> [left, next time]
        self._started_at = 0.0
        self._hello_counter = 0
        self._hello_burst = 0
        self._next_hello = 0.0
        self._last_ack = 0.0
        self._next_keepalive = 0.0
        self._next_reprobe = 0.0
        self._loop: LoopingCall | None = None
        self._closing = False
        self._seq = {ptype: 0 for ptype in SEALED_TYPES}
        self._windows = {ptype: ReplayWindow() for ptype in SEALED_TYPES}
        # counters
        self.packets_sent = 0
        self.bytes_sent = 0
        self.packets_received = 0
        self.bytes_received = 0
        self.received_direct = 0
        self.received_relay = 0
        self.dropped_malformed = 0
        self.dropped_auth = 0
        self.dropped_replay = 0
        self.dropped_foreign = 0
        self.send_errors = 0
        self.path_changes = 0
        self.rtt_ms: float | None = None

    # -- lifecycle --------------------------------------------------------------------

    def listen(self, interface: str = "", port: int = 0) -> Any:
        """Open the UDP socket on the injected reactor (IPv6 when the relay is IPv6)."""
        if not interface:
            interface = "::" if ":" in self._relay[0] else "0.0.0.0"  # noqa: S104
        return self._clock.listenUDP(port, self, interface=interface)

    def startProtocol(self) -> None:  # noqa: N802
        now = self._clock.seconds()
        self._started_at = now
        host = self.transport.getHost()
        self._ipv6 = ":" in host.host
        if self.advertise_local:
            self.local_endpoints = _local_endpoints(host.host, host.port, self._relay[0])
        self._next_hello = now
        self._next_reprobe = now + self.timing.direct_timeout + self.timing.reprobe_interval
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self._clock
        self._loop.start(self.timing.tick, now=True)
        self.add_candidates(self.params.peer_candidates)

    def stopProtocol(self) -> None:  # noqa: N802
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def close(self) -> Deferred[None]:
        """Say BYE on both paths and close the socket."""
        if self._closing or self.transport is None:
            return succeed(None)
        self._closing = True
        if self.direct_endpoint is not None:
            self._send_sealed(BYE, self.direct_endpoint)
        self._send_sealed(BYE, self._relay)
        return maybeDeferred(self.transport.stopListening)

    # -- sending ----------------------------------------------------------------------

    def send_audio(self, stamp: int, payload: bytes, codec: int) -> bool:
        """Seal one frame and send it on the current path; False if it was not sent."""
        seq = self._seq[AUDIO]
        if seq > MAX_SEQ or self._closing or self.transport is None:
            return False
        self._seq[AUDIO] = seq + 1
        packet = self._cipher.seal(AUDIO, self._me, self._call_id, seq, stamp & MAX_SEQ,
                                   payload, codec)
        target = self.direct_endpoint if self.path == DIRECT else self._relay
        return self._send(packet, target)  # type: ignore[arg-type]

    def _send(self, packet: bytes, target: Endpoint) -> bool:
        try:
            self.transport.write(packet, target)
        except Exception as exc:  # unreachable family, EPERM, closed socket
            self.send_errors += 1
            self.log.debug("media send to {target} failed: {error}", target=target, error=exc)
            return False
        self.packets_sent += 1
        self.bytes_sent += len(packet)
        return True

    def _send_sealed(self, ptype: int, target: Endpoint, stamp: int = 0,
                     payload: bytes = b"") -> bool:
        seq = self._seq[ptype]
        if seq > MAX_SEQ:
            return False
        self._seq[ptype] = seq + 1
        return self._send(self._cipher.seal(ptype, self._me, self._call_id, seq, stamp,
                                            payload), target)

    def _send_hello(self) -> None:
        self._hello_counter += 1
        packet = media.encode_hello(self._call_id, self._me, self._hello_counter,
                                    self.params.token, self.local_endpoints)
        self._send(packet, self._relay)

    def _send_probe(self, target: Endpoint) -> None:
        self._send_sealed(PROBE, target, 0, media.probe_payload(self._clock.seconds()))

    # -- candidates and timers --------------------------------------------------------

    def add_candidates(self, endpoints: tuple[Endpoint, ...] | list[Endpoint]) -> None:
        """Learn endpoints of the peer; unless on the direct path, probe the new ones."""
        fresh = []
        own = set(self.local_endpoints)
        if self.public_endpoint is not None:
            own.add(self.public_endpoint)
        for endpoint in endpoints:
            endpoint = (endpoint[0], endpoint[1])
            if (endpoint in self.candidates or endpoint in own or endpoint == self._relay
                    or (":" in endpoint[0]) != self._ipv6
                    or len(self.candidates) >= MAX_CANDIDATES):
                continue
            self.candidates.append(endpoint)
            fresh.append(endpoint)
        if fresh and self.path != DIRECT and not self._closing:
            self._start_round(fresh)

    def _start_round(self, endpoints: list[Endpoint]) -> None:
        now = self._clock.seconds()
        for endpoint in endpoints:
            self._probes[endpoint] = [float(self.timing.probes_per_round), now]
        self._run_probes(now)

    def _run_probes(self, now: float) -> None:
        for endpoint, plan in list(self._probes.items()):
            if now >= plan[1]:
                self._send_probe(endpoint)
                plan[0] -= 1
                plan[1] = now + self.timing.probe_interval
                if plan[0] <= 0:
                    del self._probes[endpoint]

    def _tick(self) -> None:
        try:
            self._step(self._clock.seconds())
        except Exception:
            self.log.failure("media session timer failed")

    def _step(self, now: float) -> None:
        timing = self.timing
        if self._closing:
            return
        if now >= self._next_hello:
            if self.hello_acked:
                self._send_hello()
                self._next_hello = now + timing.hello_keepalive
            elif self._hello_burst < timing.hello_attempts:
                self._hello_burst += 1
                self._send_hello()
                self._next_hello = now + timing.hello_interval
            else:
                self.log.warn("relay {relay} does not answer HELLO", relay=self._relay)
                self._hello_burst = 0
                self._next_hello = now + timing.hello_keepalive
        if self._probes:
            self._run_probes(now)
        if self.path == CONNECTING:
            if now - self._started_at >= timing.direct_timeout:
                self._set_path(RELAY)
                self._next_reprobe = now + timing.reprobe_interval
        elif self.path == DIRECT:
            if now - self._last_ack >= timing.direct_dead_after:
                self.log.info("direct path to {endpoint} died; using the relay",
                              endpoint=self.direct_endpoint)
                self.direct_endpoint = None
                self._set_path(RELAY)
                self._next_reprobe = now + timing.reprobe_interval
            elif now >= self._next_keepalive and self.direct_endpoint is not None:
                self._send_probe(self.direct_endpoint)
                self._next_keepalive = now + timing.direct_keepalive
        elif now >= self._next_reprobe:
            self._next_reprobe = now + timing.reprobe_interval
            if self.candidates:
                self._start_round(list(self.candidates))

    def _set_path(self, path: str) -> None:
        if path == self.path:
            return
        self.path = path
        self.path_changes += 1
        self.log.info("call {call} media path: {path}", call=self._call_id.hex(), path=path)
        if self.on_path is not None:
            self.on_path(path)

    # -- receiving --------------------------------------------------------------------

    def datagramReceived(self, data: bytes, addr: Any) -> None:  # noqa: N802
        try:
            if data and data[0] == _HELLO_ACK_BYTE:
                self._hello_ack(data, addr)
            else:
                self._sealed(data, addr)
        except MalformedPacket:
            self.dropped_malformed += 1
        except Exception:
            self.dropped_malformed += 1
            self.log.failure("media session: unexpected error on a datagram")

    def _hello_ack(self, data: bytes, addr: Any) -> None:
        if (addr[0], addr[1]) != self._relay:
            self.dropped_foreign += 1
            return
        ack = media.parse_hello_ack(data)
        if ack.call_id != self._call_id or ack.member != self._me:
            self.dropped_foreign += 1
            return
        if not media.verify_signed(data, self.params.token):
            self.dropped_auth += 1
            return
        if not self.hello_acked:
            self.hello_acked = True
            self._next_hello = self._clock.seconds() + self.timing.hello_keepalive
        self.public_endpoint = ack.observed
        self.relay_ready = ack.peer_present
        self.add_candidates(ack.peer_endpoints)

    def _sealed(self, data: bytes, addr: Any) -> None:
        header = media.parse_header(data)
        if header.call_id != self._call_id or header.sender != self._peer:
            self.dropped_foreign += 1
            return
        ptype = header.ptype
        window = self._windows[ptype]
        if not window.check(header.seq):
            self.dropped_replay += 1
            return
        payload = self._cipher.open(data)
        if payload is None:
            self.dropped_auth += 1
            return
        window.update(header.seq)
        source = (addr[0], addr[1])
        via_relay = source == self._relay
        self.packets_received += 1
        self.bytes_received += len(data)
        if ptype == AUDIO:
            if via_relay:
                self.received_relay += 1
            else:
                self.received_direct += 1
            if self.on_audio is not None:
                self.on_audio(ReceivedAudio(header.seq, header.stamp, header.codec, payload,
                                            via_relay))
        elif ptype == PROBE:
            self._send_sealed(PROBE_ACK, source, header.seq, payload)
            if not via_relay:
                self.add_candidates((source,))
        elif ptype == PROBE_ACK:
            if not via_relay:
                self._probe_ack(source, payload)
        elif ptype == BYE:
            if self.on_bye is not None:
                self.on_bye()

    def _probe_ack(self, source: Endpoint, payload: bytes) -> None:
        now = self._clock.seconds()
        sent_at = media.probe_time(payload)
        if self.path == DIRECT and source != self.direct_endpoint:
            return
        if sent_at is not None and 0 <= now - sent_at < 60:
            self.rtt_ms = round((now - sent_at) * 1000.0, 2)
        self._last_ack = now
        if self.path != DIRECT:
            self.direct_endpoint = source
            self._probes.clear()
            self._next_keepalive = now + self.timing.direct_keepalive
            self._set_path(DIRECT)

    # -- state ------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "direct_endpoint": self.direct_endpoint,
            "public_endpoint": self.public_endpoint,
            "relay_ready": self.relay_ready,
            "packets_sent": self.packets_sent,
            "bytes_sent": self.bytes_sent,
            "packets_received": self.packets_received,
            "bytes_received": self.bytes_received,
            "received_direct": self.received_direct,
            "received_relay": self.received_relay,
            "dropped_malformed": self.dropped_malformed,
            "dropped_auth": self.dropped_auth,
            "dropped_replay": self.dropped_replay,
            "dropped_foreign": self.dropped_foreign,
            "send_errors": self.send_errors,
            "path_changes": self.path_changes,
            "rtt_ms": self.rtt_ms,
        }


_HELLO_ACK_BYTE = media.type_byte(HELLO_ACK)


def _local_endpoints(host: str, port: int, relay_host: str) -> tuple[Endpoint, ...]:
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
