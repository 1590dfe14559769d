"""The frames of one connection to a Messenger server, client side.

`ClientProtocol` moves frames: length-prefixed (`Int32StringReceiver`), plain JSON through
`messenger.wire.handshake.ClientHandshake` for phases 1 and 2, then sealed by the
negotiated channel. In phase 3 every frame goes open -> decode -> route: a reply (no
``action``) settles the pending request of its ``id`` (`messenger.client.requests`), the
server's ``probe`` is answered at once, and everything else is a push for ``on_push``.

What it buffers is bounded: a handshake frame is at most 16 KiB, a sealed frame at most
what a payload of `MAX_SERVER_PAYLOAD` (1 MiB, docs/PROTOCOL.md) seals to, and the
payload itself at most that; anything larger ends the connection with
`ProtocolViolation`. Requests whose frame would exceed ``max_send`` (the server's
``max_frame``) are refused here with `RequestTooLarge` instead of being sent.

It knows nothing of logins or reconnecting (`messenger.client.connection` drives it). Its
outcome: ``established`` (a Deferred: the handshake finished, or why not) and
`when_closed` (a Deferred per call that fires, never fails, with the reason the
connection ended). When it ends, `when_closed` fires before the pending requests fail,
so the connection's owner learns first that it is gone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure

from messenger.client.errors import (
    ClientError,
    NotConnected,
    ProtocolViolation,
    RequestTooLarge,
    TooManyPending,
)
from messenger.client.requests import PendingRequests, Reply
from messenger.wire import binary, jim
from messenger.wire.errors import BadRequest
from messenger.wire.handshake import ClientHandshake, Established, HandshakeError
from messenger.wire.suites import MAC_SIZE, OAEP_OVERHEAD, RSA_OAEP, ChannelError

HANDSHAKE_MAX_FRAME = 16 * 1024
MIN_RSA_BYTES = 256          # the smallest key either side accepts (2048 bits)
GCM_TAG = 16


def sealed_size(suite: str, payload: int, key_bytes: int = MIN_RSA_BYTES) -> int:
    """How large a payload of ``payload`` bytes is once sealed in ``suite`` (rsa-oaep:
    chunks for a receiver's key of ``key_bytes``; the smallest key gives the most)."""
    if suite == RSA_OAEP:
        chunks = max(math.ceil(payload / (key_bytes - OAEP_OVERHEAD)), 1)
        return chunks * key_bytes + MAC_SIZE
    return payload + GCM_TAG


def _ignore(message: dict[str, Any]) -> None:
    return None


def _ignore_binary(plaintext: bytes) -> None:
    return None


class ClientProtocol(Int32StringReceiver):
    log = Logger()

    def __init__(self, handshake: ClientHandshake, clock: Any,
                 max_payload: int = jim.MAX_SERVER_PAYLOAD,
                 max_pending: int | None = None) -> None:
        self.MAX_LENGTH = HANDSHAKE_MAX_FRAME
        self.max_send = HANDSHAKE_MAX_FRAME
        self._handshake: ClientHandshake | None = handshake
        self._clock = clock
        self._max_payload = max_payload
        self._seal: Callable[[bytes], bytes] | None = None
        self._sealed_size: Callable[[int], int] = lambda size: size
        self._open: Callable[[bytes], bytes] | None = None
        self._pending = (PendingRequests() if max_pending is None
                         else PendingRequests(max_pending))
        self.established: defer.Deferred[Established] = defer.Deferred()
        self.close_reason: BaseException | None = None
        self._close_waiters: list[defer.Deferred[BaseException]] = []
        self.on_push: Callable[[dict[str, Any]], None] = _ignore
        self.on_orphan_reply: Callable[[dict[str, Any]], None] = _ignore
        self.on_binary: Callable[[bytes], None] = _ignore_binary
        self.last_received = clock.seconds()
        self.probes_answered = 0
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
        self.close_reason = cause
        waiters, self._close_waiters = self._close_waiters, []
        for waiter in waiters:
            waiter.callback(cause)
        self._pending.fail_all("the connection was lost before the reply")

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
        """Drop the connection at once, with ``cause`` as the reason; frames still in the
        receive buffer are not read."""
        if self._failure is None:
            self._failure = cause
        self._seal = self._open = None
        self._handshake = None
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
        except (HandshakeError, ClientError) as error:  # ClientError: the pin refused
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
            self.MAX_LENGTH = sealed_size(established.suite, self._max_payload)
            suite, key_bytes = established.suite, (established.peer_key.key_size + 7) // 8
            self._sealed_size = lambda size: sealed_size(suite, size, key_bytes)
            self.established.callback(established)

    def _on_frame(self, data: bytes) -> None:
        assert self._open is not None
        try:
            plaintext = self._open(data)
        except ChannelError as error:
            self.abort(ProtocolViolation(f"a frame from the server failed to open: {error}"))
            return
        if len(plaintext) > self._max_payload:
            self.abort(ProtocolViolation(
                f"the server sent a payload of {len(plaintext)} bytes; the limit is"
                f" {self._max_payload}"))
            return
        if plaintext[:1] in binary.MARKS:   # file data (PROTOCOL.md "Files")
            self.on_binary(plaintext)
            return
        try:
            message = jim.decode(plaintext)
        except BadRequest as error:
            self.log.warn("Ignoring an undecodable frame from the server: {error}",
                          error=error.message)
            return
        action = message.get("action")
        if action is None:
            if not self._pending.settle(message):
                self.on_orphan_reply(message)
        elif action == "probe":
            self._answer_probe(message)
        else:
            self.on_push(message)

    def _answer_probe(self, message: dict[str, Any]) -> None:
        probe_id = message.get("id")
        if type(probe_id) is str and self._seal is not None:
            self.sendString(self._seal(jim.encode(
                {"response": 200, "id": probe_id, "time": self._clock.seconds()})))
            self.probes_answered += 1

    # -- sending --------------------------------------------------------------------------

    def request(self, action: str, fields: dict[str, Any] | None = None,
                request_id: str | None = None) -> Reply:
        """Send a request; the Deferred fires with a success reply (code below 400) or
        fails with the typed error of an error reply, or `NotConnected`."""
        if not self.ready:
            return defer.fail(NotConnected("not connected"))
        try:
            request_id, d = self._pending.add(action, request_id)
        except (TooManyPending, ValueError) as error:
            return defer.fail(error)
        message = {"action": action, "id": request_id, "time": self._clock.seconds()}
        if fields:
            message.update(fields)
        plaintext = jim.encode(message)
        size = self._sealed_size(len(plaintext))
        if size > self.max_send:            # checked before sealing: that counts a frame
            self._pending.forget(request_id)
            return defer.fail(RequestTooLarge(
                f"the request is {size} bytes sealed; the server accepts frames of at most"
                f" {self.max_send}"))
        assert self._seal is not None
        self.sendString(self._seal(plaintext))
        return d

    def send_binary(self, plaintext: bytes) -> None:
        """Send one binary file frame (`messenger.wire.binary`): `NotConnected` unless
        phase 3 is up, `RequestTooLarge` past the server's ``max_frame``."""
        if not self.ready:
            raise NotConnected("not connected")
        size = self._sealed_size(len(plaintext))
        if size > self.max_send:
            raise RequestTooLarge(f"the frame is {size} bytes sealed; the server accepts"
                                  f" frames of at most {self.max_send}")
        assert self._seal is not None
        self.sendString(self._seal(plaintext))

    @property
    def pending_requests(self) -> int:
        return len(self._pending)
