"""Delivered and read receipts, and the user's receipt setting (``receipt``,
``sync_receipts``, ``settings``).

A receipt is one request per conversation up to a message id (docs/PROTOCOL.md,
"Receipts"). It is queued for the receipts' own group commit (`ServerContext.receipts`,
`messenger.store.receipts.apply_batch_txn`): many readers' receipts share one
transaction, beside the message path rather than on it. Once committed, a receipt that
changed what the others see is pushed, through the router, to the users whose messages
it covers; a sender who was offline reads it with ``sync_receipts`` after logging in.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from messenger.server.directory import UserRef
from messenger.server.handlers.conversations import NOT_MEMBER
from messenger.server.replies import Page
from messenger.server.session import Session
from messenger.server.states import LOGGED_IN
from messenger.store import receipts
from messenger.wire import codes
from messenger.wire.errors import BadRequest, Forbidden, NotFound

REFUSALS = {
    receipts.PAST_END: (BadRequest, "'up_to' is past the last message of this conversation"),
    receipts.OTHER_CONVERSATION: (BadRequest, "'up_to' is not a message of this"
                                  " conversation that you can see"),
    receipts.NOT_MEMBER: (Forbidden, NOT_MEMBER),
}


def receipt_view(reader: str, group_id: int | None, delivered: int, read: int,
                 seq: int) -> dict[str, Any]:
    """One receipt as pushes and ``sync_receipts`` show it."""
    view: dict[str, Any] = {"reader": reader, "delivered_up_to": delivered,
                            "read_up_to": read, "seq": seq}
    if group_id is not None:
        view["group"] = group_id
    return view


def receipt(session: Session, request: dict[str, Any]) -> Any:
    """Queue the receipt; 200 with ``delivered_up_to`` and ``read_up_to`` (as the others
    see them now) after its batch committed."""
    ctx = session.ctx
    group_id = request.get("group")
    if group_id is not None:
        return _submit(session, request, None)
    name = request["with"]
    other = ctx.directory.cached(name)
    if other is not None:
        return _submit(session, request, other)
    d = ctx.directory.lookup(name)
    d.addCallback(lambda found: _submit(session, request, found, name))
    return d


def _submit(session: Session, request: dict[str, Any], other: UserRef | None,
            name: str | None = None) -> defer.Deferred[dict[str, Any]]:
    me = session.account
    assert me is not None
    group_id = request.get("group")
    if group_id is None:
        if other is None:
            raise NotFound(f"no user named '{name}'")
        if other.id == me.id:
            raise BadRequest("'with' must name another user")
    d: defer.Deferred[Any] = defer.Deferred()
    session.ctx.receipts.submit((me.id, request["kind"], other.id if other else None,
                                 group_id, request["up_to"]), d)
    d.addCallback(_applied, session, group_id)
    return d


def _applied(result: receipts.Applied | str, session: Session,
             group_id: int | None) -> dict[str, Any]:
    if isinstance(result, str):
        error, text = REFUSALS[result]
        raise error(text)
    if result.seq and result.notify:
        ctx = session.ctx
        push = {"action": "receipt",
                **receipt_view(session.account.name, group_id,  # type: ignore[union-attr]
                               result.delivered_up_to, result.read_up_to, result.seq),
                "time": ctx.clock.seconds()}
        ctx.router.push_many(result.notify, push)
    return {"response": codes.OK, "delivered_up_to": result.delivered_up_to,
            "read_up_to": result.read_up_to}


@defer.inlineCallbacks
def sync_receipts(session: Session, request: dict[str, Any]) -> Any:
    """The receipts about the caller's conversations that changed after ``since`` (a
    ``seq``), oldest change first, with ``more``."""
    limit = request.get("limit") or 500
    rows = yield session.ctx.db.read(receipts.changes_txn, session.account.id,  # type: ignore
                                     request["since"], limit + 1)
    return Page([receipt_view(name, group_id, delivered, read, seq)
                 for seq, name, group_id, delivered, read in rows[:limit]],
                more=len(rows) > limit)


@defer.inlineCallbacks
def settings(session: Session, request: dict[str, Any]) -> Any:
    """200 with ``settings``; ``read_receipts`` (true or false) changes that setting."""
    ctx, me = session.ctx, session.account
    wanted = request.get("read_receipts")
    if wanted is None:
        enabled = yield ctx.db.read(receipts.read_receipts_txn, me.id)  # type: ignore
    else:
        enabled = yield ctx.db.write(receipts.set_read_receipts_txn, me.id,  # type: ignore
                                     wanted)
    return {"response": codes.OK, "settings": {"read_receipts": enabled}}


ROUTES = {
    "receipt": (receipt, LOGGED_IN),
    "sync_receipts": (sync_receipts, LOGGED_IN, True),
    "settings": (settings, LOGGED_IN),
}
