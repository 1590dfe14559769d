"""Tests for messenger.client.protocol: framing, handshake, requests, pushes, probes,
against a server half made of the wire layer's `ServerHandshake` over StringTransport."""

from __future__ import annotations

import struct
from typing import Any

from twisted.internet import task
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from messenger.client.errors import NotConnected, ProtocolViolation
from messenger.client.protocol import HANDSHAKE_MAX_FRAME, ClientProtocol
from messenger.wire import jim, keys
from messenger.wire.errors import MessengerError, TooManyRequests, WrongCredentials
from messenger.wire.handshake import (
    ClientHandshake,
    HandshakeError,
    ServerHandshake,
    ServerKeyChanged,
)
from tests.support.keys import rsa_key
from tests.support.server import SECRET


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def split_frames(data: bytes) -> list[bytes]:
    out = []
    while data:
        (length,) = struct.unpack(">I", data[:4])
        out.append(data[4:4 + length])
        data = data[4 + length:]
    return out


class ServerPeer:
    """The server's side of one connection, driven by hand."""

    def __init__(self, proto: ClientProtocol, transport: StringTransport,
                 secret: bytes = SECRET) -> None:
        self.proto = proto
        self.transport = transport
        self.handshake = ServerHandshake(secret, rsa_key("server", 2048))
        self.channel: Any = None

    def take(self) -> list[bytes]:
        data = self.transport.value()
        self.transport.clear()
        return split_frames(data)

    def handshake_through(self) -> None:
        self.proto.dataReceived(frame(self.handshake.start()))
        for _ in range(2):
            (payload,) = self.take()
            try:
                reply, established = self.handshake.receive(payload)
            except HandshakeError as error:
                self.proto.dataReceived(frame(error.reply))
                return
            self.proto.dataReceived(frame(reply))
            if established is not None:
                self.channel = established.channel

    def send(self, message: dict[str, Any]) -> None:
        self.proto.dataReceived(frame(self.channel.seal(jim.encode(message))))

    def received(self) -> list[dict[str, Any]]:
        return [jim.decode(self.channel.open(payload)) for payload in self.take()]


class ClientProtocolTests(unittest.TestCase):
    def connect(self, secret: bytes = SECRET, check: Any = None):
        self.clock = task.Clock()
        handshake = ClientHandshake(secret, rsa_key("client", 2048),
                                    check_server_key=check)
        proto = ClientProtocol(handshake, self.clock, max_frame=64 * 1024)
        transport = StringTransport()
        proto.makeConnection(transport)
        peer = ServerPeer(proto, transport)
        self.pushes, self.orphans = [], []
        proto.on_push = self.pushes.append
        proto.on_orphan_reply = self.orphans.append
        return proto, peer

    def established(self, **kwargs):
        proto, peer = self.connect(**kwargs)
        peer.handshake_through()
        return proto, peer

    def test_handshake_establishes_the_channel(self):
        """Both phases run to the end; the client learns the server's fingerprint and
        lifts its frame limit from the handshake's 16 KiB."""
        proto, peer = self.connect()
        self.assertEqual(proto.MAX_LENGTH, HANDSHAKE_MAX_FRAME)
        peer.handshake_through()
        established = self.successResultOf(proto.established)
        self.assertEqual(established.server_fingerprint,
                         keys.fingerprint(rsa_key("server", 2048).public_key()))
        self.assertTrue(proto.ready)
        self.assertEqual(proto.MAX_LENGTH, 64 * 1024)

    def test_wrong_secret_fails_with_hmac_error(self):
        """The server's plain 403 'hmac error' fails the handshake with that text and the
        client closes."""
        proto, peer = self.connect(secret=b"not the secret")
        peer.handshake_through()
        self.assertTrue(peer.transport.disconnecting)
        proto.connectionLost(Failure(ConnectionDone()))
        error = self.failureResultOf(proto.established, HandshakeError).value
        self.assertIn("hmac error", error.message)
        self.assertEqual(error.code, 403)

    def test_pin_refusal_fails_the_handshake(self):
        """A pinning hook that raises ServerKeyChanged ends the handshake with it."""
        def refuse(key):
            raise ServerKeyChanged("h:1", "sha256:" + "0" * 64, keys.fingerprint(key), "f")
        proto, peer = self.established(check=refuse)
        proto.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(proto.established, ServerKeyChanged)
        self.assertEqual(self.successResultOf(proto.when_closed()).__class__,
                         ServerKeyChanged)

    def test_reply_settles_the_request_of_its_id(self):
        """A reply fires the Deferred of the request with the same id, with the reply."""
        proto, peer = self.established()
        first = proto.request("get_contacts")
        second = proto.request("search_users", {"query": "bo"})
        sent = peer.received()
        self.assertEqual([m["action"] for m in sent], ["get_contacts", "search_users"])
        self.assertEqual(sent[1]["query"], "bo")
        self.assertTrue(all(isinstance(m["time"], (int, float)) for m in sent))
        peer.send({"response": 202, "id": sent[1]["id"], "alert": [], "time": 1})
        self.assertEqual(self.successResultOf(second)["response"], 202)
        self.assertNoResult(first)

    def test_request_keeps_a_given_id(self):
        """A request sent with an explicit id (a resend) uses exactly that id."""
        proto, peer = self.established()
        proto.request("msg", {"to": "bob", "message": "x"}, request_id="ab" * 16)
        self.assertEqual(peer.received()[0]["id"], "ab" * 16)

    def test_error_reply_fails_with_the_class_of_its_code(self):
        """An error reply fails the request with the MessengerError of its JIM code."""
        proto, peer = self.established()
        d = proto.request("authenticate", {"user": {}})
        (sent,) = peer.received()
        peer.send({"response": 402, "id": sent["id"], "error": "wrong account name or"
                   " password", "time": 1})
        error = self.failureResultOf(d, WrongCredentials).value
        self.assertEqual((error.code, error.message),
                         (402, "wrong account name or password"))

    def test_rate_limit_reply_carries_retry_after(self):
        """A 429 reply fails with TooManyRequests holding retry_after."""
        proto, peer = self.established()
        d = proto.request("msg")
        (sent,) = peer.received()
        peer.send({"response": 429, "id": sent["id"], "error": "slow down",
                   "retry_after": 2.5, "time": 1})
        self.assertEqual(self.failureResultOf(d, TooManyRequests).value.retry_after, 2.5)

    def test_probe_is_answered_with_its_id(self):
        """The server's probe gets a 200 reply carrying the probe's id, and is not a push."""
        proto, peer = self.established()
        peer.send({"action": "probe", "id": "cd" * 16, "time": 5})
        (answer,) = peer.received()
        self.assertEqual((answer["response"], answer["id"]), (200, "cd" * 16))
        self.assertNotIn("action", answer)
        self.assertEqual(self.pushes, [])

    def test_pushes_go_to_on_push(self):
        """A frame with an action other than probe is handed to on_push."""
        proto, peer = self.established()
        peer.send({"action": "presence", "account_name": "bob", "status": "away",
                   "time": 1})
        self.assertEqual(self.pushes[0]["status"], "away")

    def test_reply_without_a_pending_request_is_an_orphan(self):
        """A reply matching no request (the server's 'login timed out') goes to
        on_orphan_reply."""
        proto, peer = self.established()
        peer.send({"response": 401, "error": "login timed out", "time": 1})
        self.assertEqual(self.orphans[0]["error"], "login timed out")

    def test_frame_that_fails_to_open_drops_the_connection(self):
        """A tampered frame aborts the connection; the reason says why and pending
        requests fail with NotConnected."""
        proto, peer = self.established()
        pending = proto.request("get_contacts")
        proto.dataReceived(frame(b"\x00" * 40))
        self.assertTrue(peer.transport.disconnecting)
        proto.connectionLost(Failure(ConnectionDone()))
        reason = self.successResultOf(proto.when_closed())
        self.assertIsInstance(reason, ProtocolViolation)
        self.assertIn("failed to open", str(reason))
        self.failureResultOf(pending, NotConnected)

    def test_oversized_frame_drops_the_connection(self):
        """A frame announced above the limit is never buffered: the client aborts."""
        proto, peer = self.established()
        proto.dataReceived(struct.pack(">I", 64 * 1024 + 1))
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertIn("limit", str(self.successResultOf(proto.when_closed())))

    def test_oversized_handshake_frame_is_refused(self):
        """During the handshake the limit is 16 KiB."""
        proto, peer = self.connect()
        proto.dataReceived(struct.pack(">I", HANDSHAKE_MAX_FRAME + 1))
        proto.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(proto.established, ProtocolViolation)

    def test_requests_before_the_handshake_fail(self):
        """No request can be sent before phase 3."""
        proto, peer = self.connect()
        self.failureResultOf(proto.request("get_contacts"), NotConnected)

    def test_lost_connection_fails_pending_and_reports_its_reason(self):
        """Losing the connection fails pending requests and fires when_closed (also for a
        late caller) with the reason."""
        proto, peer = self.established()
        pending = proto.request("get_contacts")
        early = proto.when_closed()
        proto.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(pending, NotConnected)
        self.assertIsInstance(self.successResultOf(early), ConnectionDone)
        self.assertIsInstance(self.successResultOf(proto.when_closed()), ConnectionDone)
        self.assertFalse(proto.ready)

    def test_lost_during_handshake_fails_established(self):
        """A connection that ends mid-handshake fails ``established`` with the reason."""
        proto, peer = self.connect()
        proto.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(proto.established, ConnectionDone)

    def test_undecodable_plaintext_is_ignored(self):
        """A frame that opens but is not JSON is logged and skipped; the channel stays."""
        proto, peer = self.established()
        proto.dataReceived(frame(peer.channel.seal(b"not json")))
        self.assertTrue(proto.ready)
        peer.send({"action": "notice", "message": "still here", "time": 1})
        self.assertEqual(self.pushes[0]["message"], "still here")

    def test_errors_are_messenger_errors(self):
        """Everything the protocol fails with can be caught as MessengerError."""
        for cls in (NotConnected, ProtocolViolation, HandshakeError, WrongCredentials):
            self.assertTrue(issubclass(cls, MessengerError))
