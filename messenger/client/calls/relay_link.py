"""The call relay over TCP, for networks that block UDP: one media packet per frame.

Framed with a 2-byte length, like TURN over TCP (RFC 6062 in spirit). The link only
carries packets; the media session decides when to open it and what goes over it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.protocol import ClientFactory
from twisted.protocols.basic import Int16StringReceiver

from messenger.wire import media

if TYPE_CHECKING:
    from messenger.client.calls.media import MediaSession


class RelayLink(Int16StringReceiver):
    """The relay over TCP: one media packet per 2-byte-length frame."""

    MAX_LENGTH = media.MAX_DATAGRAM

    def __init__(self, session: MediaSession) -> None:
        self.session = session

    def connectionMade(self) -> None:  # noqa: N802
        self.session.tcp_up(self)

    def stringReceived(self, data: bytes) -> None:  # noqa: N802
        self.session.datagramReceived(data, self.session.relay_address, link=self)

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        self.session.tcp_down(self)


class LinkFactory(ClientFactory):
    def __init__(self, session: MediaSession) -> None:
        self.session = session

    def buildProtocol(self, addr: Any) -> RelayLink:  # noqa: N802
        return RelayLink(self.session)

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:  # noqa: N802
        self.session.log.info("TCP relay unreachable: {reason}", reason=reason.value)
