"""Contacts: list (with presence), add, delete, and search for people to add.

Contacts go one way: adding B makes B one of *your* contacts, and you start seeing B's
presence; B's list is unchanged. Names are matched without regard to case everywhere;
replies always carry the name as it was registered.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from messenger.server.directory import no_such_user
from messenger.server.replies import Page
from messenger.server.session import Session
from messenger.server.states import LOGGED_IN
from messenger.store import contacts, users
from messenger.store.errors import Duplicate, Missing
from messenger.wire import codes
from messenger.wire.errors import BadRequest, Conflict, Forbidden, NotFound

SEARCH_PAGE = 20
CONTACTS_PAGE = 5000


@defer.inlineCallbacks
def get_contacts(session: Session, request: dict[str, Any]) -> Any:
    """202 with ``alert``: the caller's contacts by name, each with its presence status;
    one page of names after ``after`` (cut to fit a frame), ``more`` when there are more."""
    ctx = session.ctx
    limit = request.get("limit") or CONTACTS_PAGE
    after = (request.get("after") or "").lower()
    rows = yield ctx.db.read(contacts.list_page_txn, session.account.id, after, limit + 1)
    status_of = ctx.presence.status_of
    return Page([{"account_name": name, "status": status_of(user_id)}
                 for user_id, name in rows[:limit]], more=len(rows) > limit)


@defer.inlineCallbacks
def add_contact(session: Session, request: dict[str, Any]) -> Any:
    """201 with the new contact and its status; 404 unknown, 400 yourself, 409 twice."""
    ctx = session.ctx
    me = session.account
    name = request["user_id"]
    target = yield ctx.directory.require(name)
    if target.id == me.id:
        raise BadRequest("you cannot add yourself as a contact")
    cap = ctx.config.limits.max_contacts
    if cap and len(session.contact_ids) >= cap and target.id not in session.contact_ids:
        raise Forbidden(f"you have {len(session.contact_ids)} contacts, the most allowed;"
                        " remove one first")
    try:
        yield ctx.db.write(contacts.add_txn, me.id, target.id, ctx.clock.seconds())
    except Duplicate:
        raise Conflict(f"'{target.name}' is already in your contacts") from None
    except Missing:
        ctx.directory.forget(target.name)
        raise no_such_user(name) from None
    if target.id not in session.contact_ids:
        session.contact_ids.append(target.id)
    ctx.presence.contact_added(me.id, target.id)
    return {"response": codes.CREATED,
            "contact": {"account_name": target.name,
                        "status": ctx.presence.status_of(target.id)}}


@defer.inlineCallbacks
def del_contact(session: Session, request: dict[str, Any]) -> Any:
    """200; 404 when the name is unknown or not among the caller's contacts."""
    ctx = session.ctx
    me = session.account
    name = request["user_id"]
    target = yield ctx.directory.require(name)
    removed = yield ctx.db.write(contacts.delete_txn, me.id, target.id)
    if not removed:
        raise NotFound(f"'{target.name}' is not in your contacts")
    if target.id in session.contact_ids:
        session.contact_ids.remove(target.id)
    ctx.presence.contact_removed(me.id, target.id)
    return {"response": codes.OK}


@defer.inlineCallbacks
def search_users(session: Session, request: dict[str, Any]) -> Any:
    """202: names containing the query, any case, alphabetical, paged; the caller left out.

    Each result says whether that user is already a contact, so a client can offer
    "add" only where it makes sense.
    """
    limit = request.get("limit") or SEARCH_PAGE
    offset = request.get("offset") or 0
    me = session.account
    rows = yield session.ctx.db.read(users.search_txn, request["query"], me.id, offset,
                                     limit + 1)
    mine = set(session.contact_ids)
    return Page([{"account_name": name, "contact": user_id in mine}
                 for user_id, name in rows[:limit]], more=len(rows) > limit)


ROUTES = {
    "get_contacts": (get_contacts, LOGGED_IN, True),
    "add_contact": (add_contact, LOGGED_IN),
    "del_contact": (del_contact, LOGGED_IN),
    "search_users": (search_users, LOGGED_IN, True),
}
