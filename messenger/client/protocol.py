"""One connection to a Messenger server, client side.

`ClientProtocol` moves frames: length-prefixed (`Int32StringReceiver`), plain JSON through
`messenger.wire.handshake.ClientHandshake` for phases 1 and 2, then sealed by the
negotiated channel. In phase 3 every frame goes open -> decode -> route: a reply (no
``action``) settles the pending request of its ``id``, the server's ``probe`` is answered
at once, and everything else is a push handed to ``on_push``.

It knows nothing of logins, reconnecting or storage; `messenger.client.core` drives it.
Its outcome: ``established`` (a Deferred: the handshake finished, or why not) and
`when_closed` (a new Deferred per call that fires, never fails, with the exception that
ended the connection).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure

from messenger.client.errors import NotConnected, ProtocolViolation
from messenger.wire import jim
from messenger.wire.errors import BadRequest, error_from_reply
from messenger.wire.handshake import ClientHandshake, Established, HandshakeError
from messenger.wire.suites import ChannelError

HANDSHAKE_MAX_FRAME = 16 * 1024
# Replies can be larger than what the server accepts (a sync page of long messages), so
# the client's own limit is generous; it still bounds what one frame may make us buffer.
MAX_FRAME = 32 * 1024 * 1024


def new_request_id() -> str:
    """128 random bits as 32 lowercase hex digits."""
    return os.urandom(16).hex()


def _ignore(message: dict[str, Any]) -> None:
    return None


class ClientProtocol(Int32StringReceiver):
    log = Logger()

    def __init__(self, handshake: ClientHandshake, clock: Any,
                 max_frame: int = MAX_FRAME) -> None:
        self.MAX_LENGTH = HANDSHAKE_MAX_FRAME
        self._handshake: ClientHandshake | None = handshake
        self._clock = clock
        self._max_frame = max_frame
        self._seal: Callable[[bytes], bytes] | None = None
        self._open: Callable[[bytes], bytes] | None = None
        self._pending: dict[str, defer.Deferred[dict[str, Any]]] = {}
        self.established: defer.Deferred[Established] = defer.Deferred()
        self.close_reason: BaseException | None = None
        self._close_waiters: list[defer.Deferred[BaseException]] = []
        self.on_push: Callable[[dict[str, Any]], None] = _ignore
        self.on_orphan_reply: Callable[[dict[str, Any]], None] = _ignore
        self.last_received = clock.seconds()
        self.connected_ = False
        self._failure: BaseException | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.connected_ = True
        self.last_received = self._clock.seconds()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.connected_ = False
        self._seal = self._open = None
        cause = self._failure
        if cause is None:
            cause = reason.value if reason is not None else ConnectionDone()
        if not self.established.called:
            self.established.errback(cause)
        pending, self._pending = self._pending, {}
        for d in pending.values():
            d.errback(NotConnected("the connection was lost before the reply"))
        self.close_reason = cause
        waiters, self._close_waiters = self._close_waiters, []
        for waiter in waiters:
            waiter.callback(cause)

    def when_closed(self) -> defer.Deferred[BaseException]:
        """Fires with the reason once the connection has closed (at once if it has)."""
        if self.close_reason is not None:
            return defer.succeed(self.close_reason)
        waiter: defer.Deferred[BaseException] = defer.Deferred()
        self._close_waiters.append(waiter)
        return waiter

    @property
    def ready(self) -> bool:
        """Phase 3 is up and the connection is open: requests can be sent."""
        return self._seal is not None and self.connected_

    def close(self) -> None:
        """Close after what is written has been sent."""
        if self.connected_:
            self.transport.loseConnection()

    def abort(self, cause: BaseException) -> None:
        """Drop the connection at once, with ``cause`` as the reason."""
        if self._failure is None:
            self._failure = cause
        self._seal = None
        if self.connected_:
            self.transport.abortConnection()

    def lengthLimitExceeded(self, length: int) -> None:
        self.abort(ProtocolViolation(
            f"the server sent a frame of {length} bytes; the limit is {self.MAX_LENGTH}"))

    # -- frames ---------------------------------------------------------------------------

    def stringReceived(self, data: bytes) -> None:
        self.last_received = self._clock.seconds()
        if self._open is not None:
            self._on_frame(data)
        elif self._handshake is not None:
            self._on_handshake_frame(data)

    def _on_handshake_frame(self, data: bytes) -> None:
        handshake = self._handshake
        assert handshake is not None
        try:
            reply, established = handshake.receive(data)
        except HandshakeError as error:
            self._handshake = None
            self._failure = error
            self.transport.loseConnection()
            return
        if reply is not None:
            self.sendString(reply)
        if established is not None:
            self._handshake = None
            self._seal = established.channel.seal
            self._open = established.channel.open
            self.MAX_LENGTH = self._max_frame
            self.established.callback(established)

    def _on_frame(self, data: bytes) -> None:
        assert self._open is not None
        try:
            plaintext = self._open(data)
        except ChannelError as error:
            self.abort(ProtocolViolation(f"a frame from the server failed to open: {error}"))
            return
        try:
            message = jim.decode(plaintext)
        except BadRequest as error:
            self.log.warn("Ignoring an undecodable frame from the server: {error}",
                          error=error.message)
            return
        action = message.get("action")
        if action is None:
            self._on_reply(message)
        elif action == "probe":
            self._answer_probe(message)
        else:
            self.on_push(message)

    def _on_reply(self, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        d = self._pending.pop(request_id, None) if type(request_id) is str else None
        if d is None:
            self.on_orphan_reply(message)
            return
        response = message.get("response")
        if type(response) is int and response < 400:
            d.callback(message)
        else:
            d.errback(error_from_reply(message))

    def _answer_probe(self, message: dict[str, Any]) -> None:
        probe_id = message.get("id")
        if type(probe_id) is str and self._seal is not None:
            self._send({"response": 200, "id": probe_id, "time": self._clock.seconds()})

    # -- sending --------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        assert self._seal is not None
        self.sendString(self._seal(jim.encode(message)))

    def request(self, action: str, fields: dict[str, Any] | None = None,
                request_id: str | None = None) -> defer.Deferred[dict[str, Any]]:
        """Send a request; the Deferred fires with a success reply (code below 400) or
        fails with the `MessengerError` of an error reply, or `NotConnected`."""
        if not self.ready:
            return defer.fail(NotConnected("not connected"))
        if request_id is None:
            request_id = new_request_id()
        elif request_id in self._pending:
            return defer.fail(ValueError("a request with this id is already pending"))
        message = {"action": action, "id": request_id, "time": self._clock.seconds()}
        if fields:
            message.update(fields)
        d: defer.Deferred[dict[str, Any]] = defer.Deferred()
        self._pending[request_id] = d
        self._send(message)
        return d

    @property
    def pending_requests(self) -> int:
        return len(self._pending)
