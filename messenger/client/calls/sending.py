"""How a media session sends: sealed packets on the current path, HELLOs, PROBEs, and the
TCP fallback to the relay.

A mixin of `media.MediaSession` (the way `server.keepalive` is one of the server's
protocol): the session holds the state, this half writes packets and counts them, the
session's own half discovers paths and receives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from messenger.client.calls.paths import DIRECT
from messenger.client.calls.relay_link import LinkFactory, RelayLink
from messenger.wire import media
from messenger.wire import media_payloads as payloads
from messenger.wire.media import AUDIO, MAX_SEQ, PROBE, REPORT, CallCipher, Endpoint

if TYPE_CHECKING:
    from messenger.client.calls.params import CallParams


class MediaSending:
    """The sending half of `media.MediaSession`."""

    # set by MediaSession.__init__
    params: CallParams
    log: Any
    transport: Any
    _clock: Any
    _cipher: CallCipher
    _call_id: bytes
    _me: int
    _seq: dict[int, int]
    _closing: bool
    path: str
    direct_endpoint: Endpoint | None
    relay_address: Endpoint
    tcp: RelayLink | None
    over_tcp: bool
    hello_acked: bool
    local_endpoints: tuple[Endpoint, ...]
    _tcp_tried: bool
    _connector: Any
    _hello_counter: int
    hellos_sent: int
    packets_sent: int
    bytes_sent: int
    send_errors: int
    kick: Callable[[], None]

    # -- sending ----------------------------------------------------------------------

    def send_audio(self, stamp: int, payload: bytes, codec: int, flags: int = 0) -> bool:
        """Seal one frame and send it on the current path; False if it was not sent."""
        seq = self._seq[AUDIO]
        if seq > MAX_SEQ or self._closing or self.transport is None:
            return False
        self._seq[AUDIO] = seq + 1
        packet = self._cipher.seal(AUDIO, self._me, self._call_id, seq, stamp & MAX_SEQ,
                                   payload, codec, flags)
        return self._send(packet, self._audio_target())

    def send_report(self, report: payloads.Report) -> bool:
        """Tell the peer what we receive (on the audio path)."""
        if self._closing or self.transport is None:
            return False
        return self._send_sealed(REPORT, self._audio_target(), 0, payloads.encode_report(report))

    def _audio_target(self) -> Endpoint:
        if self.path == DIRECT and self.direct_endpoint is not None:
            return self.direct_endpoint
        return self.relay_address

    def _send(self, packet: bytes, target: Endpoint) -> bool:
        try:
            if self.over_tcp and target == self.relay_address and self.tcp is not None:
                self.tcp.sendString(packet)
            else:
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
        self.hellos_sent += 1
        packet = media.encode_hello(self._call_id, self._me, self._hello_counter,
                                    self.params.token, self.local_endpoints)
        if not self.over_tcp:
            self._send(packet, self.relay_address)
        if self.tcp is not None:
            self.tcp.sendString(packet)

    def _send_probe(self, target: Endpoint) -> None:
        self._send_sealed(PROBE, target, 0, payloads.probe_payload(self._clock.seconds()))

    # -- TCP fallback -----------------------------------------------------------------

    def _try_tcp(self) -> None:
        self._tcp_tried = True
        port = self.params.relay_tcp
        if port is None:
            return
        self.log.info("no answer from the relay over UDP; trying TCP port {port}", port=port)
        self._connector = self._clock.connectTCP(self.relay_address[0], port,
                                                 LinkFactory(self), timeout=5)

    def tcp_up(self, link: RelayLink) -> None:
        if self._closing:
            link.transport.loseConnection()
            return
        self.tcp = link
        self._send_hello()

    def tcp_down(self, link: RelayLink) -> None:
        if link is self.tcp:
            self.tcp = None
            if self.over_tcp and not self._closing:
                self.over_tcp = False
                self.hello_acked = False
                self._tcp_tried = False
                self.kick()
