"""A small, transparent JIM client for server tests.

It does the two handshake phases with the wire layer's `ClientHandshake`, then sends
requests and matches replies by id. Pushes (frames with an ``action``) queue up in
``pushes``; `wait_push` waits for the next one of an action. It answers probes unless
told not to. This is a test tool, not the client core: it does no reconnecting.
"""

from __future__ import annotations

import os
import time
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.protocol import ClientFactory
from twisted.protocols.basic import Int32StringReceiver

from messenger.wire import jim
from messenger.wire.handshake import ClientHandshake, HandshakeError
from messenger.wire.suites import SUITES
from tests.support.keys import rsa_key
from tests.support.server import SECRET


class JimTestClient(Int32StringReceiver):
    MAX_LENGTH = 16 * 1024 * 1024

    def __init__(self, secret: bytes = SECRET, suites: tuple[str, ...] = SUITES,
                 key_name: str = "client", check_server_key: Any = None,
                 answer_probes: bool = True) -> None:
        self.handshake = ClientHandshake(secret, rsa_key(key_name, 2048), suites,
                                         check_server_key=check_server_key)
        self.channel: Any = None
        self.established: Any = None
        self.ready: defer.Deferred[Any] = defer.Deferred()
        self.closed: defer.Deferred[Any] = defer.Deferred()
        self.pending: dict[str, defer.Deferred[dict[str, Any]]] = {}
        self.pushes: list[dict[str, Any]] = []
        self.plain_frames: list[dict[str, Any]] = []
        self.replies: list[dict[str, Any]] = []
        self._push_waiters: list[tuple[str | None, defer.Deferred[dict[str, Any]]]] = []
        self.answer_probes = answer_probes
        self.connected_ = False

    def connectionMade(self) -> None:
        self.connected_ = True

    def connectionLost(self, reason: Any = None) -> None:
        self.connected_ = False
        if not self.ready.called:
            self.ready.errback(reason)
        for d in list(self.pending.values()):
            if not d.called:
                d.errback(ConnectionError("connection closed"))
        self.pending.clear()
        if not self.closed.called:
            self.closed.callback(None)

    def stringReceived(self, data: bytes) -> None:
        if self.channel is None:
            try:
                reply, established = self.handshake.receive(data)
            except HandshakeError as error:
                self.plain_frames.append(jim.decode(data))
                if not self.ready.called:
                    self.ready.errback(error)
                self.transport.loseConnection()
                return
            if reply is not None:
                self.sendString(reply)
            if established is not None:
                self.established = established
                self.channel = established.channel
                self.ready.callback(self)
            return
        message = jim.decode(self.channel.open(data))
        if "action" in message:
            if message["action"] == "probe" and self.answer_probes:
                self.send_raw({"response": 200, "id": message["id"], "time": time.time()})
            self.pushes.append(message)
            for waiter in list(self._push_waiters):
                action, d = waiter
                if action is None or action == message["action"]:
                    self._push_waiters.remove(waiter)
                    d.callback(message)
                    break
            return
        self.replies.append(message)
        d = self.pending.pop(message.get("id"), None)
        if d is not None:
            d.callback(message)

    def send_raw(self, message: dict[str, Any]) -> None:
        self.sendString(self.channel.seal(jim.encode(message)))

    def request(self, action: str, **fields: Any) -> defer.Deferred[dict[str, Any]]:
        """Send a request; fires with the reply (whatever its code)."""
        request_id = fields.pop("id", None) or os.urandom(16).hex()
        message = {"action": action, "id": request_id, "time": time.time(), **fields}
        d: defer.Deferred[dict[str, Any]] = defer.Deferred()
        self.pending[request_id] = d
        self.send_raw(message)
        return d

    def wait_push(self, action: str | None = None, timeout: float = 5.0) -> defer.Deferred:
        """The next push of ``action`` not yet consumed (queued ones count)."""
        for message in self.pushes:
            if action is None or message["action"] == action:
                self.pushes.remove(message)
                return defer.succeed(message)
        d: defer.Deferred[dict[str, Any]] = defer.Deferred()
        entry = (action, d)
        self._push_waiters.append(entry)

        def consume(message: dict[str, Any]) -> dict[str, Any]:
            if message in self.pushes:
                self.pushes.remove(message)
            return message
        d.addCallback(consume)
        d.addTimeout(timeout, reactor)
        return d

    def close(self) -> defer.Deferred[Any]:
        if self.connected_:
            self.transport.loseConnection()
        return self.closed


class _Factory(ClientFactory):
    def __init__(self, protocol: JimTestClient) -> None:
        self.protocol_instance = protocol

    def buildProtocol(self, addr: Any) -> JimTestClient:
        return self.protocol_instance

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        if not self.protocol_instance.ready.called:
            self.protocol_instance.ready.errback(reason)


@defer.inlineCallbacks
def connect(testcase: Any, port: int, handshake: bool = True, **kwargs: Any) -> Any:
    """Connect to 127.0.0.1:port; fires with the client once the handshake is done."""
    client = JimTestClient(**kwargs)
    reactor.connectTCP("127.0.0.1", port, _Factory(client))
    testcase.addCleanup(client.close)
    if handshake:
        yield client.ready
    return client


def new_user(name: str, password: str = "correct horse", email: str | None = None,
             **extra: Any) -> dict[str, Any]:
    return {"user": {"account_name": name, "password": password,
                     "email": email or f"{name.lower()}@example.org"}, **extra}


@defer.inlineCallbacks
def register(testcase: Any, port: int, name: str, **kwargs: Any) -> Any:
    """Connect and register ``name``; fires with (client, reply)."""
    client = yield connect(testcase, port, **kwargs)
    reply = yield client.request("register", **new_user(name))
    return client, reply
