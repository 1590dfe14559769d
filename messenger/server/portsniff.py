"""Tell a client that speaks the wrong protocol for a port so, within a second.

* **Plain JIM to the TLS port.** Our protocol has the server speak first, so a plain
  client on the TLS port and the TLS layer waiting for its ClientHello would wait on
  each other until a timeout ("no data from the server for 20 s"). The TLS port
  therefore listens with `TlsPortFactory`: a connection whose first byte is a TLS
  handshake record (0x16) is handed to the TLS layer at once; one that is silent for
  `SILENCE` seconds, or starts with anything else, gets one plain JIM frame, a 400 that
  says this port speaks TLS, and is closed. The plain client shows that as the server's
  refusal. A real TLS client sends its ClientHello as soon as it is connected, so the
  wait costs it nothing.
* **TLS to the plain port.** The TLS client reads our plain challenge frame as a broken
  TLS record and fails at once ("the server did not answer with TLS", see
  `messenger.client.tls`); the server sees the ClientHello as the length prefix of a
  frame of about 369 MB, which `is_tls_hello` recognises, so the log says what happened
  instead of "frame too large".
"""

from __future__ import annotations

import json
import struct
from typing import Any

from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory

from messenger.wire import codes

SILENCE = 0.5                   # seconds a TLS client may take to send its ClientHello
TLS_HANDSHAKE = 0x16            # record type of a ClientHello
TLS_PORT_NOTICE = ("this port speaks TLS: connect with TLS (messenger-client --tls), or"
                   " use the server's plain port")


def is_tls_hello(length: int) -> bool:
    """Whether a frame length read from the first 4 bytes is really a TLS record header
    (handshake record, version 3.x): a TLS client on the plain port."""
    return length >> 24 == TLS_HANDSHAKE and (length >> 16) & 0xFF == 3


def _plain_frame(message: dict[str, Any]) -> bytes:
    payload = json.dumps(message, separators=(",", ":")).encode()
    return struct.pack(">I", len(payload)) + payload


class _Sniffer(Protocol):
    """Waits for the first byte, then becomes the TLS protocol or refuses politely."""

    log = Logger()

    def __init__(self, factory: TlsPortFactory, addr: Any) -> None:
        self._factory = factory
        self._addr = addr
        self._timer: Any = None

    def connectionMade(self) -> None:  # noqa: N802
        self._timer = self._factory.clock.callLater(SILENCE, self._refuse, "silent")

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if data[0] == TLS_HANDSHAKE:
            self._cancel()
            inner = self._factory.tls.buildProtocol(self._addr)
            if inner is None:
                self.transport.loseConnection()
                return
            self.transport.protocol = inner      # from now on the reactor feeds TLS
            inner.makeConnection(self.transport)
            inner.dataReceived(data)
        else:
            self._refuse("plain")

    def _refuse(self, why: str) -> None:
        self._timer = None
        peer = getattr(self.transport.getPeer(), "host", "?")
        self.log.info("A plain client connected to the TLS port from {address}: told to"
                      " use TLS or the plain port ({why})", address=peer, why=why)
        self.transport.write(_plain_frame({"response": codes.BAD_REQUEST,
                                           "error": TLS_PORT_NOTICE}))
        self.transport.loseConnection()

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        self._cancel()


class TlsPortFactory(Factory):
    """The TLS port's factory: `_Sniffer` in front of TLS around ``wrapped``."""

    noisy = False

    def __init__(self, wrapped: Any, tls_options: Any, clock: Any) -> None:
        self.tls = TLSMemoryBIOFactory(tls_options, False, wrapped)
        self.clock = clock

    def doStart(self) -> None:  # noqa: N802
        self.tls.doStart()

    def doStop(self) -> None:  # noqa: N802
        self.tls.doStop()

    def buildProtocol(self, addr: Any) -> _Sniffer:  # noqa: N802
        return _Sniffer(self, addr)
