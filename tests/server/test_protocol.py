"""Unit tests of the connection state machine (messenger.server.protocol) with Twisted's
test doubles: a `StringTransport` for the socket, a `task.Clock` for every timer, the real
wire-layer `ClientHandshake` on the other end, and a patched dispatch table where a test
needs handlers of its own. Fast and deterministic; the same behaviour over real sockets is
in test_connection_states.py."""

from __future__ import annotations

import base64
import json
import struct
import threading
from typing import Any

from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from messenger.server import requests
from messenger.server.admission import Admission
from messenger.server.config import LimitsConfig, ServerConfig
from messenger.server.crypto import CryptoPool, InlineCryptoPool
from messenger.server.dispatch import Route
from messenger.server.limits import Limits
from messenger.server.metrics import Metrics
from messenger.server.protocol import HANDSHAKE_MAX_FRAME, ServerProtocol
from messenger.server.refusals import RefusalLog
from messenger.server.session import Account
from messenger.server.states import BEFORE_LOGIN, LOGGED_IN, State
from messenger.wire import jim
from messenger.wire.errors import Forbidden, ServiceUnavailable, TooManyRequests
from messenger.wire.handshake import ClientHandshake
from messenger.wire.suites import AES_GCM, RSA_OAEP
from tests.support.keys import rsa_key

SECRET = b"unit-test secret"


class FakeContext:
    """What a connection uses of `ServerContext`, with a task.Clock and no database."""

    def __init__(self, **limits: Any) -> None:
        self.config = ServerConfig(handshake_timeout=10.0, login_timeout=60.0,
                                   probe_interval=30.0, probe_timeout=15.0,
                                   max_frame=64 * 1024,
                                   limits=LimitsConfig(**limits))
        self.clock = task.Clock()
        self.clock.advance(1_000_000)
        self.limits = Limits(self.config.limits, self.clock)
        self.metrics = Metrics()
        self.secret = SECRET
        self.server_key = rsa_key("server", 2048)
        self.connections: set[ServerProtocol] = set()
        self.ended: list[ServerProtocol] = []
        self.crypto: Any = InlineCryptoPool()
        self.refusals = RefusalLog(self.clock)
        self.admission = Admission(self.config.limits, self.clock, 1000)
        self.counted: list[str] = []

    def connection_made(self, connection: ServerProtocol) -> Any:
        self.connections.add(connection)
        return self.admission.admit(connection)

    def connection_lost(self, connection: ServerProtocol) -> None:
        self.admission.gone(connection)
        self.connections.discard(connection)

    def session_started(self, session: ServerProtocol) -> None:
        self.admission.logged_in(session)

    def count(self, name: str, amount: int = 1) -> None:
        self.counted.append(name)

    def session_ended(self, session: ServerProtocol) -> None:
        self.ended.append(session)


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


class Peer:
    """One server connection on a StringTransport, and the client's end of it."""

    def __init__(self, ctx: FakeContext, address: str = "192.0.2.7",
                 secret: bytes = SECRET, suites: tuple[str, ...] = (AES_GCM,)) -> None:
        self.ctx = ctx
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", address, 40000))
        self.proto = ServerProtocol(ctx)
        self.client = ClientHandshake(secret, rsa_key("client", 2048), suites)
        self.channel: Any = None
        self.proto.makeConnection(self.transport)

    def raw_frames(self) -> list[bytes]:
        """Frames the server wrote since the last call."""
        data = self.transport.value()
        self.transport.clear()
        frames = []
        while data:
            (length,) = struct.unpack(">I", data[:4])
            frames.append(data[4:4 + length])
            data = data[4 + length:]
        return frames

    def send(self, payload: bytes) -> None:
        self.proto.dataReceived(frame(payload))

    def handshake(self) -> None:
        """Run phases 1 and 2 to the end; the server is then UNAUTHENTICATED."""
        (challenge,) = self.raw_frames()
        response, _ = self.client.receive(challenge)
        self.send(response)
        (digest,) = self.raw_frames()
        key_exchange, _ = self.client.receive(digest)
        self.send(key_exchange)
        (keyx_reply,) = self.raw_frames()
        _, established = self.client.receive(keyx_reply)
        self.channel = established.channel

    def handshake_async(self) -> defer.Deferred[None]:
        """Phases 1 and 2 with a real crypto pool: fires once the key exchange's answer,
        made in a pool thread, has arrived and the channel is set."""
        (challenge,) = self.raw_frames()
        self.send(self.client.receive(challenge)[0])
        (digest,) = self.raw_frames()
        key_exchange, _ = self.client.receive(digest)
        done: defer.Deferred[None] = defer.Deferred()
        original = self.proto._keyx_done

        def keyx_done(outcome: Any) -> None:
            original(outcome)
            (keyx_reply,) = self.raw_frames()
            self.channel = self.client.receive(keyx_reply)[1].channel
            done.callback(None)
        self.proto._keyx_done = keyx_done  # type: ignore[method-assign]
        self.send(key_exchange)
        return done

    def login(self, name: str = "alice") -> None:
        self.proto.logged_in(Account(1, name, f"{name}@example.org", False, False))

    def send_json(self, message: Any) -> None:
        self.send(self.channel.seal(json.dumps(message).encode("utf-8")))

    def request(self, action: str, request_id: str | None = None, **fields: Any) -> str:
        request_id = request_id or f"{len(self.proto.requests.seen) + 1:032x}"
        self.send_json({"action": action, "id": request_id, "time": 1.5, **fields})
        return request_id

    def received(self) -> list[dict[str, Any]]:
        """Encrypted frames the server wrote since the last call, opened and decoded."""
        return [jim.decode(self.channel.open(payload)) for payload in self.raw_frames()]

    def lose(self) -> None:
        self.proto.connectionLost(Failure(ConnectionDone()))


class Calls:
    """A handler that records its calls and returns what it is given."""

    def __init__(self, result: Any = None, error: BaseException | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.result = result if result is not None else {"response": 200}
        self.error = error

    def __call__(self, session: Any, request: dict[str, Any]) -> Any:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        return dict(self.result)


class HandshakeUnitTests(unittest.TestCase):
    def setUp(self) -> None:
        self.ctx = FakeContext()

    def test_challenge_on_connect(self) -> None:
        """The server speaks first: a version-2 challenge with a 32-byte nonce."""
        peer = Peer(self.ctx)
        (payload,) = peer.raw_frames()
        message = json.loads(payload)
        self.assertEqual(message["action"], "challenge")
        self.assertEqual(message["version"], 2)
        self.assertEqual(len(base64.b64decode(message["nonce"])), 32)
        self.assertIs(peer.proto.state, State.CHALLENGE)
        self.assertIn(peer.proto, self.ctx.connections)

    def test_full_handshake_aes(self) -> None:
        """aes-256-gcm: both ends agree; the server is UNAUTHENTICATED, the frame limit
        stays at 16 KiB until login, then becomes --max-frame; frames open inline."""
        peer = Peer(self.ctx, suites=(AES_GCM,))
        peer.handshake()
        self.assertIs(peer.proto.state, State.UNAUTHENTICATED)
        self.assertEqual(peer.proto.MAX_LENGTH, HANDSHAKE_MAX_FRAME)
        self.assertFalse(peer.proto._in_lane)
        peer.request("get_contacts")
        (reply,) = peer.received()
        self.assertEqual(reply["response"], 401)

    def test_full_handshake_rsa_oaep(self) -> None:
        """rsa-oaep: frames open and seal, through the connection's crypto lane."""
        peer = Peer(self.ctx, suites=(RSA_OAEP,))
        peer.handshake()
        self.assertIs(peer.proto.state, State.UNAUTHENTICATED)
        self.assertTrue(peer.proto._in_lane)
        peer.request("get_contacts")
        (reply,) = peer.received()
        self.assertEqual(reply["response"], 401)

    def test_wrong_secret(self) -> None:
        """A wrong HMAC gets exactly {"response":403,"error":"hmac error"}, then a close."""
        peer = Peer(self.ctx, secret=b"not the secret")
        (challenge,) = peer.raw_frames()
        response, _ = peer.client.receive(challenge)
        peer.send(response)
        self.assertEqual(peer.raw_frames(), [b'{"response":403,"error":"hmac error"}'])
        self.assertTrue(peer.transport.disconnecting)
        self.assertIs(peer.proto.state, State.CLOSED)

    def test_invalid_json_in_handshake(self) -> None:
        """Garbage instead of the challenge response: a plain 400 naming it, then a close."""
        peer = Peer(self.ctx)
        peer.raw_frames()
        peer.send(b"\x00\xffnot json")
        (reply,) = peer.raw_frames()
        self.assertEqual(json.loads(reply)["response"], 400)
        self.assertIn("UTF-8", json.loads(reply)["error"])
        self.assertTrue(peer.transport.disconnecting)

    def test_wrong_step(self) -> None:
        """A key exchange before the challenge response is refused by name."""
        peer = Peer(self.ctx)
        peer.raw_frames()
        peer.send(b'{"action":"key_exchange"}')
        (reply,) = peer.raw_frames()
        self.assertEqual(json.loads(reply), {
            "response": 400, "error": "expected the 'challenge_response' step of the handshake"})
        self.assertTrue(peer.transport.disconnecting)

    def test_bad_public_key(self) -> None:
        """A key exchange with an unusable key: 400 naming the key, then a close."""
        peer = Peer(self.ctx)
        (challenge,) = peer.raw_frames()
        response, _ = peer.client.receive(challenge)
        peer.send(response)
        peer.raw_frames()
        peer.send(b'{"action":"key_exchange","public_key":"nope","suites":["aes-256-gcm"]}')
        (reply,) = peer.raw_frames()
        self.assertTrue(json.loads(reply)["error"].startswith("'public_key': "))
        self.assertTrue(peer.transport.disconnecting)

    def test_handshake_frame_limit(self) -> None:
        """Announcing more than 16 KiB before the handshake: plain 400, close, no buffer."""
        peer = Peer(self.ctx)
        peer.raw_frames()
        peer.proto.dataReceived(struct.pack(">I", HANDSHAKE_MAX_FRAME + 1) + b"x" * 1000)
        (reply,) = peer.raw_frames()
        self.assertEqual(json.loads(reply), {
            "response": 400,
            "error": f"frame too large ({HANDSHAKE_MAX_FRAME + 1} bytes; the limit is"
                     f" {HANDSHAKE_MAX_FRAME})"})
        self.assertTrue(peer.transport.disconnecting)
        self.assertEqual(peer.proto._unprocessed, b"")
        peer.proto.dataReceived(b"y" * 5000)
        self.assertEqual(peer.raw_frames(), [])

    def test_frames_after_a_failed_handshake_are_ignored(self) -> None:
        """Once closed, whatever still arrives is dropped unread and unanswered."""
        peer = Peer(self.ctx, secret=b"wrong")
        (challenge,) = peer.raw_frames()
        response, _ = peer.client.receive(challenge)
        peer.send(response)
        self.assertEqual(len(peer.raw_frames()), 1)     # the 403
        peer.send(response)
        peer.send(b"{}")
        self.assertEqual(peer.raw_frames(), [])

    def test_connection_rate(self) -> None:
        """Over the per-address connection limit: a plain 429 instead of the challenge."""
        ctx = FakeContext(connections_per_minute=1)
        first = Peer(ctx, address="192.0.2.1")
        second = Peer(ctx, address="192.0.2.1")
        other = Peer(ctx, address="192.0.2.2")
        self.assertEqual(json.loads(first.raw_frames()[0])["action"], "challenge")
        (refusal,) = second.raw_frames()
        message = json.loads(refusal)
        self.assertEqual(message["response"], 429)
        self.assertEqual(message["error"], "too many connections from your address")
        self.assertGreater(message["retry_after"], 0)
        self.assertTrue(second.transport.disconnecting)
        self.assertEqual(json.loads(other.raw_frames()[0])["action"], "challenge")

    def test_unexpected_error_in_handshake(self) -> None:
        """A bug in the handshake code aborts this connection and is logged, no crash."""
        peer = Peer(self.ctx)
        peer.raw_frames()
        self.patch(peer.proto._handshake, "receive", lambda data: 1 / 0)
        peer.send(b"{}")
        self.assertEqual(peer.raw_frames(), [])
        self.assertTrue(peer.transport.disconnected)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


class TimeoutUnitTests(unittest.TestCase):
    def setUp(self) -> None:
        self.ctx = FakeContext()
        self.clock = self.ctx.clock

    def test_challenge_timeout(self) -> None:
        """No challenge response within the handshake timeout: closed, nothing sent."""
        peer = Peer(self.ctx)
        peer.raw_frames()
        self.clock.advance(9.9)
        self.assertFalse(peer.transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(peer.transport.disconnecting)
        self.assertEqual(peer.raw_frames(), [])

    def test_keyx_timeout(self) -> None:
        """KEYX has a timeout of its own, started when the challenge was answered."""
        peer = Peer(self.ctx)
        (challenge,) = peer.raw_frames()
        self.clock.advance(9)
        response, _ = peer.client.receive(challenge)
        peer.send(response)
        self.assertIs(peer.proto.state, State.KEYX)
        self.clock.advance(9.9)
        self.assertFalse(peer.transport.disconnecting)
        peer.raw_frames()
        self.clock.advance(0.1)
        self.assertTrue(peer.transport.disconnecting)
        self.assertEqual(peer.raw_frames(), [])

    def test_login_timeout(self) -> None:
        """No login within the login timeout: an encrypted 401 'login timed out', closed."""
        peer = Peer(self.ctx)
        peer.handshake()
        self.clock.advance(59.9)
        self.assertFalse(peer.transport.disconnecting)
        self.clock.advance(0.1)
        (notice,) = peer.received()
        self.assertEqual(notice["response"], 401)
        self.assertEqual(notice["error"], "login timed out")
        self.assertTrue(peer.transport.disconnecting)
        self.assertIs(peer.proto.state, State.CLOSED)

    def test_login_cancels_the_login_timer(self) -> None:
        """A logged-in session is not closed by the login timeout."""
        peer = Peer(self.ctx)
        peer.handshake()
        peer.login()
        self.clock.advance(120)
        self.assertFalse(peer.transport.disconnecting)
        self.assertIs(peer.proto.state, State.READY)

    def test_lost_connection_leaves_no_timer(self) -> None:
        """A connection lost in any state cancels its timer."""
        for steps in range(3):
            peer = Peer(self.ctx)
            if steps >= 1:
                (challenge,) = peer.raw_frames()
                peer.send(peer.client.receive(challenge)[0])
            if steps >= 2:
                (digest,) = peer.raw_frames()
                peer.send(peer.client.receive(digest)[0])
            peer.lose()
            self.assertEqual(self.clock.getDelayedCalls(), [])
            self.assertNotIn(peer.proto, self.ctx.connections)


class DispatchUnitTests(unittest.TestCase):
    def setUp(self) -> None:
        self.ctx = FakeContext()
        self.contacts = Calls({"response": 202, "alert": []})
        self.login = Calls({"response": 200})
        self.routes = {"get_contacts": Route(self.contacts, LOGGED_IN),
                       "register": Route(self.login, BEFORE_LOGIN)}
        self.patch(requests, "ROUTES", self.routes)
        self.peer = Peer(self.ctx)
        self.peer.handshake()

    def assert_error(self, code: int, error: str, request_id: str | None) -> None:
        (reply,) = self.peer.received()
        self.assertEqual((reply["response"], reply["error"], reply["id"]),
                         (code, error, request_id))
        self.assertIsInstance(reply["time"], float)
        self.assertFalse(self.peer.transport.disconnecting, "the connection must stay up")

    def test_try_again_errors_free_the_request_id(self) -> None:
        """A request answered 503 or 429 by its handler (nothing was done) may be sent
        again with the same id in the same session; one answered 200 may not."""
        self.peer.login()
        for error in (ServiceUnavailable("busy", 1.0), TooManyRequests("slow down", 1.0)):
            self.contacts.error = error
            request_id = self.peer.request("get_contacts")
            (refused,) = self.peer.received()
            self.assertEqual(refused["response"], error.code)
            self.contacts.error = None
            self.peer.request("get_contacts", request_id=request_id)
            (reply,) = self.peer.received()
            self.assertEqual((reply["response"], reply["id"]), (202, request_id))
            self.peer.request("get_contacts", request_id=request_id)
            (replay,) = self.peer.received()
            self.assertEqual(replay["response"], 400)

    def test_unknown_action(self) -> None:
        """An unknown action gets 400 naming it; the connection stays up."""
        request_id = self.peer.request("fly")
        self.assert_error(400, "unknown action 'fly'", request_id)

    def test_invalid_json(self) -> None:
        """A sealed frame that is not JSON: 400 with id null."""
        self.peer.send(self.peer.channel.seal(b"{not json"))
        self.assert_error(400, "frame is not valid JSON", None)

    def test_not_an_object(self) -> None:
        """A JSON list is no JIM message."""
        self.peer.send_json(["action", "msg"])
        self.assert_error(400, "a JIM message must be a JSON object", None)

    def test_invalid_utf8(self) -> None:
        """Bytes that are not UTF-8 are refused by name."""
        self.peer.send(self.peer.channel.seal(b'{"action":"\xff"}'))
        self.assert_error(400, "frame is not valid UTF-8", None)

    def test_missing_id(self) -> None:
        """A request without an id: 400 with id null."""
        self.peer.send_json({"action": "register", "time": 1})
        self.assert_error(400, "'id' is required: 32 lowercase hex digits (128 random bits)",
                          None)

    def test_bad_time_echoes_the_id(self) -> None:
        """A request whose id is fine but whose time is not gets its id back."""
        self.peer.send_json({"action": "register", "id": "a" * 32, "time": "now"})
        self.assert_error(400, "'time' is required and must be a number", "a" * 32)

    def test_wrong_types(self) -> None:
        """A field of the wrong type is refused by name, before any handler runs."""
        request_id = self.peer.request("register", user="alice")
        self.assert_error(400, "'user' must be an object", request_id)
        request_id = self.peer.request("register", user={"account_name": 7, "password": "x",
                                                          "email": "a@b.c"})
        self.assert_error(400, "'user.account_name' must be a string", request_id)
        self.assertEqual(self.login.requests, [])

    def test_replayed_request_id(self) -> None:
        """A request id used twice in one session is refused the second time."""
        self.peer.login()
        request_id = self.peer.request("get_contacts")
        self.assertEqual(self.peer.received()[0]["response"], 202)
        self.peer.request("get_contacts", request_id=request_id)
        self.assert_error(400, "request id already used in this session (replay refused)",
                          request_id)
        self.assertEqual(len(self.contacts.requests), 1)

    def test_logged_in_action_before_login(self) -> None:
        """An action that needs a login, before login: 401 saying so."""
        request_id = self.peer.request("get_contacts")
        self.assert_error(401, "log in first: 'get_contacts' needs an authenticated session",
                          request_id)
        self.assertEqual(self.contacts.requests, [])

    def test_login_action_after_login(self) -> None:
        """A login action after login: 400 saying so."""
        self.peer.login()
        request_id = self.peer.request("register", user={
            "account_name": "bob", "password": "long enough", "email": "b@example.org"})
        self.assert_error(400, "'register' is not allowed after login", request_id)
        self.assertEqual(self.login.requests, [])

    def test_handler_refusal(self) -> None:
        """A handler's MessengerError becomes a reply with its code and extra fields."""
        self.peer.login()
        self.contacts.error = Forbidden("administrators only", locked_until=None)
        request_id = self.peer.request("get_contacts")
        (reply,) = self.peer.received()
        self.assertEqual(reply, {"response": 403, "error": "administrators only",
                                 "locked_until": None, "id": request_id,
                                 "time": reply["time"]})

    def test_handler_bug(self) -> None:
        """An unexpected exception: a bare 500 to the client, the traceback in the log."""
        self.peer.login()
        self.contacts.error = KeyError("secret detail")
        request_id = self.peer.request("get_contacts")
        (reply,) = self.peer.received()
        self.assertEqual((reply["response"], reply["error"], reply["id"]),
                         (500, "internal server error", request_id))
        self.assertNotIn("secret detail", json.dumps(reply))
        self.assertNotIn("Traceback", json.dumps(reply))
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)
        request_id = self.peer.request("get_contacts")
        self.contacts.error = None
        self.assertEqual(self.peer.received()[0]["response"], 500)
        self.flushLoggedErrors(KeyError)
        self.assertFalse(self.peer.transport.disconnecting)

    def test_deferred_handlers(self) -> None:
        """A handler's Deferred: its result, its refusal or its failure becomes the reply."""
        self.peer.login()
        pending: list[defer.Deferred[Any]] = []

        def slow(session: Any, request: dict[str, Any]) -> defer.Deferred[Any]:
            pending.append(defer.Deferred())
            return pending[-1]
        self.routes["get_contacts"] = Route(slow, LOGGED_IN)
        first, second, third = (self.peer.request("get_contacts") for _ in range(3))
        self.assertEqual(self.peer.received(), [])
        pending[1].errback(Forbidden("no"))
        pending[2].errback(RuntimeError("boom"))
        pending[0].callback({"response": 202, "alert": ["bob"]})
        replies = self.peer.received()
        self.assertEqual([(r["id"], r["response"]) for r in replies],
                         [(second, 403), (third, 500), (first, 202)])
        self.assertEqual(replies[2]["alert"], ["bob"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_probe_answer_and_stray_replies(self) -> None:
        """A reply to the server's probe clears it; a reply to nothing is ignored silently."""
        self.peer.login()
        self.peer.proto.probe(self.ctx.clock.seconds())
        (probe,) = self.peer.received()
        self.peer.send_json({"response": 200, "id": "f" * 32, "time": 1})
        self.assertIsNotNone(self.peer.proto.probe_id)
        self.peer.send_json({"response": 200, "id": probe["id"], "time": 1})
        self.assertIsNone(self.peer.proto.probe_id)
        self.assertEqual(self.peer.received(), [])

    def test_tampered_frame(self) -> None:
        """One flipped bit in a sealed frame: the connection is aborted, nothing is sent."""
        sealed = bytearray(self.peer.channel.seal(b'{"action":"quit"}'))
        sealed[3] ^= 1
        self.peer.send(bytes(sealed))
        self.assertTrue(self.peer.transport.disconnected)
        self.assertEqual(self.peer.raw_frames(), [])
        self.assertIs(self.peer.proto.state, State.CLOSED)

    def test_reordered_frames(self) -> None:
        """The second frame arriving first fails to open: aborted."""
        first = self.peer.channel.seal(b"{}")
        second = self.peer.channel.seal(b"{}")
        self.peer.send(second)
        self.assertTrue(self.peer.transport.disconnected)
        self.peer.send(first)
        self.assertEqual(self.peer.raw_frames(), [])

    def test_replayed_frame(self) -> None:
        """The same sealed frame twice: the copy fails to open, aborted."""
        sealed = self.peer.channel.seal(jim.encode({"action": "register", "id": "b" * 32,
                                                    "time": 1}))
        self.peer.send(sealed)
        self.assertEqual(self.peer.received()[0]["response"], 400)
        self.peer.send(sealed)
        self.assertTrue(self.peer.transport.disconnected)

    def test_phase3_frame_limit_before_login(self) -> None:
        """Before login the handshake's 16 KiB limit still holds: 400, then closed."""
        limit = HANDSHAKE_MAX_FRAME
        self.peer.proto.dataReceived(struct.pack(">I", limit + 1) + b"z" * 100)
        (reply,) = self.peer.received()
        self.assertEqual((reply["response"], reply["error"]),
                         (400, f"frame too large ({limit + 1} bytes; the limit is {limit})"))
        self.assertTrue(self.peer.transport.disconnecting)

    def test_phase3_frame_limit(self) -> None:
        """After login, announcing more than max_frame: an encrypted 400 with no id, then
        closed."""
        self.peer.login()
        limit = self.ctx.config.max_frame
        self.peer.proto.dataReceived(struct.pack(">I", limit + 1) + b"z" * 100)
        (reply,) = self.peer.received()
        self.assertEqual((reply["response"], reply["error"]),
                         (400, f"frame too large ({limit + 1} bytes; the limit is {limit})"))
        self.assertNotIn("id", reply)
        self.assertTrue(self.peer.transport.disconnecting)
        self.assertEqual(self.peer.proto._unprocessed, b"")

    def test_frames_after_close_are_dropped(self) -> None:
        """After close() nothing more is dispatched or answered."""
        self.peer.login()
        self.peer.proto.close()
        self.peer.request("get_contacts")
        self.assertEqual(self.peer.raw_frames(), [])
        self.assertEqual(self.contacts.requests, [])


class RateLimitUnitTests(unittest.TestCase):
    def setUp(self) -> None:
        self.ctx = FakeContext(requests_per_second=1.0, request_burst=3,
                               strikes_before_drop=4)
        self.calls = Calls({"response": 202, "alert": []})
        self.patch(requests, "ROUTES", {"get_contacts": Route(self.calls, LOGGED_IN)})
        self.peer = Peer(self.ctx)
        self.peer.handshake()
        self.peer.login()

    def test_429_means_nothing_was_done(self) -> None:
        """Past the burst: 429 with retry_after and the handler is not called."""
        for _ in range(3):
            self.peer.request("get_contacts")
        limited = self.peer.request("get_contacts")
        replies = self.peer.received()
        self.assertEqual([r["response"] for r in replies], [202, 202, 202, 429])
        self.assertEqual(replies[3]["id"], limited)
        self.assertEqual(replies[3]["error"], "too many requests; slow down")
        self.assertAlmostEqual(replies[3]["retry_after"], 1.0, places=2)
        self.assertEqual(len(self.calls.requests), 3)

    def test_retry_with_the_same_id(self) -> None:
        """A refused request may be sent again with its id: it was not done, no replay."""
        for _ in range(3):
            self.peer.request("get_contacts")
        limited = self.peer.request("get_contacts")
        self.peer.received()
        self.ctx.clock.advance(1.0)
        self.peer.request("get_contacts", request_id=limited)
        (reply,) = self.peer.received()
        self.assertEqual((reply["response"], reply["id"]), (202, limited))

    def test_drop_when_it_keeps_on(self) -> None:
        """After strikes_before_drop refusals in a row, a last 429 and the close."""
        for _ in range(3 + 4):
            self.peer.request("get_contacts")
        self.assertFalse(self.peer.transport.disconnecting)
        self.peer.request("get_contacts")
        replies = self.peer.received()
        self.assertEqual(replies[-1]["error"], "too many requests; closing the connection")
        self.assertEqual([r["response"] for r in replies], [202] * 3 + [429] * 5)
        self.assertTrue(self.peer.transport.disconnecting)

    def test_an_allowed_request_resets_the_strikes(self) -> None:
        """Strikes count refusals in a row only."""
        for _ in range(3 + 4):
            self.peer.request("get_contacts")
        self.ctx.clock.advance(1.0)
        self.peer.request("get_contacts")
        self.assertEqual(self.peer.proto.requests.strikes, 0)
        self.assertFalse(self.peer.transport.disconnecting)

    def test_invalid_frames_count_too(self) -> None:
        """Frames that are not even requests use up the rate like requests do."""
        for _ in range(3):
            self.peer.send(self.peer.channel.seal(b"garbage"))
        self.peer.request("get_contacts")
        replies = self.peer.received()
        self.assertEqual([r["response"] for r in replies], [400, 400, 400, 429])
        self.assertEqual(self.calls.requests, [])

    def test_probe_answer_is_never_refused(self) -> None:
        """An answer to a probe is no request: no 429 for it, and it still counts."""
        for _ in range(3):
            self.peer.request("get_contacts")
        self.peer.proto.probe(self.ctx.clock.seconds())
        probe = self.peer.received()[-1]
        self.peer.send_json({"response": 200, "id": probe["id"], "time": 1})
        self.assertEqual(self.peer.received(), [])
        self.assertIsNone(self.peer.proto.probe_id)
        self.assertEqual(self.peer.proto.requests.strikes, 0)


class KeepaliveUnitTests(unittest.TestCase):
    def setUp(self) -> None:
        self.ctx = FakeContext()
        self.clock = self.ctx.clock
        self.peer = Peer(self.ctx)
        self.peer.handshake()
        self.peer.login()

    def sweep(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.peer.proto.check_alive(self.clock.seconds())

    def test_silent_session_is_probed_then_dropped(self) -> None:
        """30 s of silence: a probe; no answer within 15 s: the connection is aborted."""
        self.sweep(1)
        self.sweep(29.5)
        self.assertEqual(self.peer.received(), [])
        self.sweep(0.5)
        (probe,) = self.peer.received()
        self.assertEqual(probe["action"], "probe")
        self.assertEqual(len(probe["id"]), 32)
        self.sweep(14.9)
        self.assertFalse(self.peer.transport.disconnecting)
        self.sweep(0.1)
        self.assertTrue(self.peer.transport.disconnected)
        self.assertIs(self.peer.proto.state, State.CLOSED)

    def test_answered_probe_keeps_the_session(self) -> None:
        """The client's reply with the probe's id keeps the session; probes go on."""
        self.sweep(1)
        self.sweep(30)
        (probe,) = self.peer.received()
        self.peer.send_json({"response": 200, "id": probe["id"], "time": 1})
        for _ in range(8):      # the answer, then 30 s of silence again: a second probe
            self.sweep(5)
        self.assertFalse(self.peer.transport.disconnecting)
        (again,) = self.peer.received()
        self.assertEqual(again["action"], "probe")
        self.assertNotEqual(again["id"], probe["id"])

    def test_any_frame_after_the_probe_is_a_sign_of_life(self) -> None:
        """A request instead of the probe's answer also proves the client is there."""
        self.patch(requests, "ROUTES", {})
        self.sweep(1)
        self.sweep(30)
        self.peer.received()
        self.peer.request("whatever")
        self.sweep(5)
        self.sweep(14)
        self.assertFalse(self.peer.transport.disconnecting)
        self.assertIsNone(self.peer.proto.probe_id)

    def test_activity_before_a_probe_does_not_cancel_it(self) -> None:
        """A probe sent after a busy spell still needs an answer (a half-open holder)."""
        self.patch(requests, "ROUTES", {})
        self.peer.request("whatever")
        self.peer.proto.probe(self.clock.seconds())
        self.sweep(5)
        self.sweep(10)
        self.assertTrue(self.peer.transport.disconnected)

    def test_no_probe_before_login(self) -> None:
        """Keepalive is for logged-in sessions; before that the login timeout rules."""
        peer = Peer(self.ctx)
        peer.handshake()
        for _ in range(10):
            peer.proto.check_alive(self.clock.seconds() + 100)
        self.assertEqual(peer.received(), [])


class LifecycleUnitTests(unittest.TestCase):
    def setUp(self) -> None:
        self.ctx = FakeContext()

    def test_closing_a_logged_in_session_ends_it(self) -> None:
        """quit/logout/kick close() in READY: the session still ends (offline, detached)."""
        peer = Peer(self.ctx)
        peer.handshake()
        peer.login()
        peer.proto.close()
        self.assertEqual(self.ctx.ended, [])
        peer.lose()
        self.assertEqual(self.ctx.ended, [peer.proto])
        self.assertNotIn(peer.proto, self.ctx.connections)

    def test_losing_an_unauthenticated_connection(self) -> None:
        """Before login there is no session to end."""
        peer = Peer(self.ctx)
        peer.handshake()
        peer.lose()
        self.assertEqual(self.ctx.ended, [])
        self.assertIs(peer.proto.state, State.CLOSED)

    def test_shutdown(self) -> None:
        """At shutdown a logged-in user is told why; others are simply closed."""
        ready, waiting = Peer(self.ctx), Peer(self.ctx)
        ready.handshake()
        ready.login()
        waiting.handshake()
        ready.proto.shutdown("The server is shutting down.")
        waiting.proto.shutdown("The server is shutting down.")
        (notice,) = ready.received()
        self.assertEqual((notice["action"], notice["level"], notice["message"]),
                         ("notice", 101, "The server is shutting down."))
        self.assertEqual(waiting.received(), [])
        self.assertTrue(ready.transport.disconnecting and waiting.transport.disconnecting)

    def test_rsa_frames_open_in_the_crypto_pool(self) -> None:
        """rsa-oaep: frames are opened in a crypto thread, not on the reactor thread, and
        dispatched in the order they arrived."""
        from twisted.internet import reactor
        self.ctx.crypto = CryptoPool(reactor)
        self.ctx.crypto.start()
        self.addCleanup(self.ctx.crypto.stop)
        peer = Peer(self.ctx, suites=(RSA_OAEP,))
        d: defer.Deferred[None] = defer.Deferred()
        threads_used: list[threading.Thread] = []

        def recording_open(data: bytes) -> bytes:
            threads_used.append(threading.current_thread())
            return real_open(data)

        real_sealed = peer.proto._sealed
        sealed = []

        def counting_sealed(data: bytes, size: int, reply: bool) -> None:
            real_sealed(data, size, reply)
            sealed.append(size)
            if len(sealed) == 2:
                d.callback(None)
        peer.proto._sealed = counting_sealed  # type: ignore[method-assign]

        def handshaken(_: None) -> None:
            nonlocal real_open
            real_open = peer.proto._open
            peer.proto._open = recording_open
            big = jim.encode({"action": "msg", "id": "c" * 32, "time": 1,
                              "padding": "p" * 4000})
            small = jim.encode({"action": "fly", "id": "d" * 32, "time": 1})
            peer.proto.dataReceived(frame(peer.channel.seal(big))
                                    + frame(peer.channel.seal(small)))
        real_open: Any = None
        peer.handshake_async().addCallback(handshaken)

        def done(_: None) -> None:
            self.assertEqual(len(threads_used), 2)
            for thread in threads_used:
                self.assertIsNot(thread, threading.main_thread())
            replies = peer.received()
            self.assertEqual([r["id"] for r in replies], ["c" * 32, "d" * 32])
        return d.addCallback(done)
