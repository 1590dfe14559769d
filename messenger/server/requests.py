"""One opened frame's way through the server: rate check, decode, validate, route, settle.

`dispatch` is called for every phase-3 frame with its plaintext. The request is charged
to the connection's leaky bucket by its size (a large frame costs more than a small one:
decoding is work), refused cheaply when it cannot be a JIM object, decoded, checked
against the replay window, routed through the dispatch table (only the actions allowed in
the connection's state), validated, and handed to its handler. The handler's outcome, at
once or when its Deferred fires, goes to ``session.answer``, the one reply path.

Per connection, `RequestState` also bounds the work in flight: past a number of requests
awaiting their outcome (or a few heavy ones: pages, searches, logins) the connection
stops being read until they are answered, so pipelining cannot queue unbounded work; and
a connection that keeps sending bad requests is closed.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from messenger.server.dispatch import ROUTES
from messenger.server.files import frames
from messenger.server.ratelimit import Bucket
from messenger.server.replies import Later
from messenger.server.states import State
from messenger.wire import binary, jim
from messenger.wire.errors import (
    BadRequest,
    MessengerError,
    NotAuthorised,
    ServerError,
    TooManyRequests,
)

if TYPE_CHECKING:
    from messenger.server.protocol import ServerProtocol

log = Logger()

SEEN_IDS = 1024          # request ids remembered per connection (replay refusal)
MAX_IN_FLIGHT = 256      # requests awaiting their outcome before reading stops
MAX_HEAVY = 4            # heavy requests (pages, searches, logins) likewise
COST_UNIT = 8192         # each started 8 KiB of a frame costs one more request


class RequestState:
    """The per-connection bookkeeping of requests."""

    __slots__ = ("bucket", "strikes", "bad", "crypto", "seen", "seen_order", "in_flight",
                 "heavy", "_crypto_wait")

    def __init__(self, ctx: Any) -> None:
        self.bucket: Bucket | None = ctx.limits.request_bucket()
        self.strikes = 0                      # rate-limit refusals in a row
        self.bad: Bucket | None = ctx.limits.bad_request_bucket()
        self.crypto: Bucket | None = ctx.limits.crypto_bucket()
        self.seen: set[str] = set()
        self.seen_order: deque[str] = deque()
        self.in_flight = 0
        self.heavy = 0
        self._crypto_wait: Any = None

    def remember(self, request_id: str, session: ServerProtocol) -> None:
        """Refuse a request id already used in this session (a replay)."""
        if request_id in self.seen:
            session.ctx.refusals.note("replayed request id", session.address)
            raise BadRequest("request id already used in this session (replay refused)")
        self.seen.add(request_id)
        order = self.seen_order
        order.append(request_id)
        if len(order) > SEEN_IDS:
            self.seen.discard(order.popleft())

    def forget(self, request_id: str | None) -> None:
        """A request refused with "nothing was done, try again" (429, 503): the client may
        send the same id again in this session (a message keeps its id until stored)."""
        if request_id is not None:
            self.seen.discard(request_id)

    def started(self, session: ServerProtocol, heavy: bool) -> None:
        self.in_flight += 1
        if heavy:
            self.heavy += 1
        if self.in_flight >= MAX_IN_FLIGHT or self.heavy >= MAX_HEAVY:
            session.gate.hold("requests")

    def finished(self, session: ServerProtocol, heavy: bool) -> None:
        self.in_flight -= 1
        if heavy:
            self.heavy -= 1
        if self.in_flight < MAX_IN_FLIGHT and self.heavy < MAX_HEAVY:
            session.gate.release("requests")

    def charge_crypto(self, session: ServerProtocol, chunks: int) -> None:
        """Count ``chunks`` RSA private-key operations; past the connection's budget,
        stop reading until it has refilled (the frame at hand is still opened: its
        counter cannot be skipped)."""
        bucket = self.crypto
        if bucket is None:
            return
        clock = session.ctx.clock
        bucket.record(clock.seconds(), chunks)
        excess = bucket.level - bucket.burst
        if excess > 0 and self._crypto_wait is None:
            session.gate.hold("crypto budget")
            self._crypto_wait = clock.callLater(excess / bucket.rate, self._crypto_refilled,
                                                session)

    def _crypto_refilled(self, session: ServerProtocol) -> None:
        self._crypto_wait = None
        session.gate.release("crypto budget")

    def close(self) -> None:
        """The connection is gone: cancel what waits for it."""
        if self._crypto_wait is not None and self._crypto_wait.active():
            self._crypto_wait.cancel()
        self._crypto_wait = None

    def bad_request(self, session: ServerProtocol) -> bool:
        """Count one bad request; True when the connection has sent too many."""
        return self.bad is not None and not self.bad.check(session.ctx.clock.seconds())[0]


def _request_id_of(message: Any) -> str | None:
    """The request's id if it is a well-formed one (for error replies), else None."""
    if type(message) is dict:
        request_id = message.get("id")
        if type(request_id) is str and jim.REQUEST_ID_RE.fullmatch(request_id):
            return request_id
    return None


def dispatch(session: ServerProtocol, plaintext: bytes) -> None:
    """One opened frame: rate check, decode, validate, route, and settle its outcome."""
    session.active = True
    if plaintext[:1] in binary.MARKS:   # file bytes (PROTOCOL.md "Files"): not a request
        frames.handle(session.ctx.files, session, plaintext)
        return
    state = session.requests
    bucket = state.bucket
    if bucket is not None:
        allowed, retry = bucket.check(session.ctx.clock.seconds(),
                                      1 + len(plaintext) // COST_UNIT)
        if not allowed:
            _rate_limited(session, plaintext, retry)
            return
        if state.strikes:
            state.strikes = 0
    request = request_id = None
    try:
        if plaintext[:1] != b"{" and plaintext.lstrip()[:1] != b"{":
            raise BadRequest("a JIM message must be a JSON object")
        request = jim.decode(plaintext)
        if "action" not in request and "response" in request:
            session.on_client_reply(request)
            return
        action = jim.validate_envelope(request)
        request_id = request["id"]
        state.remember(request_id, session)
        route = ROUTES.get(action)
        if route is None:
            raise BadRequest(f"unknown action '{action[:64]}'")
        session.ctx.metrics.request(action)
        if session.state not in route.states:
            if session.state is State.READY:
                raise BadRequest(f"'{action}' is not allowed after login")
            raise NotAuthorised(f"log in first: '{action}' needs an authenticated session")
        jim.validate_request(action, request)
        result = route.handler(session, request)
    except MessengerError as error:
        _refused(session, request_id or _request_id_of(request), error)
        return
    except Exception:
        log.failure("Request from {address} failed", address=session.address)
        session.answer(request_id, ServerError("internal server error"))
        return
    if result is None:
        return
    if isinstance(result, Later):
        state.started(session, False)
        return
    if isinstance(result, defer.Deferred):
        state.started(session, route.heavy)
        result.addBoth(_settled, session, request_id, route.heavy)
    else:
        session.answer(request_id, result)


def _settled(outcome: Any, session: ServerProtocol, request_id: str, heavy: bool) -> None:
    session.requests.finished(session, heavy)
    # CancelledError: work dropped because the connection went (nobody to tell).
    if isinstance(outcome, Failure) and not outcome.check(MessengerError,
                                                          defer.CancelledError):
        log.failure("Request from {address} failed", outcome, address=session.address)
    session.answer(request_id, outcome)


def _refused(session: ServerProtocol, request_id: str | None, error: MessengerError) -> None:
    session.answer(request_id, error)
    if type(error) is BadRequest and session.requests.bad_request(session):
        session.ctx.refusals.note("too many bad requests", session.address)
        session.close()


def _rate_limited(session: ServerProtocol, plaintext: bytes, retry: float) -> None:
    """A frame over the connection's request rate: 429, and a drop if it keeps on."""
    message: Any = None
    if len(plaintext) <= 512:  # a probe answer is small; a large frame is not decoded
        try:
            message = jim.decode(plaintext)
        except BadRequest:
            pass
    if message is not None and "action" not in message and "response" in message:
        session.on_client_reply(message)  # an answer to our probe is no request
        return
    state = session.requests
    state.strikes += 1
    request_id = _request_id_of(message)
    session.ctx.count("rate_limited_requests")
    if state.strikes > session.ctx.config.limits.strikes_before_drop:
        session.ctx.refusals.note("kept exceeding the request rate", session.address)
        session.refuse(request_id, TooManyRequests(
            "too many requests; closing the connection", retry), drop=True)
        return
    session.refuse(request_id, TooManyRequests("too many requests; slow down", retry),
                   drop=False)
