"""The client's network side of one call: verified relay and direct paths, sealed packets.

`MediaSession` is a DatagramProtocol on its own UDP socket. Modelled on ICE (RFC 8445)
with the server's relay as the TURN server and its HELLO_ACK as the server-reflexive
answer:

1. **HELLO** to the relay at once, then again with exponential back-off (50 ms doubling,
   at most 1 s apart) until a HELLO_ACK comes back, for up to 30 s; then a keepalive
   every 15 s so the relay keeps our NAT binding. The HELLO_ACK tells us our public
   endpoint as the relay saw it (server-reflexive) and the peer's endpoints (its public
   one, then its host ones), which become candidates. `kick` restarts the back-off (the
   engine calls it when the peer has gone quiet: after a network change the relay must
   learn our new binding fast).
2. **Checks**: every candidate gets PROBEs with the same kind of back-off (50 ms doubling
   to 500 ms, 8 of them); both sides probe at once, which is what opens both NATs. A
   candidate becomes the **direct** path only when its PROBE_ACK comes back; a PROBE
   from an endpoint we did not know makes it a (peer-reflexive) candidate.
3. **The relay path** counts only once a HELLO_ACK said the relay knows the peer
   (PEER_PRESENT); the session settles on it when no direct check succeeded within
   ``direct_timeout`` of that moment (1 s: the relay carries audio from the start
   anyway, so the fallback costs nothing). On the relay path the candidates are checked
   again every ``reprobe_interval``.
4. **UDP blocked**: when no HELLO_ACK came over UDP within ``tcp_after`` and the server
   offers a TCP relay port, the session also connects there and says HELLO over TCP
   (each packet framed with a 2-byte length, like TURN over TCP); the first link the
   relay answers on carries everything to the relay from then on.
5. The direct path has a keepalive PROBE every 0.5 s; 2 s without a PROBE_ACK and the
   path falls back to the relay.

Audio goes to the direct endpoint on the ``direct`` path and to the relay otherwise.
Incoming sealed packets are accepted from any address (the call key authenticates them;
a replay window per packet type refuses repeats). All timing runs on the injected
reactor (a `task.Clock` in tests).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from messenger.client.calls.params import MAX_CANDIDATES, CallParams, call_params_from_jim
from messenger.client.calls.paths import (
    CONNECTING,
    DIRECT,
    RELAY,
    Backoff,
    ReceivedAudio,
    SessionTiming,
    local_endpoints,
)
from messenger.client.calls.relay_link import RelayLink
from messenger.client.calls.sending import MediaSending
from messenger.wire import media
from messenger.wire import media_payloads as payloads
from messenger.wire.media import (
    AUDIO,
    BYE,
    HELLO_ACK,
    PROBE,
    PROBE_ACK,
    REPORT,
    SEALED_TYPES,
    CallCipher,
    Endpoint,
    MalformedPacket,
    ReplayWindow,
)

__all__ = ["CONNECTING", "DIRECT", "RELAY", "CallParams", "MediaSession", "ReceivedAudio",
           "SessionTiming", "call_params_from_jim"]

class MediaSession(MediaSending, DatagramProtocol):
    """One member's media endpoint for one call."""

    log = Logger()

    def __init__(self, params: CallParams, reactor: Any, *,
                 timing: SessionTiming | None = None,
                 on_audio: Callable[[ReceivedAudio], None] | None = None,
                 on_path: Callable[[str], None] | None = None,
                 on_bye: Callable[[], None] | None = None,
                 on_report: Callable[[payloads.Report], None] | None = None,
                 on_heard: Callable[[], None] | None = None,
                 advertise_local: bool = True) -> None:
        self.params = params
        self._clock = reactor
        self.timing = timing or SessionTiming()
        self.on_audio = on_audio
        self.on_path = on_path
        self.on_bye = on_bye
        self.on_report = on_report
        self.on_heard = on_heard
        self.advertise_local = advertise_local
        self._cipher = CallCipher(params.key)
        self._call_id = params.call_id
        self._me = params.member
        self._peer = params.peer
        self.relay_address: Endpoint = (params.relay[0], params.relay[1])
        self._ipv6 = False
        self.path = CONNECTING
        self.direct_endpoint: Endpoint | None = None
        self.public_endpoint: Endpoint | None = None
        self.local_endpoints: tuple[Endpoint, ...] = ()
        self.hello_acked = False
        self.relay_ready = False          # the relay knows the peer: relaying works
        self.relay_ready_at: float | None = None
        self.candidates: list[Endpoint] = []
        self._probes: dict[Endpoint, Backoff] = {}
        self._started_at = 0.0
        self._hello_counter = 0
        self._hello: Backoff | None = None
        self._hello_since = 0.0
        self._keepalive = False              # HELLO answered: only keepalives now
        self._last_ack = 0.0
        self._next_keepalive = 0.0
        self._next_reprobe = 0.0
        self._loop: LoopingCall | None = None
        self._closing = False
        self._seq = {ptype: 0 for ptype in SEALED_TYPES}
        self._windows = {ptype: ReplayWindow() for ptype in SEALED_TYPES}
        self.tcp: RelayLink | None = None      # the TCP link to the relay, once up
        self.over_tcp = False                  # the relay answered over TCP: use it
        self._tcp_tried = False
        self._connector: Any = None
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
        self.hellos_sent = 0
        self.rtt_ms: float | None = None

    # -- lifecycle --------------------------------------------------------------------

    def listen(self, interface: str = "", port: int = 0) -> Any:
        """Open the UDP socket on the injected reactor (IPv6 when the relay is IPv6)."""
        if not interface:
            interface = "::" if ":" in self.relay_address[0] else "0.0.0.0"  # noqa: S104
        return self._clock.listenUDP(port, self, interface=interface)

    def startProtocol(self) -> None:  # noqa: N802
        now = self._clock.seconds()
        self._started_at = now
        host = self.transport.getHost()
        self._ipv6 = ":" in host.host
        if self.advertise_local:
            self.local_endpoints = local_endpoints(host.host, host.port,
                                                    self.relay_address[0])
        self.kick(now)
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self._clock
        self._loop.start(self.timing.tick, now=True)
        self.add_candidates(self.params.peer_candidates)

    def stopProtocol(self) -> None:  # noqa: N802
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def close(self) -> Deferred[None]:
        """Say BYE on every path and close the socket and the TCP link."""
        if self._closing or self.transport is None:
            return succeed(None)
        if self.direct_endpoint is not None:
            self._send_sealed(BYE, self.direct_endpoint)
        self._send_sealed(BYE, self.relay_address)
        self._closing = True
        if self.tcp is not None:
            self.tcp.transport.loseConnection()
        elif self._connector is not None:
            self._connector.disconnect()
        return maybeDeferred(self.transport.stopListening)

    def kick(self, now: float | None = None) -> None:
        """Say HELLO again from the first back-off step (a blip, a new network)."""
        now = self._clock.seconds() if now is None else now
        self._hello = Backoff(self.timing.hello_first, self.timing.hello_max, now)
        self._hello_since = now
        self._keepalive = False

    # -- candidates and timers --------------------------------------------------------

    def add_candidates(self, endpoints: tuple[Endpoint, ...] | list[Endpoint]) -> None:
        """Learn endpoints of the peer; unless on the direct path, check the new ones."""
        fresh = []
        own = set(self.local_endpoints)
        if self.public_endpoint is not None:
            own.add(self.public_endpoint)
        for endpoint in endpoints:
            endpoint = (endpoint[0], endpoint[1])
            if (endpoint in self.candidates or endpoint in own
                    or endpoint == self.relay_address
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
            self._probes[endpoint] = Backoff(self.timing.probe_first, self.timing.probe_max,
                                              now)
        self._run_probes(now)

    def _run_probes(self, now: float) -> None:
        for endpoint, plan in list(self._probes.items()):
            if plan.fire(now):
                self._send_probe(endpoint)
                if plan.sent >= self.timing.probes_per_round:
                    del self._probes[endpoint]

    def _tick(self) -> None:
        try:
            self._step(self._clock.seconds())
        except Exception:
            self.log.failure("media session timer failed")

    def _step(self, now: float) -> None:
        if self._closing:
            return
        self._hello_step(now)
        if self._probes:
            self._run_probes(now)
        timing = self.timing
        if self.path == CONNECTING:
            ready_at = self.relay_ready_at
            if ready_at is not None and (now - ready_at >= timing.direct_timeout
                                         or (not self.candidates and not self._probes)):
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
            if self.candidates and not self.over_tcp:
                self._start_round(list(self.candidates))

    def _hello_step(self, now: float) -> None:
        hello = self._hello
        if hello is None:
            return
        if self._keepalive:
            if hello.fire(now):
                self._send_hello()
            return
        if now - self._hello_since >= self.timing.hello_give_up:
            self.log.warn("relay {relay} does not answer HELLO", relay=self.relay_address)
            self._hello = None
            return
        if (not self._tcp_tried and not self.hello_acked
                and now - self._hello_since >= self.timing.tcp_after):
            self._try_tcp()
        if hello.fire(now):
            self._send_hello()

    def _set_path(self, path: str) -> None:
        if path == self.path:
            return
        self.path = path
        self.path_changes += 1
        self.log.info("call {call} media path: {path}", call=self._call_id.hex(), path=path)
        if self.on_path is not None:
            self.on_path(path)

    # -- receiving --------------------------------------------------------------------

    def datagramReceived(self, data: bytes, addr: Any,  # noqa: N802
                         link: RelayLink | None = None) -> None:
        try:
            if data and data[0] == _HELLO_ACK_BYTE:
                self._hello_ack(data, addr, link)
            else:
                self._sealed(data, addr)
        except MalformedPacket:
            self.dropped_malformed += 1
        except Exception:
            self.dropped_malformed += 1
            self.log.failure("media session: unexpected error on a datagram")

    def _hello_ack(self, data: bytes, addr: Any, link: RelayLink | None) -> None:
        if (addr[0], addr[1]) != self.relay_address:
            self.dropped_foreign += 1
            return
        ack = media.parse_hello_ack(data)
        if ack.call_id != self._call_id or ack.member != self._me:
            self.dropped_foreign += 1
            return
        if not media.verify_signed(data, self.params.token):
            self.dropped_auth += 1
            return
        now = self._clock.seconds()
        if link is not None and not self.over_tcp and not self.hello_acked:
            self.over_tcp = True
            self.log.info("the relay answers over TCP: media goes that way")
        if not self._keepalive:
            self.hello_acked = True
            self._keepalive = True
            keepalive = self.timing.hello_keepalive
            self._hello = Backoff(keepalive, keepalive, now + keepalive)
        self.public_endpoint = ack.observed
        if ack.peer_present and not self.relay_ready:
            self.relay_ready_at = now
        self.relay_ready = ack.peer_present
        if not self.over_tcp:
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
        via_relay = source == self.relay_address
        self.packets_received += 1
        self.bytes_received += len(data)
        if self.on_heard is not None:
            self.on_heard()
        if ptype == AUDIO:
            if via_relay:
                self.received_relay += 1
            else:
                self.received_direct += 1
            if self.on_audio is not None:
                self.on_audio(ReceivedAudio(header.seq, header.stamp, header.codec,
                                            header.flags, payload, via_relay))
        elif ptype == REPORT:
            if self.on_report is not None:
                self.on_report(payloads.decode_report(payload))
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
        sent_at = payloads.probe_time(payload)
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
            "hello_acked": self.hello_acked,
            "over_tcp": self.over_tcp,
            "hellos_sent": self.hellos_sent,
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
