"""Blocking: ``block_user``, ``unblock_user``, ``get_blocked`` (docs/PROTOCOL.md, "Blocking").

A block goes one way, like a contact: the owner refuses the blocked user's direct
messages and calls (`messenger.server.blocks` checks them); the blocked user's own list,
contacts and groups are unchanged, and the owner may still write to them.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from messenger.server.blocks import MAX_BLOCKS
from messenger.server.directory import no_such_user
from messenger.server.replies import Page
from messenger.server.session import Session
from messenger.server.states import LOGGED_IN
from messenger.store import blocks
from messenger.store.errors import Duplicate, Missing
from messenger.wire import codes
from messenger.wire.errors import BadRequest, Conflict, Forbidden, NotFound

PAGE = 1000


@defer.inlineCallbacks
def block_user(session: Session, request: dict[str, Any]) -> Any:
    """201 with the blocked user's name; 400 yourself, 403 too many, 404 unknown, 409
    blocked already."""
    ctx = session.ctx
    me = session.account
    name = request["user_id"]
    target = yield ctx.directory.require(name)
    if target.id == me.id:
        raise BadRequest("you cannot block yourself")
    if ctx.blocks.blocked(me.id, target.id):
        raise Conflict(f"'{target.name}' is already blocked")
    count = yield ctx.db.read(blocks.count_txn, me.id)
    if count >= MAX_BLOCKS:
        raise Forbidden(f"you have blocked {count} users, the most allowed; unblock one"
                        " first")
    try:
        yield ctx.db.write(blocks.block_txn, me.id, target.id, ctx.clock.seconds())
    except Duplicate:
        ctx.blocks.added(me.id, target.id)
        raise Conflict(f"'{target.name}' is already blocked") from None
    except Missing:
        ctx.directory.forget(target.name)
        raise no_such_user(name) from None
    ctx.blocks.added(me.id, target.id)
    return {"response": codes.CREATED, "blocked": {"account_name": target.name}}


@defer.inlineCallbacks
def unblock_user(session: Session, request: dict[str, Any]) -> Any:
    """200; 404 when the name is unknown or not blocked."""
    ctx = session.ctx
    me = session.account
    name = request["user_id"]
    target = yield ctx.directory.require(name)
    removed = yield ctx.db.write(blocks.unblock_txn, me.id, target.id)
    ctx.blocks.removed(me.id, target.id)
    if not removed:
        raise NotFound(f"'{target.name}' is not blocked")
    return {"response": codes.OK}


@defer.inlineCallbacks
def get_blocked(session: Session, request: dict[str, Any]) -> Any:
    """202: the caller's blocked users by name, ``{"account_name", "since"}``, one page
    after ``after`` (cut to fit a frame), ``more`` when there are more."""
    limit = request.get("limit") or PAGE
    after = (request.get("after") or "").lower()
    rows = yield session.ctx.db.read(blocks.list_page_txn, session.account.id, after,
                                     limit + 1)
    return Page([{"account_name": name, "since": since} for name, since in rows[:limit]],
                more=len(rows) > limit)


ROUTES = {
    "block_user": (block_user, LOGGED_IN),
    "unblock_user": (unblock_user, LOGGED_IN),
    "get_blocked": (get_blocked, LOGGED_IN, True),
}
