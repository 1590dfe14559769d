"""The connection state machine over real sockets: a real server on loopback with a real
SQLite file, real clients doing the real handshake. Handshake in both suites, refusals
(wrong secret, changed server key), untrustworthy frames, bad input of every kind, the
actions each state allows, and each state's timeout (configured short)."""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from messenger.server.states import State
from messenger.wire import jim, keys
from messenger.wire.handshake import ClientHandshake, HandshakeError, ServerKeyChanged
from messenger.wire.suites import AES_GCM, RSA_OAEP
from tests.support import jimclient
from tests.support.jimclient import new_user, raw_connect, wait_closed
from tests.support.keys import rsa_key
from tests.support.server import SECRET, start_server


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0,
             what: str = "condition") -> defer.Deferred[None]:
    """Poll ``predicate`` every 10 ms; fails with AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout

    def check() -> Any:
        if predicate():
            return None
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        return task.deferLater(reactor, 0.01, check)
    return task.deferLater(reactor, 0, check)


class ServerTestCase(unittest.TestCase):
    timeout = 30
    overrides: dict[str, Any] = {}

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.server = yield start_server(self, **self.overrides)
        self.port = self.server.tcp_port

    @defer.inlineCallbacks
    def assert_still_serving(self, name: str = "witness") -> Any:
        """A fresh client can still register: the server survived and serves others."""
        client, reply = yield jimclient.register(self, self.port, name)
        self.assertEqual(reply["response"], 201)
        yield client.close()

    def server_connections(self) -> set[Any]:
        return self.server.ctx.connections


class HandshakeTests(ServerTestCase):
    @defer.inlineCallbacks
    def test_both_suites(self) -> Any:
        """The full handshake and a registration work in aes-256-gcm and in rsa-oaep."""
        for name, suite in (("gcmuser", AES_GCM), ("rsauser", RSA_OAEP)):
            client = yield jimclient.connect(self, self.port, suites=(suite,))
            self.assertEqual(client.established.suite, suite)
            self.assertEqual(client.established.server_fingerprint,
                             keys.fingerprint(rsa_key("server", 2048).public_key()))
            reply = yield client.request("register", **new_user(name))
            self.assertEqual(reply["response"], 201)
            self.assertEqual(reply["user"]["account_name"], name)

    @defer.inlineCallbacks
    def test_large_rsa_oaep_frames(self) -> Any:
        """rsa-oaep frames of many chunks (opened off the reactor thread) are answered in
        order, and the connection goes on."""
        yield jimclient.register(self, self.port, "bigfoot")
        client = yield jimclient.connect(self, self.port, suites=(RSA_OAEP,))
        yield client.request("register", **new_user("bigframes"))
        replies = yield defer.gatherResults([
            client.request("search_users", query="big", padding="x" * 20000),
            client.request("search_users", query="foot", padding="y" * 30000)])
        self.assertEqual([r["response"] for r in replies], [202, 202])
        self.assertIn("bigfoot", json.dumps(replies[0]["alert"]))
        self.assertIn("bigfoot", json.dumps(replies[1]["alert"]))
        # Requests answered at once (no database) come back in the order they were
        # sent: a small frame behind a large one waits for it.
        replies = yield defer.gatherResults([
            client.request("fly", padding="x" * 20000), client.request("swim"),
            client.request("dig", padding="y" * 30000), client.request("run")])
        self.assertEqual([r["error"] for r in client.replies[-4:]],
                         ["unknown action 'fly'", "unknown action 'swim'",
                          "unknown action 'dig'", "unknown action 'run'"])

    @defer.inlineCallbacks
    def test_wrong_secret(self) -> Any:
        """A wrong shared secret: exactly {"response":403,"error":"hmac error"}; the
        server closes (the client here never closes by itself)."""
        raw = yield raw_connect(self, self.port)
        handshake = ClientHandshake(b"wrong secret", rsa_key("client", 2048))
        yield wait_for(lambda: len(raw.frames()) == 1, what="the challenge")
        response, _ = handshake.receive(raw.frames()[0])
        raw.send_frame(response)
        yield wait_closed(raw)
        self.assertEqual(raw.frames()[1], b'{"response":403,"error":"hmac error"}')
        self.assertEqual(len(raw.frames()), 2)
        yield self.assert_still_serving()

    @defer.inlineCallbacks
    def test_wrong_secret_reported_to_client(self) -> Any:
        """The test client (as any client) reports the server's 'hmac error' text."""
        client = yield jimclient.connect(self, self.port, handshake=False, secret=b"nope")
        error = yield self.assertFailure(client.ready, HandshakeError)
        self.assertIn("hmac error", error.message)
        self.assertEqual(client.plain_frames, [{"response": 403, "error": "hmac error"}])

    @defer.inlineCallbacks
    def test_changed_server_key_is_refused(self) -> Any:
        """A server whose key is not the pinned one: the client refuses before phase 3."""
        pinned = keys.fingerprint(rsa_key("someone else", 2048).public_key())

        def check(server_key: Any) -> None:
            presented = keys.fingerprint(server_key)
            if presented != pinned:
                raise ServerKeyChanged(f"127.0.0.1:{self.port}", pinned, presented,
                                       "known_servers")
        client = yield jimclient.connect(self, self.port, handshake=False,
                                         check_server_key=check)
        error = yield self.assertFailure(client.ready, ServerKeyChanged)
        self.assertIn("server key changed", error.message)
        self.assertIn(pinned, error.message)
        yield wait_closed(client)
        self.assertIsNone(client.channel)
        yield self.assert_still_serving()

    @defer.inlineCallbacks
    def test_pinned_key_is_accepted(self) -> Any:
        """The same pin check passes for the server's real key."""
        pinned = keys.fingerprint(rsa_key("server", 2048).public_key())
        seen: list[str] = []
        client = yield jimclient.connect(
            self, self.port, check_server_key=lambda k: seen.append(keys.fingerprint(k)))
        self.assertEqual(seen, [pinned])
        reply = yield client.request("register", **new_user("pinned"))
        self.assertEqual(reply["response"], 201)


class UntrustworthyFrameTests(ServerTestCase):
    """A frame that fails to open closes that connection at once; others go on."""

    @defer.inlineCallbacks
    def logged_in_pair(self) -> Any:
        victim, _ = yield jimclient.register(self, self.port, "victim")
        other, _ = yield jimclient.register(self, self.port, "other")
        return victim, other

    @defer.inlineCallbacks
    def assert_dropped(self, victim: Any, other: Any) -> Any:
        yield wait_closed(victim)
        self.assertEqual(victim.unmatched, [], "nothing is sent on an untrusted channel")
        reply = yield other.request("get_contacts")
        self.assertEqual(reply["response"], 202)
        yield self.assert_still_serving()
        self.assertFalse(self.server.ctx.router.is_online(1))

    @defer.inlineCallbacks
    def test_tampered_frame(self) -> Any:
        """One flipped bit in a sealed frame."""
        victim, other = yield self.logged_in_pair()
        sealed = bytearray(victim.channel.seal(jim.encode(
            {"action": "get_contacts", "id": "a" * 32, "time": 1})))
        sealed[5] ^= 0x40
        victim.sendString(bytes(sealed))
        yield self.assert_dropped(victim, other)

    @defer.inlineCallbacks
    def test_reordered_frames(self) -> Any:
        """Two sealed frames sent in the wrong order."""
        victim, other = yield self.logged_in_pair()
        first = victim.channel.seal(jim.encode({"action": "get_contacts", "id": "b" * 32,
                                                "time": 1}))
        second = victim.channel.seal(jim.encode({"action": "get_contacts", "id": "c" * 32,
                                                 "time": 1}))
        victim.sendString(second)
        victim.sendString(first)
        yield self.assert_dropped(victim, other)

    @defer.inlineCallbacks
    def test_replayed_frame(self) -> Any:
        """The same sealed frame sent twice: the first is answered, the copy drops."""
        victim, other = yield self.logged_in_pair()
        sealed = victim.channel.seal(jim.encode({"action": "get_contacts", "id": "d" * 32,
                                                 "time": 1}))
        answered = defer.Deferred()
        victim.pending["d" * 32] = answered
        victim.sendString(sealed)
        reply = yield answered
        self.assertEqual(reply["response"], 202)
        victim.sendString(sealed)
        yield self.assert_dropped(victim, other)

    @defer.inlineCallbacks
    def test_unsealed_garbage_after_handshake(self) -> Any:
        """Random bytes as a phase-3 frame cannot be opened: dropped."""
        victim, other = yield self.logged_in_pair()
        victim.sendString(os.urandom(200))
        yield self.assert_dropped(victim, other)

    @defer.inlineCallbacks
    def test_rsa_oaep_tampered(self) -> Any:
        """The rsa-oaep suite's tag catches a flipped bit too."""
        other, _ = yield jimclient.register(self, self.port, "other")
        victim = yield jimclient.connect(self, self.port, suites=(RSA_OAEP,))
        sealed = bytearray(victim.channel.seal(b'{"action":"quit"}'))
        sealed[-1] ^= 1
        victim.sendString(bytes(sealed))
        yield wait_closed(victim)
        reply = yield other.request("get_contacts")
        self.assertEqual(reply["response"], 202)


class BadInputTests(ServerTestCase):
    """Bad requests get a JIM error with a readable text; the connection stays up."""

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield super().setUp()
        self.client, _ = yield jimclient.register(self, self.port, "alice")

    @defer.inlineCallbacks
    def assert_still_up(self) -> Any:
        reply = yield self.client.request("get_contacts")
        self.assertEqual(reply["response"], 202)
        self.assertTrue(self.client.connected_)

    @defer.inlineCallbacks
    def test_invalid_json(self) -> Any:
        """Sealed bytes that are not JSON: 400 with id null."""
        self.client.send_plaintext(b'{"action": "msg", ')
        reply = yield self.client.wait_unmatched()
        self.assertEqual((reply["response"], reply["id"], reply["error"]),
                         (400, None, "frame is not valid JSON"))
        yield self.assert_still_up()

    @defer.inlineCallbacks
    def test_json_that_is_not_an_object(self) -> Any:
        """[], "x", 1, null and NaN are no JIM messages."""
        for plaintext in (b"[]", b'"x"', b"1", b"null", b'{"a": NaN}', b"1e400"):
            self.client.send_plaintext(plaintext)
            reply = yield self.client.wait_unmatched()
            self.assertEqual(reply["response"], 400, plaintext)
            self.assertIsInstance(reply["error"], str)
        yield self.assert_still_up()

    @defer.inlineCallbacks
    def test_deep_nesting(self) -> Any:
        """JSON nested deep enough to exhaust the parser: a 400, no crash."""
        self.client.send_plaintext(b"{\"a\":" + b"[" * 30000 + b"]" * 30000 + b"}")
        reply = yield self.client.wait_unmatched()
        self.assertEqual(reply["response"], 400)
        yield self.assert_still_up()

    @defer.inlineCallbacks
    def test_wrong_types(self) -> Any:
        """Each wrongly typed field is refused by name."""
        cases = [
            ({"action": "msg", "to": "bob", "message": 5}, "'message' must be a string"),
            ({"action": "msg", "to": ["bob"], "message": "hi"}, "'to' must be a string"),
            ({"action": "history", "with": "bob", "limit": "10"},
             "'limit' must be an integer"),
            ({"action": "history", "with": "bob", "limit": True},
             "'limit' must be an integer"),
            ({"action": "presence", "status": 1}, "'status' must be one of: online, away"),
            ({"action": "sync"}, "'since' is required"),
            ({"action": "search_users", "query": ""},
             "'query' must be 1 to 32 characters long"),
            ({"action": "add_contact", "user_id": "no spaces allowed"},
             "'user_id' must be 3 to 32 characters: letters, digits, '_', '.' or '-',"
             " starting with a letter or digit"),
        ]
        for fields, error in cases:
            action = fields.pop("action")
            reply = yield self.client.request(action, **fields)
            self.assertEqual((reply["response"], reply["error"]), (400, error), action)
        yield self.assert_still_up()

    @defer.inlineCallbacks
    def test_bad_envelope(self) -> Any:
        """A missing action, a malformed id, a time that is no number."""
        self.client.send_raw({"id": "e" * 32, "time": 1})
        reply = yield self.client.wait_unmatched()
        self.assertEqual((reply["response"], reply["id"]), (400, "e" * 32))
        self.assertEqual(reply["error"], "'action' is required and must be a string")
        self.client.send_raw({"action": "get_contacts", "id": "E" * 32, "time": 1})
        reply = yield self.client.wait_unmatched()
        self.assertEqual((reply["response"], reply["id"]), (400, None))
        reply = yield self.client.request("get_contacts", time="now")
        self.assertEqual((reply["response"], reply["error"]),
                         (400, "'time' is required and must be a number"))
        yield self.assert_still_up()

    @defer.inlineCallbacks
    def test_unknown_action(self) -> Any:
        """An unknown action: 400 naming it."""
        reply = yield self.client.request("teleport")
        self.assertEqual((reply["response"], reply["error"]),
                         (400, "unknown action 'teleport'"))
        yield self.assert_still_up()

    @defer.inlineCallbacks
    def test_replayed_request_id(self) -> Any:
        """A request id used twice in one session: the second is refused as a replay."""
        first = yield self.client.request("get_contacts", id="f" * 32)
        self.assertEqual(first["response"], 202)
        self.client.send_raw({"action": "get_contacts", "id": "f" * 32, "time": 1})
        reply = yield self.client.wait_unmatched()
        self.assertEqual((reply["response"], reply["id"], reply["error"]),
                         (400, "f" * 32,
                          "request id already used in this session (replay refused)"))
        yield self.assert_still_up()

    @defer.inlineCallbacks
    def test_oversized_frame_in_phase_3(self) -> Any:
        """Announcing more than max_frame: an encrypted 400 without id, then closed."""
        limit = self.server.config.max_frame
        self.client.transport.write(struct.pack(">I", limit + 1) + b"x" * 1000)
        yield wait_closed(self.client)
        (reply,) = self.client.unmatched
        self.assertEqual((reply["response"], reply["error"]),
                         (400, f"frame too large ({limit + 1} bytes; the limit is {limit})"))
        yield self.assert_still_serving()

    @defer.inlineCallbacks
    def test_no_traceback_ever_reaches_the_client(self) -> Any:
        """A mixed barrage of bad requests: only JIM errors with short texts come back."""
        requests = [("msg", {"to": "nobody", "message": "x"}),
                    ("msg", {"to": "alice", "message": "x" * 60000}),
                    ("add_contact", {"user_id": "ghost"}),
                    ("history", {"with": "ghost"}),
                    ("admin_lock", {"user_id": "alice"}),
                    ("set_password", {"old_password": "nope", "new_password": "longer one"}),
                    ("call_dial", {"user_id": "ghost"}),
                    ("admin_unlock", {"user_id": "ghost"})]
        for action, fields in requests:
            reply = yield self.client.request(action, **fields)
            text = json.dumps(reply)
            self.assertGreaterEqual(reply["response"], 400, action)
            self.assertNotIn("Traceback", text)
            self.assertNotIn('File "', text)
            self.assertLess(len(reply.get("error", "")), 200)
        yield self.assert_still_up()


class RawBytesTests(ServerTestCase):
    """Whatever bytes arrive before the handshake, the server answers plainly or closes."""

    @defer.inlineCallbacks
    def test_oversized_frame_in_handshake(self) -> Any:
        """More than 16 KiB announced before the handshake: plain 400, closed."""
        raw = yield raw_connect(self, self.port)
        raw.transport.write(struct.pack(">I", 16 * 1024 + 1) + b"x" * 100)
        yield wait_closed(raw)
        challenge, error = raw.frames()
        self.assertEqual(json.loads(challenge)["action"], "challenge")
        self.assertEqual(json.loads(error), {
            "response": 400, "error": "frame too large (16385 bytes; the limit is 16384)"})
        yield self.assert_still_serving()

    @defer.inlineCallbacks
    def test_random_garbage(self) -> Any:
        """Random bytes in several writes: the connection is closed, the server serves on."""
        for seed in range(5):
            raw = yield raw_connect(self, self.port)
            for _ in range(4):
                raw.transport.write(os.urandom(3000))
            yield wait_closed(raw)
            for extra in raw.frames()[1:]:
                self.assertEqual(json.loads(extra)["response"], 400)
        yield self.assert_still_serving()

    @defer.inlineCallbacks
    def test_garbage_frame(self) -> Any:
        """A well-framed payload of random bytes instead of the challenge response."""
        raw = yield raw_connect(self, self.port)
        raw.send_frame(b"\xfe\xff" + os.urandom(64))
        yield wait_closed(raw)
        self.assertEqual(json.loads(raw.frames()[1]),
                         {"response": 400, "error": "frame is not valid UTF-8"})

    @defer.inlineCallbacks
    def test_invalid_json_in_handshake(self) -> Any:
        """Valid UTF-8 that is not JSON: a plain 400 naming it, then closed."""
        raw = yield raw_connect(self, self.port)
        raw.send_frame(b"GET / HTTP/1.1")
        yield wait_closed(raw)
        self.assertEqual(json.loads(raw.frames()[1]),
                         {"response": 400, "error": "frame is not valid JSON"})
        yield self.assert_still_serving()

    @defer.inlineCallbacks
    def test_wrong_types_in_handshake(self) -> Any:
        """A challenge response with a nonce of the wrong type: plain 400, closed."""
        raw = yield raw_connect(self, self.port)
        raw.send_frame(b'{"action":"challenge_response","digest":"00","nonce":42}')
        yield wait_closed(raw)
        self.assertEqual(json.loads(raw.frames()[1]),
                         {"response": 400, "error": "'nonce' must be a base64 string"})


class StateActionTests(ServerTestCase):
    """Only the actions allowed in a state are dispatched."""

    @defer.inlineCallbacks
    def test_msg_before_login(self) -> Any:
        """msg before login: 401 'log in first'; the connection stays up."""
        client = yield jimclient.connect(self, self.port)
        reply = yield client.request("msg", to="bob", message="hi")
        self.assertEqual((reply["response"], reply["error"]),
                         (401, "log in first: 'msg' needs an authenticated session"))
        reply = yield client.request("register", **new_user("alice"))
        self.assertEqual(reply["response"], 201)

    @defer.inlineCallbacks
    def test_authenticate_after_login(self) -> Any:
        """authenticate after login: 400 'not allowed after login'."""
        client, _ = yield jimclient.register(self, self.port, "alice")
        reply = yield client.request("authenticate", user={"account_name": "alice",
                                                            "password": "correct horse"})
        self.assertEqual((reply["response"], reply["error"]),
                         (400, "'authenticate' is not allowed after login"))
        reply = yield client.request("get_contacts")
        self.assertEqual(reply["response"], 202)

    @defer.inlineCallbacks
    def test_quit_in_both_phase_3_states(self) -> Any:
        """quit is allowed before and after login: 'bye', then the server closes."""
        before = yield jimclient.connect(self, self.port)
        reply = yield before.request("quit")
        self.assertEqual((reply["response"], reply["alert"]), (200, "bye"))
        yield wait_closed(before)
        after, _ = yield jimclient.register(self, self.port, "alice")
        reply = yield after.request("quit")
        self.assertEqual(reply["response"], 200)
        yield wait_closed(after)
        yield wait_for(lambda: not self.server.ctx.router.is_online(1), what="offline")


class TimeoutTests(ServerTestCase):
    """Every state has a timeout (configured short here)."""

    # Short, but long enough for a handshake or a login on a loaded machine (a login
    # waits for two fsyncs).
    overrides = {"handshake_timeout": 1.0, "login_timeout": 2.0, "probe_interval": 1.0,
                 "probe_timeout": 0.5}

    @defer.inlineCallbacks
    def test_challenge_timeout(self) -> Any:
        """No answer to the challenge: closed after the handshake timeout, nothing sent."""
        raw = yield raw_connect(self, self.port)
        started = time.monotonic()
        yield wait_closed(raw)
        self.assertGreaterEqual(time.monotonic() - started, 0.9)
        self.assertEqual(len(raw.frames()), 1)

    @defer.inlineCallbacks
    def test_keyx_timeout(self) -> Any:
        """The challenge answered, no key exchange: closed after the timeout."""
        raw = yield raw_connect(self, self.port)
        handshake = ClientHandshake(SECRET, rsa_key("client", 2048))
        yield wait_for(lambda: len(raw.frames()) == 1, what="the challenge")
        raw.send_frame(handshake.receive(raw.frames()[0])[0])
        yield wait_for(lambda: len(raw.frames()) == 2, what="the server's digest")
        self.assertEqual(json.loads(raw.frames()[1])["response"], 200)
        (connection,) = self.server_connections()
        self.assertIs(connection.state, State.KEYX)
        yield wait_closed(raw)
        self.assertEqual(len(raw.frames()), 2)

    @defer.inlineCallbacks
    def test_login_timeout(self) -> Any:
        """Handshake done, no login: an encrypted 401 'login timed out', then closed."""
        client = yield jimclient.connect(self, self.port)
        yield wait_closed(client)
        (notice,) = client.unmatched
        self.assertEqual((notice["response"], notice["error"]), (401, "login timed out"))

    @defer.inlineCallbacks
    def test_ready_probe_then_drop(self) -> Any:
        """A logged-in client that does not answer probes gets one, then is dropped."""
        client, _ = yield jimclient.register(self, self.port, "silent", answer_probes=False)
        probe = yield client.wait_push("probe")
        self.assertEqual(len(probe["id"]), 32)
        yield wait_closed(client)
        yield wait_for(lambda: not self.server.ctx.router.is_online(1), what="offline")
        yield self.assert_still_serving()

    @defer.inlineCallbacks
    def test_ready_probe_answered(self) -> Any:
        """A client answering probes with {"response":200,"id":...} stays connected."""
        client, _ = yield jimclient.register(self, self.port, "chatty")
        for _ in range(3):   # each probe answered: the session lives on to the next one
            yield client.wait_push("probe")
        self.assertTrue(client.connected_)
        reply = yield client.request("get_contacts")
        self.assertEqual(reply["response"], 202)

    @defer.inlineCallbacks
    def test_a_dropped_holder_frees_the_account(self) -> Any:
        """A half-open first session (never answers) is probed when a second login comes,
        dropped after the probe timeout, and the next login succeeds."""
        first, _ = yield jimclient.register(self, self.port, "holder", answer_probes=False)
        second = yield jimclient.connect(self, self.port)
        credentials = {"user": {"account_name": "holder", "password": "correct horse"}}
        reply = yield second.request("authenticate", **credentials)
        self.assertEqual(reply["response"], 409)
        yield wait_closed(first)
        third = yield jimclient.connect(self, self.port)
        reply = yield third.request("authenticate", **credentials)
        self.assertEqual(reply["response"], 200)
