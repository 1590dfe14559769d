"""Tests for messenger.client.dialer: the endpoint over real loopback TCP, and the
protocol with its own handshake and pinning hook."""

from __future__ import annotations

from twisted.internet import defer, reactor
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.trial import unittest

from messenger.client.dialer import Dialer
from messenger.client.protocol import ClientProtocol
from messenger.wire.suites import SUITES
from tests.support.keys import rsa_key
from tests.support.twistd_server import free_port


class Listener(Protocol):
    def connectionMade(self) -> None:  # noqa: N802
        self.factory.connected.append(self)


class DialerTests(unittest.TestCase):
    def dialer(self, port: int, **kwargs) -> Dialer:
        key = rsa_key("client", 2048)
        return Dialer(reactor, "127.0.0.1", port, b"secret", lambda: key, SUITES,
                      timeout=5, **kwargs)

    @defer.inlineCallbacks
    def test_dial_connects_and_uses_the_build(self):
        """dial() connects over TCP and fires with the protocol build() made."""
        factory = Factory.forProtocol(Listener)
        factory.connected = []
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        dialer = self.dialer(port.getHost().port)
        checks = []
        protocol = yield dialer.dial(lambda: dialer.new_protocol(checks.append))
        protocol.established.addErrback(lambda _: None)     # no handshake here
        self.assertIsInstance(protocol, ClientProtocol)
        self.assertTrue(protocol.connected_)
        protocol.close()
        yield protocol.when_closed()

    @defer.inlineCallbacks
    def test_a_closed_port_is_refused(self):
        """Nothing listening: the dial fails with Twisted's ConnectionRefusedError (the
        connection types it)."""
        dialer = self.dialer(free_port())
        yield self.assertFailure(dialer.dial(lambda: dialer.new_protocol(lambda key: None)),
                                 ConnectionRefusedError)

    def test_a_connect_hook_replaces_the_endpoint(self):
        """Tests and tools pass connect=: it gets the build function."""
        seen = []
        dialer = self.dialer(1, connect=lambda build: seen.append(build) or defer.Deferred())
        dialer.dial(print)
        self.assertEqual(seen, [print])
