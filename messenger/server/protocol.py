"""One client connection: the state machine CHALLENGE -> KEYX -> UNAUTHENTICATED -> READY.

Frames are length-prefixed (`Int32StringReceiver`). In CHALLENGE and KEYX they are plain
JSON handled by `ServerHandshake`; afterwards each frame goes open (decrypt) -> rate
check -> decode -> validate -> dispatch, and the reply goes back sealed. Every state has
a timeout; only the actions allowed in a state are dispatched; every failure of a
request becomes one error reply in `_send_error`, and the connection stays up unless the
frame itself could not be trusted (a frame that fails to open closes the connection at
once). Once CLOSED, nothing more is read or written: `_open` and `_seal` are dropped.

The phase-3 frame path (`stringReceived` -> `_on_frame` -> `_dispatch`) is the server's
hot path: no logging, no per-frame allocation beyond what decoding needs, one clock read.
"""

from __future__ import annotations

import os
from collections import deque
from typing import TYPE_CHECKING, Any

from twisted.internet import defer, threads
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure

from messenger.server.dispatch import ROUTES
from messenger.server.portsniff import is_tls_hello
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
from messenger.wire.suites import MAC_SIZE, RSA_OAEP, ChannelError

if TYPE_CHECKING:
    from messenger.server.context import Account, ServerContext

HANDSHAKE_MAX_FRAME = 16 * 1024   # until the handshake is done (PROTOCOL.md section 10)
SEEN_IDS = 1024                   # request ids remembered per connection (replay refusal)
OFFLOAD_CHUNKS = 8                # rsa-oaep frames of more chunks are opened in a thread


def _request_id_of(message: Any) -> str | None:
    """The request's id if it is a well-formed one (for error replies), else None."""
    if type(message) is dict:
        request_id = message.get("id")
        if type(request_id) is str and jim.REQUEST_ID_RE.fullmatch(request_id):
            return request_id
    return None


class ServerProtocol(Int32StringReceiver):
    log = Logger()

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.MAX_LENGTH = HANDSHAKE_MAX_FRAME
        self.state = State.CHALLENGE
        self.account: Account | None = None
        self.address = "?"
        self.token_hash: str | None = None
        self.login_request: str | None = None   # id of the login being processed, if any
        self.status = "online"
        self.active = True          # a frame arrived since the last keepalive sweep
        self.idle_since = 0.0
        self.probe_id: str | None = None
        self.probe_sent = 0.0
        self.strikes = 0            # rate-limit refusals in a row
        self.bucket: Any = None
        self.contact_ids: list[int] = []
        self._handshake: ServerHandshake | None = None
        self._open: Any = None      # channel.open while frames may be read, else None
        self._seal: Any = None      # channel.seal while frames may be written, else None
        self._offload = 0           # frames longer than this are opened in a thread (0: never)
        self._timer: IDelayedCall | None = None
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()

    # -- connection lifecycle -------------------------------------------------------------

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.address = getattr(peer, "host", "?")
        self.ctx.connection_made(self)
        allowed, retry = self.ctx.limits.allow_connection(self.address)
        if not allowed:
            self.log.info("Refused a connection from {address}: too many", address=self.address)
            self.ctx.metrics.refused("connection")
            self.sendString(jim.encode(TooManyRequests(
                "too many connections from your address", retry).to_reply()))
            self.close()
            return
        self.bucket = self.ctx.limits.request_bucket()
        self._handshake = ServerHandshake(self.ctx.secret, self.ctx.server_key,
                                          self.ctx.config.suites)
        self.sendString(self._handshake.start())
        self._start_timer(self.ctx.config.handshake_timeout, "handshake timed out")

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self.state is not State.CLOSED:
            self._enter(State.CLOSED)
        self._handshake = None
        if self.account is not None:
            self.ctx.session_ended(self)
        self.ctx.connection_lost(self)

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
        elif state is State.CLOSED:
            self._open = self._seal = None

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

    def shutdown(self, message: str) -> None:
        """The server is stopping: tell a logged-in user why, then close."""
        if self.state is State.READY:
            self.push({"action": "notice", "level": codes.IMPORTANT_NOTICE,
                       "message": message, "time": self.ctx.clock.seconds()})
        self.close()

    def lengthLimitExceeded(self, length: int) -> None:
        # Never keep the announced frame: Int32StringReceiver would hold on to it.
        self._unprocessed = b""
        if self.state is State.CLOSED:
            return
        if self.state is State.CHALLENGE and is_tls_hello(length):
            self.log.info("A TLS client connected to the plain port from {address}",
                          address=self.address)
            self.close()
            return
        self.log.warn("Frame of {length} bytes from {address} exceeds the limit",
                      length=length, address=self.address)
        error = {"response": codes.BAD_REQUEST,
                 "error": f"frame too large ({length} bytes; the limit is {self.MAX_LENGTH})"}
        if self._seal is not None:
            error["time"] = self.ctx.clock.seconds()
            self.push(error)
        else:
            self.sendString(jim.encode(error))
        self.close()

    # -- frames ---------------------------------------------------------------------------

    def stringReceived(self, data: bytes) -> None:
        if self._open is not None:
            if self._offload and len(data) > self._offload:
                self._open_in_thread(data)
            else:
                self._on_frame(data)
        elif self.state is State.CHALLENGE or self.state is State.KEYX:
            self._on_handshake(data)
        # CLOSED: whatever still arrives is dropped unread.

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
        except Exception:
            self.log.failure("Handshake with {address} failed unexpectedly",
                             address=self.address)
            self.abort("internal error in the handshake")
            return
        self.sendString(reply)
        if established is None:
            self._enter(State.KEYX)
            return
        self._handshake = None
        channel = established.channel
        self._open = channel.open
        self._seal = channel.seal
        if established.suite == RSA_OAEP:
            # One RSA private-key operation per chunk: a large frame would hold the
            # reactor for long (about 2 s for 1 MiB with a 3072-bit key).
            chunk = (self.ctx.server_key.key_size + 7) // 8
            self._offload = OFFLOAD_CHUNKS * chunk + MAC_SIZE
        self._enter(State.UNAUTHENTICATED)

    def _on_frame(self, data: bytes) -> None:
        try:
            plaintext = self._open(data)
        except ChannelError as error:
            self.abort(str(error))
            return
        self._dispatch(plaintext)

    def _open_in_thread(self, data: bytes) -> None:
        """Open a large rsa-oaep frame off the reactor thread; read nothing meanwhile."""
        self.pauseProducing()
        d = threads.deferToThread(self._open, data)
        d.addCallbacks(self._opened_in_thread, self._open_in_thread_failed)

    def _opened_in_thread(self, plaintext: bytes) -> None:
        if self.state is State.CLOSED:
            return
        self._dispatch(plaintext)
        if self.state is not State.CLOSED:
            self.resumeProducing()

    def _open_in_thread_failed(self, failure: Failure) -> None:
        if failure.check(ChannelError):
            self.abort(str(failure.value))
        else:
            self.log.failure("Opening a frame from {address} failed", failure,
                             address=self.address)
            self.abort("internal error while opening a frame")

    def _dispatch(self, plaintext: bytes) -> None:
        """One opened frame: rate check, decode, validate, route, reply."""
        self.active = True
        bucket = self.bucket
        if bucket is not None:
            allowed, retry = bucket.check(self.ctx.clock.seconds())
            if not allowed:
                self._rate_limited(plaintext, retry)
                return
            if self.strikes:
                self.strikes = 0
        request = request_id = None
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
            route = ROUTES.get(action)
            if route is None:
                raise BadRequest(f"unknown action '{action[:64]}'")
            self.ctx.metrics.request(action)
            if self.state not in route.states:
                if self.state is State.READY:
                    raise BadRequest(f"'{action}' is not allowed after login")
                raise NotAuthorised(f"log in first: '{action}' needs an authenticated session")
            jim.validate_request(action, request)
            result = route.handler(self, request)
        except MessengerError as error:
            self._send_error(request_id or _request_id_of(request), error)
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

    def _rate_limited(self, plaintext: bytes, retry: float) -> None:
        """A frame over the connection's request rate: 429, and a drop if it keeps on."""
        try:
            message: Any = jim.decode(plaintext)
        except BadRequest:
            message = None
        if message is not None and "action" not in message and "response" in message:
            self._on_client_reply(message)  # an answer to our probe is no request
            return
        self.strikes += 1
        self.ctx.metrics.refused("request")
        request_id = _request_id_of(message)
        if self.strikes > self.ctx.config.limits.strikes_before_drop:
            self.log.warn("Dropping {address}: kept exceeding the request rate",
                          address=self.address)
            self._send_error(request_id, TooManyRequests(
                "too many requests; closing the connection", retry))
            self.close()
            return
        self._send_error(request_id, TooManyRequests("too many requests; slow down", retry))

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
            try:
                self.reply(request_id, result)
            except Exception:
                self.log.failure("Reply to {address} failed", address=self.address)
                self._send_error(request_id, ServerError("internal server error"))

    def _reply_failure(self, failure: Failure, request_id: str) -> None:
        if isinstance(failure.value, MessengerError):
            self._send_error(request_id, failure.value)
        else:
            self.log.failure("Request from {address} failed", failure, address=self.address)
            self._send_error(request_id, ServerError("internal server error"))

    # -- sending --------------------------------------------------------------------------

    def push_encoded(self, payload: bytes) -> None:
        """Send an already encoded JIM object (a push or a reply); dropped once closed."""
        seal = self._seal
        if seal is not None:
            self.sendString(seal(payload))

    def push(self, message: dict[str, Any]) -> None:
        self.push_encoded(jim.encode(message))

    def reply(self, request_id: str | None, body: dict[str, Any]) -> None:
        body["id"] = request_id
        if "time" not in body:
            body["time"] = self.ctx.clock.seconds()
        self.ctx.metrics.reply(body.get("response", 0))
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
        self.logged_in_at = self.ctx.clock.seconds()
        self._enter(State.READY)

    def probe(self, now: float) -> None:
        """Ask the client whether it is still there; any frame from now on says yes."""
        self.probe_id = os.urandom(16).hex()
        self.probe_sent = now
        self.active = False
        self.push({"action": "probe", "id": self.probe_id, "time": now})

    def check_alive(self, now: float) -> None:
        """Called by the sweeper: probe a silent session, drop one that does not answer."""
        if self.state is not State.READY:
            return
        if self.active:
            # A frame since the last sweep (or since the probe): the client is there.
            self.active = False
            self.idle_since = now
            self.probe_id = None
            return
        if self.probe_id is not None:
            if now - self.probe_sent >= self.ctx.config.probe_timeout:
                self.log.info("Dropping {account} at {address}: no answer to probe",
                              account=self.account_name, address=self.address)
                self._enter(State.CLOSED)
                self.transport.abortConnection()
        elif now - self.idle_since >= self.ctx.config.probe_interval:
            self.probe(now)
