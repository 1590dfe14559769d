"""The one place where a handler's outcome becomes a reply frame.

Handlers return a value or raise; they never write to a connection. What they may return:

* a ``dict``: the reply body (``response`` and its fields); ``id`` and ``time`` are added;
* an `Ack`: the acknowledgement of a stored message, written out directly (the hot path);
* a `Page`: a list reply (``alert``) cut by its *encoded* size, so that no frame the server
  sends exceeds `jim.MAX_SERVER_PAYLOAD` whatever the items hold (JSON escapes a control
  character into six bytes: counting characters is not enough); a page cut short says
  ``"more": true`` and the client asks for the rest;
* `Closing(body)`: reply, then close the connection (``quit``, ``logout``);
* a `Later`: the outcome comes after the handler returned, from the component the handler
  gave it to, which calls ``settle(outcome)`` once (the message path, which runs tens of
  thousands of times a second, without a Deferred's cost);
* ``None``: no reply is owed.

A `MessengerError` becomes its error reply; anything else becomes a generic 500 (the
traceback goes to the log, never to the client). `encode_reply` turns an outcome into the
JSON payload; the connection seals and sends it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from twisted.logger import Logger
from twisted.python.failure import Failure

from messenger.wire import codes, jim
from messenger.wire.errors import MessengerError, NotAuthorised, ServerError

log = Logger()

INTERNAL_ERROR = "internal server error"


class Ack(NamedTuple):
    """A message committed: ``{"response": 200, "msg_id", "time", "id"}``."""

    msg_id: int
    created: float


@dataclass
class Page:
    """A list reply: ``items`` under ``key``, cut to fit one frame.

    ``keep_last`` keeps the newest items when the list is oldest-first and too long (a
    history page shows what is nearest to the point the user scrolled back from).
    ``more`` says the caller's query had more rows than ``items``.
    """

    items: Sequence[Any]
    more: bool = False
    head: dict[str, Any] = field(default_factory=dict)
    key: str = "alert"
    code: int = codes.ACCEPTED
    keep_last: bool = False


class Later:
    """A reply owed later: ``settle(outcome)`` answers it through the connection's one
    reply path and ends its count of requests in flight. Subclasses add what they need to
    compute the outcome (`messenger.server.handlers.messages`)."""

    __slots__ = ("session", "request_id")

    def __init__(self, session: Any, request_id: str) -> None:
        self.session = session
        self.request_id = request_id

    def settle(self, outcome: Any) -> None:
        session = self.session
        session.requests.finished(session, False)
        session.answer(self.request_id, outcome)


class SessionOver(NotAuthorised):
    """An error after which the session cannot go on (its account is gone): the error
    reply is sent, then the connection is closed."""


@dataclass
class Closing:
    """Reply with ``body``, then close the connection."""

    body: dict[str, Any]


def ack_payload(request_id: str, msg_id: int, created: float) -> bytes:
    """``{"response":200,"msg_id":...,"time":...,"id":...}``, at a fraction of the cost of
    the JSON encoder (ids are integers, times finite floats, the request id 32 hex digits;
    a test holds this to what jim.encode makes of the same dict)."""
    return (f'{{"response":200,"msg_id":{msg_id},"time":{created!r},'
            f'"id":"{request_id}"}}').encode()


def error_body(error: BaseException) -> dict[str, Any]:
    """The reply body for a failure: its own for a `MessengerError`, a bare 500 otherwise."""
    if isinstance(error, MessengerError):
        return error.to_reply()
    return ServerError(INTERNAL_ERROR).to_reply()


def encode_reply(request_id: str | None, outcome: Any, now: float,
                 budget: int = jim.MAX_SERVER_PAYLOAD) -> bytes:
    """The JSON payload that answers request ``request_id`` with ``outcome``.

    ``outcome`` is a handler's result, a `MessengerError`, or a `Failure` of either. Never
    raises: a result that cannot be encoded, or is larger than ``budget``, becomes a 500.
    """
    if isinstance(outcome, Failure):
        outcome = outcome.value
    try:
        if type(outcome) is Ack:
            return ack_payload(request_id or "", outcome.msg_id, outcome.created)
        if isinstance(outcome, BaseException):
            return _encode_dict(request_id, error_body(outcome), now)
        if isinstance(outcome, Page):
            return encode_page(request_id, outcome, now, budget)
        if isinstance(outcome, Closing):
            outcome = outcome.body
        payload = _encode_dict(request_id, outcome, now)
        if len(payload) <= budget:
            return payload
        log.error("A {size}-byte reply exceeds the frame budget; sending a 500 instead",
                  size=len(payload))
    except Exception:
        log.failure("Could not encode a reply")
    return _encode_dict(request_id, error_body(ServerError(INTERNAL_ERROR)), now)


def _encode_dict(request_id: str | None, body: dict[str, Any], now: float) -> bytes:
    body["id"] = request_id
    if "time" not in body:
        body["time"] = now
    return jim.encode(body)


def encode_page(request_id: str | None, page: Page, now: float,
                budget: int = jim.MAX_SERVER_PAYLOAD) -> bytes:
    """A page reply holding as many whole items as fit in ``budget`` encoded bytes.

    Each item is encoded once; the head (with ``"more": false``, the longer spelling) is
    measured first so the cut is exact. At least one item is always sent: the limits on
    bodies keep any single item far below the budget (tap.py checks ``--max-body``).
    """
    head = dict(page.head)
    head["response"] = page.code
    head["more"] = False
    head["id"] = request_id
    head.setdefault("time", now)
    room = budget - len(jim.encode(head)) - len(page.key) - 6  # ,"key":[ and ]
    encode = jim.encode
    order = reversed(page.items) if page.keep_last else iter(page.items)
    parts: list[bytes] = []
    for item in order:
        part = encode(item)
        cost = len(part) + (1 if parts else 0)
        if cost > room and parts:
            break
        parts.append(part)
        room -= cost
    cut = len(parts) < len(page.items)
    if page.keep_last:
        parts.reverse()
    head["more"] = page.more or cut
    encoded_head = encode(head)
    return b"".join((encoded_head[:-1], b',"', page.key.encode("ascii"), b'":[',
                     b",".join(parts), b"]}"))
