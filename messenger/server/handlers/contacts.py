"""Contacts: list (with presence), add, delete, and search for people to add."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from messenger.server.states import LOGGED_IN
from messenger.store import contacts, users
from messenger.store.errors import Duplicate
from messenger.wire import codes
from messenger.wire.errors import BadRequest, Conflict, NotFound


@defer.inlineCallbacks
def get_contacts(session: Any, request: dict[str, Any]) -> Any:
    ctx = session.ctx
    rows = yield ctx.db.read(contacts.list_txn, session.account.id)
    status_of = ctx.presence.status_of
    return {"response": codes.ACCEPTED,
            "alert": [{"account_name": name, "status": status_of(user_id)}
                      for user_id, name in rows]}


@defer.inlineCallbacks
def add_contact(session: Any, request: dict[str, Any]) -> Any:
    ctx = session.ctx
    me = session.account
    target = yield ctx.directory.lookup(request["user_id"])
    if target is None:
        raise NotFound(f"no user named '{request['user_id']}'")
    if target.id == me.id:
        raise BadRequest("you cannot add yourself as a contact")
    try:
        yield ctx.db.write(contacts.add_txn, me.id, target.id, ctx.clock.seconds())
    except Duplicate:
        raise Conflict(f"'{target.name}' is already in your contacts") from None
    if target.id not in session.contact_ids:
        session.contact_ids.append(target.id)
    ctx.presence.contact_added(me.id, target.id)
    return {"response": codes.CREATED,
            "contact": {"account_name": target.name,
                        "status": ctx.presence.status_of(target.id)}}


@defer.inlineCallbacks
def del_contact(session: Any, request: dict[str, Any]) -> Any:
    ctx = session.ctx
    me = session.account
    target = yield ctx.directory.lookup(request["user_id"])
    if target is None:
        raise NotFound(f"no user named '{request['user_id']}'")
    removed = yield ctx.db.write(contacts.delete_txn, me.id, target.id)
    if not removed:
        raise NotFound(f"'{target.name}' is not in your contacts")
    if target.id in session.contact_ids:
        session.contact_ids.remove(target.id)
    ctx.presence.contact_removed(me.id, target.id)
    return {"response": codes.OK}


@defer.inlineCallbacks
def search_users(session: Any, request: dict[str, Any]) -> Any:
    """Names containing the query, any case, paged; the caller is left out."""
    limit = request.get("limit") or 20
    offset = request.get("offset") or 0
    names = yield session.ctx.db.read(users.search_txn, request["query"], offset, limit + 1)
    more = len(names) > limit
    me = session.account.name
    return {"response": codes.ACCEPTED,
            "alert": [{"account_name": name} for name in names[:limit] if name != me],
            "more": more}


ROUTES = {
    "get_contacts": (get_contacts, LOGGED_IN),
    "add_contact": (add_contact, LOGGED_IN),
    "del_contact": (del_contact, LOGGED_IN),
    "search_users": (search_users, LOGGED_IN),
}
