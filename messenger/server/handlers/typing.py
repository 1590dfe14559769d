"""``typing``: "I am typing in this conversation", pushed through the router, never
stored (`messenger.server.typing`)."""

from __future__ import annotations

from typing import Any

from messenger.server.directory import UserRef
from messenger.server.handlers.conversations import NOT_MEMBER
from messenger.server.session import Session
from messenger.server.states import LOGGED_IN
from messenger.wire import codes
from messenger.wire.errors import BadRequest, Forbidden, NotFound


def typing(session: Session, request: dict[str, Any]) -> Any:
    """200 once the push is handed to the router (the others may be offline: then
    nobody hears of it, which is what typing means)."""
    ctx = session.ctx
    group_id = request.get("group")
    if group_id is not None:
        d = ctx.typing_members.members(group_id)
        d.addCallback(_to_group, session, group_id)
        return d
    name = request["to"]
    other = ctx.directory.cached(name)
    if other is not None:
        return _to_person(other, session, name)
    d = ctx.directory.lookup(name)
    d.addCallback(_to_person, session, name)
    return d


def _to_person(other: UserRef | None, session: Session, name: str) -> dict[str, Any]:
    me = session.account
    assert me is not None
    ctx = session.ctx
    if other is None:
        raise NotFound(f"no user named '{name}'")
    if other.id == me.id:
        raise BadRequest("'to' must name another user")
    ctx.blocks.check(other.id, me.id, other.name)
    ctx.router.push(other.id, {"action": "typing", "from": me.name, "to": other.name,
                               "time": ctx.clock.seconds()})
    return {"response": codes.OK}


def _to_group(members: frozenset[int], session: Session, group_id: int) -> dict[str, Any]:
    me = session.account
    assert me is not None
    if me.id not in members:
        raise Forbidden(NOT_MEMBER)
    ctx = session.ctx
    ctx.router.push_many([m for m in members if m != me.id],
                         {"action": "typing", "from": me.name, "group": group_id,
                          "time": ctx.clock.seconds()})
    return {"response": codes.OK}


ROUTES: dict[str, Any] = {
    "typing": (typing, LOGGED_IN),
}
