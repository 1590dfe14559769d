"""The wrong protocol on a port is told so within a second, both ways, over real sockets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from messenger.admin.certs import generate_self_signed
from messenger.client.tls import client_tls_options, describe_tls_failure
from messenger.server.config import TlsConfig
from messenger.server.portsniff import TLS_PORT_NOTICE, is_tls_hello
from messenger.wire.handshake import HandshakeError
from tests.server.people import server_with
from tests.support import jimclient
from tests.support.twistd_server import free_port


class WrongProtocolTests(unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        base = Path(self.mktemp())
        base.mkdir(parents=True)
        self.cert, key = base / "cert.pem", base / "key.pem"
        generate_self_signed("localhost", self.cert, key, bits=2048)
        self.server, _ = yield server_with(self, tls=TlsConfig(
            port=free_port(), cert=str(self.cert), key=str(key)))
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    @defer.inlineCallbacks
    def test_plain_client_on_the_tls_port(self) -> Any:
        """A plain client on the TLS port gets a 400 saying the port speaks TLS, in
        under a second, instead of waiting for a challenge that never comes."""
        began = reactor.seconds()
        client = yield jimclient.connect(self, self.server.tls_listen_port, handshake=False)
        with self.assertRaises(HandshakeError) as caught:
            yield client.ready
        self.assertLess(reactor.seconds() - began, 1.0)
        self.assertIn(TLS_PORT_NOTICE, str(caught.exception))
        self.assertTrue([e for e in self.events
                         if "plain client connected to the TLS port" in e.get("log_format", "")])

    @defer.inlineCallbacks
    def test_tls_client_on_the_plain_port(self) -> Any:
        """A TLS client on the plain port fails at once with "did not answer with TLS";
        the server logs a TLS client, not a 369 MB frame."""
        began = reactor.seconds()
        client = yield jimclient.connect(
            self, self.server.tcp_port, handshake=False,
            tls=client_tls_options("localhost", pinned_cert=str(self.cert)))
        yield client.closed
        self.assertLess(reactor.seconds() - began, 1.0)
        self.assertIn("did not answer with TLS", describe_tls_failure(client.lost_reason))
        client.ready.addErrback(lambda _: None)
        kinds = [e.get("kind", "") for e in self.events]
        self.assertIn("a TLS client connected to the plain port", kinds)
        self.assertNotIn("frame too large", kinds)

    @defer.inlineCallbacks
    def test_tls_client_on_the_tls_port_still_works(self) -> Any:
        """The sniffing in front of TLS changes nothing for a TLS client."""
        client = yield jimclient.connect(
            self, self.server.tls_listen_port, host="127.0.0.1",
            tls=client_tls_options("localhost", pinned_cert=str(self.cert)))
        reply = yield client.request("register", **jimclient.new_user("carol"))
        self.assertEqual(reply["response"], 201)


class TlsHelloTests(unittest.SynchronousTestCase):
    def test_lengths(self) -> None:
        """A TLS 1.0-1.3 handshake record header is recognised; real frame lengths not."""
        self.assertTrue(is_tls_hello(0x16030100 + 0xF4))
        self.assertTrue(is_tls_hello(0x16030300))
        self.assertFalse(is_tls_hello(16 * 1024))
        self.assertFalse(is_tls_hello(0x16000000))
