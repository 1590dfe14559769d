"""What a misbehaving server can make the client buffer is bounded (issue 18), and the
client enforces the protocol's 1 MiB for a server payload (issue 24): the client core
over real loopback TCP against a scripted server that runs the real server handshake
and then answers as the test says."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory
from twisted.protocols.basic import Int32StringReceiver
from twisted.trial import unittest

from messenger.client.core import MessengerClient
from messenger.client.errors import ProtocolViolation, TooManyPending
from messenger.client.requests import DEFAULT_LIMIT
from messenger.wire import jim
from messenger.wire.handshake import ServerHandshake
from tests.support.keys import rsa_key
from tests.support.server import SECRET
from tests.support.twistd_server import wait_for

USER = {"account_name": "alice", "email": "a@example.org", "admin": False,
        "premium": False}
Answer = Callable[["ScriptedServer", dict[str, Any]], None]


class ScriptedServer(Int32StringReceiver):
    """Runs the server's handshake, then hands each request to ``factory.answer``."""

    MAX_LENGTH = 1024 * 1024

    def connectionMade(self) -> None:  # noqa: N802
        self.handshake = ServerHandshake(SECRET, rsa_key("server", 2048))
        self.channel: Any = None
        self.sendString(self.handshake.start())

    def stringReceived(self, data: bytes) -> None:  # noqa: N802
        if self.channel is None:
            reply, established = self.handshake.receive(data)
            self.sendString(reply)
            if established is not None:
                self.channel = established.channel
            return
        self.factory.answer(self, jim.decode(self.channel.open(data)))

    def send(self, message: dict[str, Any]) -> None:
        self.sendString(self.channel.seal(jim.encode(message)))

    def send_payload(self, payload: bytes) -> None:
        self.sendString(self.channel.seal(payload))


def login_reply_of_size(request: dict[str, Any], size: int) -> bytes:
    """A login reply to ``request`` padded to exactly ``size`` bytes of JSON."""
    reply = {"response": 200, "id": request["id"], "time": 1.0, "user": USER, "pad": ""}
    pad = size - len(jim.encode(reply))
    reply["pad"] = "x" * pad
    payload = jim.encode(reply)
    assert len(payload) == size
    return payload


class BoundsTests(unittest.TestCase):
    timeout = 60

    def serve(self, answer: Answer) -> int:
        factory = Factory.forProtocol(ScriptedServer)
        factory.answer = answer
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return port.getHost().port

    def client(self, port: int) -> MessengerClient:
        client = MessengerClient("127.0.0.1", port, SECRET, config_dir=Path(self.mktemp()),
                                 client_key=rsa_key("client", 2048))
        self.addCleanup(client.stop)
        return client

    @defer.inlineCallbacks
    def test_a_payload_of_exactly_the_limit_is_taken(self):
        """A login reply of 1,048,576 bytes of JSON is read as any other."""
        def answer(server: ScriptedServer, request: dict[str, Any]) -> None:
            if request["action"] == "authenticate":
                server.send_payload(login_reply_of_size(request, jim.MAX_SERVER_PAYLOAD))
            elif request["action"] == "sync":
                server.send({"response": 202, "id": request["id"], "alert": [],
                             "more": False})
        client = self.client(self.serve(answer))
        reply = yield client.login("alice", "pw")
        self.assertGreater(len(reply["pad"]), 1_000_000)
        self.assertEqual(client.state.name, "online")

    @defer.inlineCallbacks
    def test_a_payload_over_the_limit_ends_the_connection(self):
        """One byte more and the client drops the connection with ProtocolViolation
        instead of taking it (a server may not send more; PROTOCOL.md)."""
        def answer(server: ScriptedServer, request: dict[str, Any]) -> None:
            if request["action"] == "authenticate":
                server.send_payload(login_reply_of_size(request,
                                                        jim.MAX_SERVER_PAYLOAD + 1))
        client = self.client(self.serve(answer))
        error = yield self.assertFailure(client.login("alice", "pw"), ProtocolViolation)
        self.assertIn("the limit is", error.message)
        self.assertEqual(client.state.name, "failed")

    @defer.inlineCallbacks
    def test_a_server_that_never_answers_cannot_pile_up_requests(self):
        """Requests a server leaves unanswered are bounded: past the limit the next one
        fails at once, and the session is still usable once answers come."""
        held: list[tuple[ScriptedServer, dict[str, Any]]] = []

        def answer(server: ScriptedServer, request: dict[str, Any]) -> None:
            action = request["action"]
            if action == "authenticate":
                server.send({"response": 200, "id": request["id"], "user": USER})
            elif action in ("sync", "sync_changes"):   # the core's own, after login
                server.send({"response": 202, "id": request["id"], "alert": [],
                             "more": False, "last_change": 0})
            else:
                held.append((server, request))
        client = self.client(self.serve(answer))
        yield client.login("alice", "pw")
        yield wait_for(lambda: client.changes.cursor is not None, what="the change cursor")
        waiting = [client.get_contacts() for _ in range(DEFAULT_LIMIT)]
        yield self.assertFailure(client.get_contacts(), TooManyPending)
        yield wait_for(lambda: len(held) == DEFAULT_LIMIT, what="every request held")
        for server, request in held:
            server.send({"response": 202, "id": request["id"], "alert": []})
        replies = yield defer.gatherResults(waiting)
        self.assertEqual(len(replies), DEFAULT_LIMIT)

