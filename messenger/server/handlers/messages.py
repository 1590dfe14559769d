"""Direct messages: send (acknowledged after commit), sync since an id, history.

The hot path. ``msg`` resolves the recipient from the directory cache, queues the row for
the next group commit, and returns; when the batch has committed, the recipient gets the
push (if online) and the sender its 200 with the server's message id and timestamp. A
resend of a request id already stored is acknowledged with the first copy and not pushed
again.
"""

from __future__ import annotations

from json.encoder import encode_basestring as _json_string  # type: ignore[attr-defined]
from typing import Any

from twisted.internet import defer

from messenger.server.states import LOGGED_IN
from messenger.store import messages
from messenger.wire import codes
from messenger.wire.errors import BadRequest, NotAuthorised, NotFound, ServerError

# A sync or history reply stays under about this many bytes (well below the 1 MiB frame
# limit that clients apply); a page cut short says "more": true.
PAGE_BYTES = 512 * 1024


def check_body(body: str, limit: int) -> None:
    """Refuse a body above the configured size (in UTF-8 bytes)."""
    if len(body) * 4 > limit and len(body.encode("utf-8")) > limit:
        raise BadRequest(f"'message' is larger than {limit} bytes")


def message_view(row: messages.MessageRow) -> dict[str, Any]:
    msg_id, created, sender, recipient, body = row
    return {"msg_id": msg_id, "time": created, "from": sender, "to": recipient,
            "message": body}


def msg(session: Any, request: dict[str, Any]) -> Any:
    """Queue the message for the next group commit; the reply is sent by `_deliver`."""
    ctx = session.ctx
    body = request["message"]
    check_body(body, ctx.config.max_body)
    sender = session.account
    claimed = request.get("from")
    if claimed is not None and claimed.lower() != sender.name.lower():
        raise BadRequest("'from' must be your own account name")
    recipient = ctx.directory.cached(request["to"])
    if recipient is not None:
        _submit(session, request["id"], recipient, body)
        return None
    d = ctx.directory.lookup(request["to"])
    d.addCallback(_resolved, session, request, body)
    return d


def _resolved(recipient: Any, session: Any, request: dict[str, Any], body: str) -> None:
    if recipient is None:
        raise NotFound(f"no user named '{request['to']}'")
    _submit(session, request["id"], recipient, body)


def _submit(session: Any, request_id: str, recipient: Any, body: str) -> None:
    ctx = session.ctx
    now = ctx.clock.seconds()
    item = (session.account.id, recipient.id, request_id, body, now)
    token = (session, recipient)
    if not ctx.config.persist:
        msg_id = ctx.next_volatile_id
        ctx.next_volatile_id += 1
        stored(item, token, (msg_id, now, True))
        return
    ctx.messages.submit(item, token)


def stored(item: messages.NewMessage, token: tuple[Any, Any], result: Any) -> None:
    """After the commit (the group commit's ``on_result``): push, then acknowledge."""
    session, recipient = token
    if type(result) is not tuple:
        _not_stored(session, item[2], recipient, result)
        return
    msg_id, created, new = result
    if new:
        target = session.ctx.router.session(recipient.id)
        if target is not None:
            target.push_encoded(push_frame(msg_id, created, session.account.name,
                                           recipient.name, item[3]))
    session.push_encoded(ack_frame(item[2], msg_id, created))
    session.ctx.metrics.reply(200)


# The two frames of every message, written out directly: the same JSON that jim.encode
# makes of the dicts in their docstrings (a test holds them to that), at a fraction of
# the cost. Ids are integers, times finite floats, the request id 32 hex digits, and
# strings go through the json module's own C escaper.

def ack_frame(request_id: str, msg_id: int, created: float) -> bytes:
    """``{"response": 200, "msg_id": msg_id, "time": created, "id": request_id}``"""
    return f'{{"response":200,"msg_id":{msg_id},"time":{created!r},"id":"{request_id}"}}'.encode()


def push_frame(msg_id: int, created: float, sender: str, recipient: str, body: str) -> bytes:
    """``{"action": "msg", "msg_id", "time", "from", "to", "message"}``"""
    return (f'{{"action":"msg","msg_id":{msg_id},"time":{created!r},'
            f'"from":{_json_string(sender)},"to":{_json_string(recipient)},'
            f'"message":{_json_string(body)}}}').encode()


def _not_stored(session: Any, request_id: str, recipient: Any, result: Any) -> None:
    """The rare outcomes: an account deleted meanwhile, or a failed transaction."""
    if result == messages.RECIPIENT_GONE:
        session.ctx.directory.forget(recipient.name)
        session.send_error(request_id, NotFound(f"no user named '{recipient.name}'"))
    elif result == messages.SENDER_GONE:
        session.send_error(request_id, NotAuthorised("your account no longer exists"))
        session.close()
    else:
        session.send_error(request_id, ServerError("the message could not be stored"))


@defer.inlineCallbacks
def sync(session: Any, request: dict[str, Any]) -> Any:
    """Everything addressed to the user after ``since``, oldest first, with ``more``."""
    limit = request.get("limit") or 500
    rows = yield session.ctx.db.read(messages.sync_txn, session.account.id, request["since"],
                                     limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    fitting = _fit(rows)
    return {"response": codes.ACCEPTED, "alert": [message_view(r) for r in rows[:fitting]],
            "more": more or fitting < len(rows)}


def _fit(rows: list[messages.MessageRow], budget: int = PAGE_BYTES) -> int:
    """How many rows, from the first, fit in one reply of about ``budget`` bytes (>= 1)."""
    used = 0
    for count, row in enumerate(rows):
        used += len(row[4]) * 2 + 120
        if used > budget and count:
            return count
    return len(rows)


@defer.inlineCallbacks
def history(session: Any, request: dict[str, Any]) -> Any:
    """One page of the conversation with another user, oldest first, ids below ``before``."""
    ctx = session.ctx
    other = yield ctx.directory.lookup(request["with"])
    if other is None:
        raise NotFound(f"no user named '{request['with']}'")
    limit = request.get("limit") or 50
    rows = yield ctx.db.read(messages.history_txn, session.account.id, other.id,
                             request.get("before"), limit + 1)
    more = len(rows) > limit
    if more:
        rows = rows[1:]
    fitting = _fit(rows[::-1])  # keep the newest rows that fit
    if fitting < len(rows):
        rows, more = rows[len(rows) - fitting:], True
    return {"response": codes.ACCEPTED, "alert": [message_view(r) for r in rows],
            "more": more}


ROUTES = {
    "msg": (msg, LOGGED_IN),
    "sync": (sync, LOGGED_IN),
    "history": (history, LOGGED_IN),
}
