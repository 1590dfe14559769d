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

from messenger.client.errors import (
    AccountLocked,
    NotConnected,
    ProtocolViolation,
    RequestTooLarge,
    ServerKeyChanged,
    TooManyPending,
    TooManyRequests,
    WrongCredentials,
)
from messenger.client.protocol import HANDSHAKE_MAX_FRAME, ClientProtocol, sealed_size
from messenger.wire import jim, keys
from messenger.wire.errors import MessengerError
from messenger.wire.handshake import ClientHandshake, HandshakeError, ServerHandshake
from messenger.wire.suites import AES_GCM, RSA_OAEP
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


LIMIT = 64 * 1024


class ProtocolTestCase(unittest.TestCase):
    def connect(self, secret: bytes = SECRET, check: Any = None, **options: Any):
        self.clock = task.Clock()
        handshake = ClientHandshake(secret, rsa_key("client", 2048),
                                    check_server_key=check)
        proto = ClientProtocol(handshake, self.clock, max_payload=LIMIT, **options)
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


class ClientProtocolTests(ProtocolTestCase):
    def test_handshake_establishes_the_channel(self):
        """Both phases run to the end; the client learns the server's fingerprint and
        lifts its frame limit from the handshake's 16 KiB to what the largest payload
        the server may send seals to."""
        proto, peer = self.connect()
        self.assertEqual(proto.MAX_LENGTH, HANDSHAKE_MAX_FRAME)
        peer.handshake_through()
        established = self.successResultOf(proto.established)
        self.assertEqual(established.server_fingerprint,
                         keys.fingerprint(rsa_key("server", 2048).public_key()))
        self.assertTrue(proto.ready)
        self.assertEqual(proto.MAX_LENGTH, LIMIT + 16)

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
        """An error reply fails the request with the typed error of its code."""
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
        proto.dataReceived(struct.pack(">I", LIMIT + 17))
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

    def test_error_reply_is_typed_by_its_action_too(self):
        """A 403 to a login is a lock: the action the request named refines the code."""
        proto, peer = self.established()
        d = proto.request("resume", {"user": {}})
        (sent,) = peer.received()
        peer.send({"response": 403, "id": sent["id"], "error": "account locked until x",
                   "locked_until": 99.0, "time": 1})
        self.assertEqual(self.failureResultOf(d, AccountLocked).value.locked_until, 99.0)


class BoundsTests(ProtocolTestCase):
    """What a misbehaving server can make the client buffer is bounded."""

    def test_payload_over_the_limit_drops_the_connection(self):
        """A frame that opens to more than the server may send (1 MiB by the protocol;
        64 KiB here) ends the connection, even when its sealed size passed."""
        proto, peer = self.established()
        proto.MAX_LENGTH = 4 * LIMIT                # as a suite with a loose bound
        peer.send({"action": "notice", "message": "x" * LIMIT, "time": 1})
        self.assertEqual(self.pushes, [])
        proto.connectionLost(Failure(ConnectionDone()))
        reason = self.successResultOf(proto.when_closed())
        self.assertIsInstance(reason, ProtocolViolation)
        self.assertIn("payload", str(reason))

    def test_frames_after_a_violation_are_not_read(self):
        """Once a frame fails, the frames behind it in the same read are dropped."""
        proto, peer = self.established()
        good = frame(peer.channel.seal(jim.encode({"action": "notice", "message": "x",
                                                   "time": 1})))
        proto.dataReceived(frame(b"\x00" * 40) + good)
        self.assertEqual(self.pushes, [])

    def test_pending_requests_are_bounded(self):
        """Past max_pending unanswered requests the next one fails at once, unsent."""
        proto, peer = self.established(max_pending=2)
        proto.request("get_contacts")
        proto.request("get_contacts")
        self.failureResultOf(proto.request("get_contacts"), TooManyPending)
        self.assertEqual(len(peer.received()), 2)

    def test_request_over_max_send_is_refused_unsent(self):
        """A request whose frame would exceed the server's max_frame fails with
        RequestTooLarge, and the channel stays in step (nothing was sealed)."""
        proto, peer = self.established()
        proto.max_send = 1000
        self.failureResultOf(proto.request("msg", {"message": "x" * 1000}),
                             RequestTooLarge)
        self.assertEqual(proto.pending_requests, 0)
        proto.request("msg", {"message": "short"})
        self.assertEqual(peer.received()[0]["message"], "short")

    def test_when_closed_fires_before_pending_requests_fail(self):
        """The connection's owner learns that it ended before the requests' callbacks
        run, so a failed login request never has to be told from a lost connection."""
        proto, peer = self.established()
        order = []
        proto.request("get_contacts").addErrback(lambda _: order.append("request"))
        proto.when_closed().addCallback(lambda _: order.append("closed"))
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(order, ["closed", "request"])

    def test_probes_are_counted(self):
        """Each probe answered is counted (tests wait on the count, not on time)."""
        proto, peer = self.established()
        for n in range(3):
            peer.send({"action": "probe", "id": f"{n:032x}", "time": 1})
        self.assertEqual(proto.probes_answered, 3)


class SealedSizeTests(unittest.TestCase):
    def test_sizes_match_the_suites(self):
        """The size computed for a payload is what sealing it gives, in both suites."""
        from messenger.wire.kex import make_channel
        from messenger.wire.suites import CLIENT_TO_SERVER
        client, server = rsa_key("client", 2048), rsa_key("server", 2048)
        for suite in (AES_GCM, RSA_OAEP):
            channel = make_channel(suite, CLIENT_TO_SERVER, b"s" * 32, b"x" * 32, b"n" * 32,
                                   b"m" * 32, b"i" * 32, client, server.public_key())
            for size in (1, 189, 190, 191, 1000):
                self.assertEqual(len(channel.seal(b"x" * size)),
                                 sealed_size(suite, size, 256), (suite, size))
