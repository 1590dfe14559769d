"""Broadcasts: premium and admin accounts post to everyone's home feed."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from messenger.server.handlers.messages import check_body, check_quota
from messenger.server.replies import Page
from messenger.server.session import Session
from messenger.server.states import LOGGED_IN
from messenger.store import broadcasts, users
from messenger.wire import codes
from messenger.wire.errors import Forbidden


@defer.inlineCallbacks
def broadcast(session: Session, request: dict[str, Any]) -> Any:
    """Store a broadcast and push it to every other online user; 403 unless premium/admin.

    The role is read from the database, not the session, so a change by an admin or the
    operator applies at once. A resend of the same request id (after a reconnect) is
    answered with the first copy and pushed only once.
    """
    ctx = session.ctx
    body = request["message"]
    check_body(body, ctx.config.max_body)
    row = yield ctx.db.read(users.get_by_id_txn, session.account.id)
    if row is None or not (row.is_premium or row.is_admin):
        raise Forbidden("only premium or admin accounts can broadcast; register with a"
                        " premium code or ask an administrator")
    check_quota(session, body)
    broadcast_id, created, new = yield ctx.db.write(
        broadcasts.insert_txn, row.id, row.name, request["id"], body, ctx.clock.seconds())
    if new:
        ctx.router.push_all({"action": "broadcast", "broadcast_id": broadcast_id,
                             "time": created, "from": row.name, "message": body},
                            except_id=row.id)
    return {"response": codes.OK, "broadcast_id": broadcast_id, "time": created}


@defer.inlineCallbacks
def get_broadcasts(session: Session, request: dict[str, Any]) -> Any:
    """The most recent broadcasts, newest first, ids below ``before``."""
    limit = request.get("limit") or 20
    rows = yield session.ctx.db.read(broadcasts.recent_txn, request.get("before"), limit + 1)
    return Page([{"broadcast_id": b_id, "time": created, "from": sender, "message": body}
                 for b_id, created, sender, body in rows[:limit]], more=len(rows) > limit)


ROUTES = {
    "broadcast": (broadcast, LOGGED_IN),
    "get_broadcasts": (get_broadcasts, LOGGED_IN, True),
}
