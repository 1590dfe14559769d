"""A small, transparent JIM client for server tests.

It does the two handshake phases with the wire layer's `ClientHandshake`, then sends
requests and matches replies by id. Pushes (frames with an ``action``) queue up in
``pushes``; `wait_push` waits for the next one of an action. Replies that match no
pending request (``"id": null`` errors, a reply to a duplicate id) queue up in
``unmatched``; `wait_unmatched` waits for the next one. It answers probes unless told
not to. This is a test tool, not the client core: it does no reconnecting.

`connect` can bind the client's end to another loopback address (``bind="127.0.0.2"``:
the server sees a new peer address) and speak TLS (``tls=`` a client connection creator
from `messenger.client.tls`). `RawClient` / `raw_connect` speak bytes, for tests of what
a broken or hostile peer sends.
"""

from __future__ import annotations

import os
import struct
import time
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.protocols.basic import Int32StringReceiver

from messenger.wire import binary, jim
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
        self.unmatched: list[dict[str, Any]] = []
        self._unmatched_waiters: list[defer.Deferred[dict[str, Any]]] = []
        self.lost_reason: Any = None
        self.data_frames: list[Any] = []
        self._data_waiters: list[defer.Deferred[Any]] = []
        self._push_waiters: list[tuple[str | None, defer.Deferred[dict[str, Any]]]] = []
        self.answer_probes = answer_probes
        self.connected_ = False

    def connectionMade(self) -> None:
        self.connected_ = True

    def connectionLost(self, reason: Any = None) -> None:
        self.connected_ = False
        self.lost_reason = reason
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
        plaintext = self.channel.open(data)
        if binary.is_binary(plaintext):
            self._binary(plaintext)
            return
        message = jim.decode(plaintext)
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
        elif self._unmatched_waiters:
            self._unmatched_waiters.pop(0).callback(message)
        else:
            self.unmatched.append(message)

    def _binary(self, plaintext: bytes) -> None:
        """A binary file frame (FILE_DATA): queued in ``data_frames``."""
        frame = binary.parse(plaintext)
        self.data_frames.append(frame)
        if self._data_waiters:
            self._data_waiters.pop(0).callback(self.data_frames.pop(0))

    def wait_data(self, timeout: float = 10.0) -> defer.Deferred[Any]:
        """The next FILE_DATA frame (a `binary.DataFrame`; queued ones first)."""
        if self.data_frames:
            return defer.succeed(self.data_frames.pop(0))
        d: defer.Deferred[Any] = defer.Deferred()
        self._data_waiters.append(d)
        d.addTimeout(timeout, reactor)
        return d

    def send_raw(self, message: dict[str, Any]) -> None:
        self.sendString(self.channel.seal(jim.encode(message)))

    def send_plaintext(self, plaintext: bytes) -> None:
        """Seal any bytes (invalid JSON, a list, ...) and send them as one frame."""
        self.sendString(self.channel.seal(plaintext))

    def wait_unmatched(self, timeout: float = 5.0) -> defer.Deferred[dict[str, Any]]:
        """The next reply that matched no pending request (queued ones first)."""
        if self.unmatched:
            return defer.succeed(self.unmatched.pop(0))
        d: defer.Deferred[dict[str, Any]] = defer.Deferred()
        self._unmatched_waiters.append(d)
        d.addTimeout(timeout, reactor)
        return d

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
def connect(testcase: Any, port: int, handshake: bool = True, bind: str | None = None,
            tls: Any = None, host: str = "127.0.0.1", **kwargs: Any) -> Any:
    """Connect to host:port; fires with the client once the handshake is done.

    ``bind``: the local address to connect from (e.g. "127.0.0.2"); ``tls``: a client TLS
    connection creator, to connect to the server's TLS listener.
    """
    client = JimTestClient(**kwargs)
    bind_address = (bind, 0) if bind else None
    if tls is not None:
        reactor.connectSSL(host, port, _Factory(client), tls, bindAddress=bind_address)
    else:
        reactor.connectTCP(host, port, _Factory(client), bindAddress=bind_address)
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


class RawClient(Protocol):
    """Bytes in, bytes out: what a broken or hostile peer does, and what it gets back."""

    def __init__(self) -> None:
        self.received = b""
        self.connected_ = False
        self.made: defer.Deferred[RawClient] = defer.Deferred()
        self.closed: defer.Deferred[None] = defer.Deferred()
        self.lost_reason: Any = None

    def connectionMade(self) -> None:
        self.connected_ = True
        self.made.callback(self)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Any = None) -> None:
        self.connected_ = False
        self.lost_reason = reason
        if not self.closed.called:
            self.closed.callback(None)

    def send_frame(self, payload: bytes) -> None:
        self.transport.write(struct.pack(">I", len(payload)) + payload)

    def frames(self) -> list[bytes]:
        """The complete frames received so far."""
        frames, data = [], self.received
        while len(data) >= 4:
            (length,) = struct.unpack(">I", data[:4])
            if len(data) < 4 + length:
                break
            frames.append(data[4:4 + length])
            data = data[4 + length:]
        return frames

    def close(self) -> defer.Deferred[None]:
        if self.connected_:
            self.transport.abortConnection()
        return self.closed


class _RawFactory(ClientFactory):
    def __init__(self, protocol: RawClient) -> None:
        self.protocol_instance = protocol

    def buildProtocol(self, addr: Any) -> RawClient:
        return self.protocol_instance

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.protocol_instance.made.errback(reason)


@defer.inlineCallbacks
def raw_connect(testcase: Any, port: int, bind: str | None = None) -> Any:
    """A `RawClient` connected to 127.0.0.1:port (fires once the TCP connection is up)."""
    client = RawClient()
    reactor.connectTCP("127.0.0.1", port, _RawFactory(client),
                       bindAddress=(bind, 0) if bind else None)
    testcase.addCleanup(client.close)
    yield client.made
    return client


def wait_closed(client: Any, timeout: float = 10.0) -> defer.Deferred[None]:
    """Fires when ``client`` (a JimTestClient or RawClient) has lost its connection."""
    d: defer.Deferred[None] = defer.Deferred()
    client.closed.addBoth(lambda result: (d.callback(None) if not d.called else None, result)[1])
    d.addTimeout(timeout, reactor)
    return d
