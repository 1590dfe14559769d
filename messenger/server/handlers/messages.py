"""Direct messages: send (acknowledged after commit), sync since an id, history.

``msg`` and ``history`` with ``group`` instead of a person go to
`messenger.server.handlers.conversations`; ``sync`` returns direct and group messages in
one sequence.

The hot path. ``msg`` resolves the recipient from the directory cache and queues the row
for the next group commit; its Deferred fires when the batch has committed: the
recipient gets the push through the router (if online), and the outcome, an `Ack` with
the server's message id and timestamp, goes back to the sender. A resend of a request id
already stored is acknowledged with the first copy and not pushed again.
"""

from __future__ import annotations

from json.encoder import encode_basestring as _json_string  # type: ignore[attr-defined]
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from messenger.server.directory import UserRef
from messenger.server.handlers import attachments, conversations
from messenger.server.replies import Ack, Later, Page, SessionOver
from messenger.server.session import Session
from messenger.server.states import LOGGED_IN
from messenger.store import messages
from messenger.store.errors import Unavailable
from messenger.wire import jim
from messenger.wire.errors import (
    BadRequest,
    MessengerError,
    NotFound,
    ServerError,
    TooManyRequests,
)

log = Logger()


def check_body(body: str, limit: int) -> None:
    """Refuse a body above the configured size (in UTF-8 bytes)."""
    if len(body) * 4 > limit and len(body.encode("utf-8")) > limit:
        raise BadRequest(f"'message' is larger than {limit} bytes")


def check_quota(session: Session, body: str) -> None:
    """Refuse (429) a message past the sender's daily storage quota: nothing is stored."""
    allowed, retry = session.ctx.limits.allow_storing(session.account.id,  # type: ignore
                                                       len(body))
    if not allowed:
        session.ctx.count("quota_refusals")
        raise TooManyRequests("you have stored too many messages today; try again later",
                              retry)


def message_view(row: messages.MessageRow) -> dict[str, Any]:
    msg_id, created, sender, recipient, body = row[:5]
    view = conversations.extra_view({"msg_id": msg_id, "time": created, "from": sender,
                                     "to": recipient, "message": body}, row[5:8])
    attachment = row[-1]
    if attachment is not None:
        view["attachment"] = jim.decode(attachment.encode("utf-8"))
    return view


def msg(session: Session, request: dict[str, Any]) -> Any:
    """Queue the message for the next group commit; its `Ack` comes after the commit
    (through a `Later`; a Deferred when the recipient had to be looked up first). A
    message with a file goes its own way (`attachments.send`)."""
    if request.get("attachment") is not None:
        if request.get("reply_to") is not None:
            raise BadRequest("'reply_to' cannot go with an 'attachment': send the file,"
                             " then the reply")
        return attachments.send(session, request)
    ctx = session.ctx
    body = request["message"]
    check_body(body, ctx.config.max_body)
    sender = session.account
    assert sender is not None
    claimed = request.get("from")
    if claimed is not None and claimed.lower() != sender.name.lower():
        raise BadRequest("'from' must be your own account name")
    check_quota(session, body)
    to = request.get("to")
    if to is None:
        return conversations.send(session, request, body)
    recipient = ctx.directory.cached(to)
    if recipient is not None:
        return _submit(_Sent(session, request["id"], recipient, body,
                             request.get("reply_to")))
    d = ctx.directory.lookup(to)
    d.addCallback(_resolved, session, request, body)
    return d


def _resolved(recipient: UserRef | None, session: Session, request: dict[str, Any],
              body: str) -> defer.Deferred[Ack]:
    if recipient is None:
        raise NotFound(f"no user named '{request['to']}'")
    sent = _Sent(session, request["id"], recipient, body, request.get("reply_to"))
    sent.waiter = defer.Deferred()
    _submit(sent)
    return sent.waiter


class _Sent(Later):
    """One message on its way to the database; `settle` runs after its batch committed:
    the push to the recipient, then the sender's answer."""

    __slots__ = ("recipient", "body", "waiter", "reply_to")

    def __init__(self, session: Session, request_id: str, recipient: UserRef,
                 body: str, reply_to: int | None = None) -> None:
        Later.__init__(self, session, request_id)
        self.recipient = recipient
        self.body = body
        self.waiter: defer.Deferred[Ack] | None = None
        self.reply_to = reply_to

    def settle(self, result: Any) -> None:
        try:
            outcome: Any = self._stored(result)
        except MessengerError as error:
            outcome = error
        waiter = self.waiter
        if waiter is None:
            Later.settle(self, outcome)
        elif isinstance(outcome, BaseException):
            waiter.errback(outcome)
        else:
            waiter.callback(outcome)

    def _stored(self, result: Any) -> Ack:
        if type(result) is not tuple:
            _not_stored(self.session, self.recipient, result, self.reply_to)
        msg_id, created, new = result
        if new:
            session = self.session
            if self.reply_to is None:
                session.ctx.router.push_encoded(
                    self.recipient.id, push_frame(msg_id, created, session.account.name,
                                                  self.recipient.name, self.body))
            else:
                # push_encoded, like every message push: a cluster orders them.
                session.ctx.router.push_encoded(self.recipient.id, jim.encode({
                    "action": "msg", "msg_id": msg_id, "time": created,
                    "from": session.account.name, "to": self.recipient.name,
                    "message": self.body, "reply_to": self.reply_to}))
        return Ack(msg_id, created)


def _submit(sent: _Sent) -> _Sent:
    session = sent.session
    ctx = session.ctx
    ctx.blocks.check(sent.recipient.id, session.account.id, sent.recipient.name)
    now = ctx.clock.seconds()
    item: tuple[Any, ...] = (session.account.id, sent.recipient.id, sent.request_id,
                             sent.body, now)
    if sent.reply_to is not None:
        item += (sent.reply_to,)
    if ctx.config.persist:
        ctx.messages.submit(item, sent)
    else:
        msg_id = ctx.next_volatile_id
        ctx.next_volatile_id += 1
        ctx.clock.callLater(0, sent.settle, (msg_id, now, True))
    return sent


def push_frame(msg_id: int, created: float, sender: str, recipient: str, body: str) -> bytes:
    """``{"action": "msg", "msg_id", "time", "from", "to", "message"}``, written out
    directly: the same JSON that jim.encode makes of that dict (a test holds it to that),
    at a fraction of the cost. Ids are integers, times finite floats, and strings go
    through the json module's own C escaper."""
    return (f'{{"action":"msg","msg_id":{msg_id},"time":{created!r},'
            f'"from":{_json_string(sender)},"to":{_json_string(recipient)},'
            f'"message":{_json_string(body)}}}').encode()


def _not_stored(session: Session, recipient: UserRef, result: Any,
                reply_to: int | None = None) -> None:
    """The rare outcomes: an account deleted meanwhile, or a failed transaction."""
    if isinstance(result, Unavailable):
        raise result  # a store that is down answers 503 (the outage is logged once)
    if isinstance(result, BaseException):
        log.failure("A message could not be stored", Failure(result))
        raise ServerError("the message could not be stored")
    if result == messages.RECIPIENT_GONE:
        session.ctx.directory.forget(recipient.name)
        raise NotFound(f"no user named '{recipient.name}'")
    if result == messages.SENDER_GONE:
        raise SessionOver("your account no longer exists")
    if result == messages.REPLY_ELSEWHERE:
        raise conversations.reply_elsewhere(reply_to)
    raise ServerError("the message could not be stored")


@defer.inlineCallbacks
def sync(session: Session, request: dict[str, Any]) -> Any:
    """Everything to the user after ``since`` (direct messages and group messages of its
    membership windows, one sequence), oldest first, with ``more``."""
    limit = request.get("limit") or 500
    rows = yield session.ctx.db.read(messages.sync_txn, session.account.id,  # type: ignore
                                     request["since"], limit + 1, jim.MAX_SERVER_PAYLOAD)
    return Page([conversations.sync_view(r) for r in rows[:limit]], more=len(rows) > limit)


@defer.inlineCallbacks
def history(session: Session, request: dict[str, Any]) -> Any:
    """One page of the conversation with another user (or a group: see
    `conversations.history`), oldest first, ids below ``before``; when cut to fit a
    frame, the newest rows stay."""
    ctx = session.ctx
    if request.get("group") is not None:
        page = yield conversations.history(session, request)
        return page
    other = yield ctx.directory.lookup(request["with"])
    if other is None:
        raise NotFound(f"no user named '{request['with']}'")
    limit = request.get("limit") or 50
    rows = yield ctx.db.read(messages.history_txn, session.account.id,  # type: ignore
                             other.id, request.get("before"), limit + 1,
                             jim.MAX_SERVER_PAYLOAD)
    more = len(rows) > limit
    if more:
        rows = rows[1:]
    return Page([message_view(r) for r in rows], more=more, keep_last=True)


ROUTES = {
    "msg": (msg, LOGGED_IN),
    "sync": (sync, LOGGED_IN, True),
    "history": (history, LOGGED_IN, True),
}
