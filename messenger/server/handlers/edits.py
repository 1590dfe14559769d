"""Edit and delete a message for everyone, and catch up with the changes missed.

``edit_msg`` and ``delete_msg`` run one write transaction each (`messenger.store.edits`:
who may change what, the edit window, the change's new id) and then push ``msg_changed``
through the router to everyone else who may see the message and is online: the other
side of a direct conversation, the group's members whose membership windows hold it (and
its author, when an admin deleted it). Whoever was offline gets the change from
``sync_changes``, whose cursor is the change id; ``history`` and ``sync`` show a message
as it is now (``edited``, ``deleted``) in any case.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from messenger.server.handlers import conversations
from messenger.server.handlers.messages import check_body, check_quota
from messenger.server.replies import Page
from messenger.server.session import Session
from messenger.server.states import LOGGED_IN
from messenger.store import edits
from messenger.wire import codes, jim
from messenger.wire.errors import Conflict, Forbidden, NotFound

DEFAULT_CHANGES_PAGE = 200


def change_view(change: edits.Change) -> dict[str, Any]:
    """A change as pushed and synced: the message as it is now, and who changed it."""
    view: dict[str, Any] = {"change_id": change.change_id, "msg_id": change.msg_id,
                            "time": change.time, "from": change.sender}
    if change.group_id is None:
        view["to"] = change.recipient
    else:
        view["group"] = change.group_id
    view["kind"] = change.kind
    view["message"] = change.body
    view["by"] = change.actor
    return conversations.extra_view(view, (change.reply_to, change.edited, change.deleted))


def _refused(error: Exception, msg_id: int) -> Exception:
    if isinstance(error, edits.NoSuchMessage):
        return NotFound(f"no message {msg_id} that you can see")
    if isinstance(error, edits.AlreadyDeleted):
        return Conflict(f"message {msg_id} was deleted: there is nothing to edit")
    return Forbidden(str(error))


def _push(session: Session, change: edits.Change) -> None:
    if change.audience:
        session.ctx.router.push_many(change.audience,
                                     {"action": "msg_changed", **change_view(change)})


@defer.inlineCallbacks
def edit_msg(session: Session, request: dict[str, Any]) -> Any:
    """200 with the change: the message's new body is stored and pushed."""
    ctx = session.ctx
    body, msg_id = request["message"], request["msg_id"]
    check_body(body, ctx.config.max_body)
    check_quota(session, body)
    try:
        change = yield ctx.db.write(edits.edit_txn, session.account.id, msg_id,  # type: ignore[union-attr]
                                    body, ctx.clock.seconds(), ctx.config.edit_window)
    except (edits.NoSuchMessage, edits.NotAllowed, edits.AlreadyDeleted) as error:
        raise _refused(error, msg_id) from None
    _push(session, change)
    return {"response": codes.OK, **change_view(change)}


@defer.inlineCallbacks
def delete_msg(session: Session, request: dict[str, Any]) -> Any:
    """200 with the change: the body is gone from the database; pushed to the others.
    Deleting a deleted message answers with the first deletion and pushes nothing."""
    ctx = session.ctx
    msg_id = request["msg_id"]
    try:
        change, new = yield ctx.db.write(edits.delete_txn, session.account.id,  # type: ignore[union-attr]
                                         msg_id, ctx.clock.seconds(), ctx.config.edit_window)
    except (edits.NoSuchMessage, edits.NotAllowed) as error:
        raise _refused(error, msg_id) from None
    if new:
        _push(session, change)
    return {"response": codes.OK, **change_view(change)}


@defer.inlineCallbacks
def sync_changes(session: Session, request: dict[str, Any]) -> Any:
    """202: the changes above ``since`` of messages the caller may see, oldest first,
    ``more``. Without ``since``: no changes, and ``last_change``, the newest change id
    (where a client that has just loaded its conversations starts its cursor)."""
    ctx = session.ctx
    since = request.get("since")
    if since is None:
        last = yield ctx.db.read(edits.last_change_txn)
        return {"response": codes.ACCEPTED, "alert": [], "more": False, "last_change": last}
    limit = request.get("limit") or DEFAULT_CHANGES_PAGE
    changes = yield ctx.db.read(edits.changes_txn, session.account.id, since,  # type: ignore[union-attr]
                                limit + 1, jim.MAX_SERVER_PAYLOAD)
    return Page([change_view(c) for c in changes[:limit]], more=len(changes) > limit)


ROUTES = {
    "edit_msg": (edit_msg, LOGGED_IN),
    "delete_msg": (delete_msg, LOGGED_IN),
    "sync_changes": (sync_changes, LOGGED_IN, True),
}
