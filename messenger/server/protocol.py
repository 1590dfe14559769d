"""One client connection: the state machine CHALLENGE -> KEYX -> UNAUTHENTICATED -> READY.

Frames are length-prefixed (`Int32StringReceiver`). In CHALLENGE and KEYX they are plain
JSON handled by `ServerHandshake`; afterwards each frame goes open (decrypt) -> decode ->
validate -> dispatch, and the reply goes back sealed. Every state has a timeout; only the
actions allowed in a state are dispatched; every failure of a request becomes one error
reply in `_send_error`, and the connection stays up unless the frame itself could not be
trusted (a frame that fails to open closes the connection at once).
"""

from __future__ import annotations

import os
from collections import deque
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure

from messenger.server.dispatch import ROUTES
from messenger.server.states import TRANSITIONS, State
from messenger.wire import codes, jim
from messenger.wire.errors import (
    BadRequest,
    MessengerError,
    NotAuthorised,
    ServerError,
    TooManyRequests,
)
from messenger.wire.handshake import HandshakeError, ServerHandshake
from messenger.wire.suites import ChannelError

if TYPE_CHECKING:
    from messenger.server.context import Account, ServerContext

HANDSHAKE_MAX_FRAME = 16 * 1024
SEEN_IDS = 1024


class ServerProtocol(Int32StringReceiver):
    log = Logger()

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.MAX_LENGTH = HANDSHAKE_MAX_FRAME
        self.state = State.CHALLENGE
        self.account: Account | None = None
        self.address = "?"
        self.token_hash: str | None = None
        self.status = "online"
        self.active = True
        self.idle_since = 0.0
        self.probe_id: str | None = None
        self.probe_sent = 0.0
        self.strikes = 0
        self.bucket: Any = None
        self.contact_ids: list[int] = []
        self._handshake: ServerHandshake | None = None
        self._open: Any = None
        self._seal: Any = None
        self._timer: IDelayedCall | None = None
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()

    # -- connection lifecycle -------------------------------------------------------------

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.address = getattr(peer, "host", "?")
        allowed, retry = self.ctx.limits.allow_connection(self.address)
        if not allowed:
            self.log.info("Refused a connection from {address}: too many", address=self.address)
            self.sendString(jim.encode(TooManyRequests(
                "too many connections from your address", retry).to_reply()))
            self._enter(State.CLOSED)
            self.transport.loseConnection()
            return
        self.bucket = self.ctx.limits.request_bucket()
        self._handshake = ServerHandshake(self.ctx.secret, self.ctx.server_key,
                                          self.ctx.config.suites)
        self.sendString(self._handshake.start())
        self._start_timer(self.ctx.config.handshake_timeout, "handshake timed out")

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        was_ready = self.state is State.READY
        self.state = State.CLOSED
        self._cancel_timer()
        if was_ready and self.account is not None:
            self.ctx.session_ended(self)

    def _enter(self, state: State) -> None:
        if state not in TRANSITIONS[self.state]:
            raise RuntimeError(f"no transition {self.state.value} -> {state.value}")
        self.state = state
        self._cancel_timer()
        if state is State.KEYX:
            self._start_timer(self.ctx.config.handshake_timeout, "handshake timed out")
        elif state is State.UNAUTHENTICATED:
            self.MAX_LENGTH = self.ctx.config.max_frame
            self._start_timer(self.ctx.config.login_timeout, "login timed out")
        elif state is State.READY:
            self.idle_since = self.ctx.clock.seconds()

    def _start_timer(self, seconds: float, reason: str) -> None:
        self._timer = self.ctx.clock.callLater(seconds, self._timed_out, reason)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _timed_out(self, reason: str) -> None:
        self._timer = None
        self.log.info("Dropping {address} in state {state}: {reason}", address=self.address,
                      state=self.state.value, reason=reason)
        if self.state is State.UNAUTHENTICATED:
            self.push({"response": codes.NOT_AUTHORISED, "error": reason,
                       "time": self.ctx.clock.seconds()})
        self.close()

    def close(self) -> None:
        """Flush what is written and close."""
        if self.state is not State.CLOSED:
            self._enter(State.CLOSED)
            self.transport.loseConnection()

    def abort(self, reason: str) -> None:
        """Close at once: the peer cannot be trusted any more."""
        self.log.warn("Aborting connection from {address}: {reason}", address=self.address,
                      reason=reason)
        if self.state is not State.CLOSED:
            self._enter(State.CLOSED)
        self.transport.abortConnection()

    def lengthLimitExceeded(self, length: int) -> None:
        self.log.warn("Frame of {length} bytes from {address} exceeds the limit",
                      length=length, address=self.address)
        error = {"response": codes.BAD_REQUEST,
                 "error": f"frame too large ({length} bytes; the limit is {self.MAX_LENGTH})"}
        if self._seal is not None:
            self.push(error)
        elif self.state is not State.CLOSED:
            self.sendString(jim.encode(error))
        self.close()

    # -- frames ---------------------------------------------------------------------------

    def stringReceived(self, data: bytes) -> None:
        if self._open is not None:
            self._on_frame(data)
        elif self.state is State.CHALLENGE or self.state is State.KEYX:
            self._on_handshake(data)

    def _on_handshake(self, data: bytes) -> None:
        assert self._handshake is not None
        try:
            reply, established = self._handshake.receive(data)
        except HandshakeError as error:
            self.log.info("Handshake with {address} failed: {error}", address=self.address,
                          error=error.message)
            if error.reply is not None:
                self.sendString(error.reply)
            self.close()
            return
        self.sendString(reply)
        if established is None:
            self._enter(State.KEYX)
            return
        self._handshake = None
        self._open = established.channel.open
        self._seal = established.channel.seal
        self._enter(State.UNAUTHENTICATED)

    def _on_frame(self, data: bytes) -> None:
        try:
            plaintext = self._open(data)
        except ChannelError as error:
            self.abort(str(error))
            return
        self.active = True
        request_id = None
        try:
            request = jim.decode(plaintext)
            if "action" not in request and "response" in request:
                self._on_client_reply(request)
                return
            action = jim.validate_envelope(request)
            request_id = request["id"]
            if request_id in self._seen:
                self.log.warn("Replayed request id from {address} ({account}): refused",
                              address=self.address, account=self.account_name)
                raise BadRequest("request id already used in this session (replay refused)")
            self._remember(request_id)
            bucket = self.bucket
            if bucket is not None:
                allowed, retry = bucket.check(self.ctx.clock.seconds())
            else:
                allowed = True
            if not allowed:
                self.strikes += 1
                if self.strikes > self.ctx.config.limits.strikes_before_drop:
                    self.log.warn("Dropping {address}: kept exceeding the request rate",
                                  address=self.address)
                    self._send_error(request_id, TooManyRequests(
                        "too many requests; closing the connection", retry))
                    self.close()
                    return
                raise TooManyRequests("too many requests; slow down", retry)
            if self.strikes:
                self.strikes = 0
            route = ROUTES.get(action)
            if route is None:
                raise BadRequest(f"unknown action '{action[:64]}'")
            if self.state not in route.states:
                if self.state is State.READY:
                    raise BadRequest(f"'{action}' is not allowed after login")
                raise NotAuthorised(f"log in first: '{action}' needs an authenticated session")
            jim.validate_request(action, request)
            result = route.handler(self, request)
        except MessengerError as error:
            self._send_error(request_id, error)
            return
        except Exception:
            self.log.failure("Request from {address} failed", address=self.address)
            self._send_error(request_id, ServerError("internal server error"))
            return
        if result is None:
            return
        if isinstance(result, defer.Deferred):
            result.addCallbacks(self._reply_result, self._reply_failure,
                                callbackArgs=(request_id,), errbackArgs=(request_id,))
        else:
            self.reply(request_id, result)

    def _remember(self, request_id: str) -> None:
        self._seen.add(request_id)
        order = self._seen_order
        order.append(request_id)
        if len(order) > SEEN_IDS:
            self._seen.discard(order.popleft())

    def _on_client_reply(self, reply: dict[str, Any]) -> None:
        """A reply from the client: the answer to our probe."""
        if self.probe_id is not None and reply.get("id") == self.probe_id:
            self.probe_id = None

    def _reply_result(self, result: dict[str, Any] | None, request_id: str) -> None:
        if result is not None:
            self.reply(request_id, result)

    def _reply_failure(self, failure: Failure, request_id: str) -> None:
        if isinstance(failure.value, MessengerError):
            self._send_error(request_id, failure.value)
        else:
            self.log.failure("Request from {address} failed", failure, address=self.address)
            self._send_error(request_id, ServerError("internal server error"))

    # -- sending --------------------------------------------------------------------------

    def push_encoded(self, payload: bytes) -> None:
        """Send an already encoded JIM object (a push or a reply)."""
        if self.state is State.CLOSED or self._seal is None:
            return
        self.sendString(self._seal(payload))

    def push(self, message: dict[str, Any]) -> None:
        self.push_encoded(jim.encode(message))

    def reply(self, request_id: str | None, body: dict[str, Any]) -> None:
        body["id"] = request_id
        if "time" not in body:
            body["time"] = self.ctx.clock.seconds()
        self.push_encoded(jim.encode(body))

    def _send_error(self, request_id: str | None, error: MessengerError) -> None:
        self.reply(request_id, error.to_reply())

    def send_error(self, request_id: str | None, error: MessengerError) -> None:
        self._send_error(request_id, error)

    # -- login and keepalive --------------------------------------------------------------

    @property
    def account_name(self) -> str | None:
        return self.account.name if self.account is not None else None

    def logged_in(self, account: Account) -> None:
        """Called by the accounts handler once this session owns its account."""
        self.account = account
        self._enter(State.READY)

    def probe(self, now: float) -> None:
        self.probe_id = os.urandom(16).hex()
        self.probe_sent = now
        self.push({"action": "probe", "id": self.probe_id, "time": now})

    def check_alive(self, now: float) -> None:
        """Called by the sweeper: probe a silent session, drop one that does not answer."""
        if self.state is not State.READY:
            return
        if self.active:
            self.active = False
            self.idle_since = now
            return
        if self.probe_id is not None:
            if now - self.probe_sent >= self.ctx.config.probe_timeout:
                self.log.info("Dropping {account} at {address}: no answer to probe",
                              account=self.account_name, address=self.address)
                self.transport.abortConnection()
        elif now - self.idle_since >= self.ctx.config.probe_interval:
            self.probe(now)
