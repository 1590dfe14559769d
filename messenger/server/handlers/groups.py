"""Groups: create, list, info, add, remove, leave, update, set_role, delete (``group_*``),
and the server administrators' list of every group (``admin_list_groups``).

Who may do what is decided by `messenger.store.groups` inside the write transaction of the
change. Here: the configured limits on names and topics, the mapping of store outcomes to
JIM errors, and the pushes that tell members about every change that concerns them. A
push goes to the members concerned (never to the one who acted: it has the reply), is
encoded once and handed to the router (`Router.push_many`), the one way to a user's
connection in a single process or a cluster.

A user who is not a member hears "you are not a member of this group" (403), alike for a
group that does not exist: group ids do not tell outsiders anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.internet import defer

from messenger.server.handlers.conversations import group_message_view
from messenger.server.replies import Page
from messenger.server.session import Session
from messenger.server.states import LOGGED_IN
from messenger.store import groupchanges, groups, reads
from messenger.store.errors import Missing, NotAdmin
from messenger.wire import codes
from messenger.wire.errors import BadRequest, Conflict, Forbidden, NotFound

NOT_MEMBER = "you are not a member of this group"
LIST_PAGE = 100
INFO_PAGE = 1000


# -- views --------------------------------------------------------------------------------

def group_view(group: groups.GroupRow) -> dict[str, Any]:
    """A group as every member sees it (replies add the caller's own role)."""
    return {"group_id": group.id, "name": group.name, "topic": group.topic,
            "announce_only": group.announce_only, "created": group.created,
            "created_by": group.created_by}


def member_view(member: groups.Member) -> dict[str, Any]:
    return {"account_name": member.name, "role": member.role}


# -- plumbing -----------------------------------------------------------------------------

def store_limits(session: Session) -> groups.Limits:
    limits = session.ctx.config.limits
    return groups.Limits(limits.max_group_members, limits.max_groups_per_user)


def check_label(request: dict[str, Any], key: str, limit: int) -> None:
    """The configured length limit of a name or topic (the schema checked the rest)."""
    value = request.get(key)
    if value is not None and len(value) > limit:
        raise BadRequest(f"'{key}' may be at most {limit} characters long")


def as_jim_error(error: Exception, target: str | None = None) -> Exception:
    """The JIM error for a store outcome (anything else is passed on unchanged)."""
    if isinstance(error, groups.NotMember):
        return Forbidden(NOT_MEMBER)
    if isinstance(error, (groups.NotAllowed, groups.LimitReached)):
        return Forbidden(str(error))
    if isinstance(error, groups.NotInGroup):
        return NotFound(str(error))
    if isinstance(error, (groups.AlreadyMember, groups.RoleConflict)):
        return Conflict(str(error))
    if isinstance(error, Missing):
        return NotFound(f"no user named '{target or error}'")
    return error


@defer.inlineCallbacks
def write(session: Session, fn: Any, *args: Any, target: str | None = None) -> Any:
    """Run one store change; its expected outcomes become JIM errors."""
    try:
        result = yield session.ctx.db.write(fn, *args)
    except (groups.NotMember, groups.NotAllowed, groups.LimitReached, groups.NotInGroup,
            groups.AlreadyMember, groups.RoleConflict, Missing) as error:
        raise as_jim_error(error, target) from None
    return result


def push(session: Session, user_ids: Iterable[int], action: str, **fields: Any) -> None:
    """Push one change to the members in ``user_ids`` but the one who acted."""
    me = session.account.id  # type: ignore[union-attr]
    ctx = session.ctx
    ctx.router.push_many([user_id for user_id in user_ids if user_id != me],
                         {"action": action, **fields, "time": ctx.clock.seconds()})


# -- handlers -----------------------------------------------------------------------------

@defer.inlineCallbacks
def group_create(session: Session, request: dict[str, Any]) -> Any:
    """201 with the group and its members; the members added are told (``group_created``)."""
    ctx = session.ctx
    me = session.account
    limits = ctx.config.limits
    check_label(request, "name", limits.max_group_name)
    check_label(request, "topic", limits.max_group_topic)
    try:
        group, members = yield ctx.db.write(
            groupchanges.create_txn, me.id, me.name, request["name"], request.get("topic") or "",
            bool(request.get("announce_only")), request.get("members") or [],
            ctx.clock.seconds(), store_limits(session))
    except (groups.LimitReached, Missing) as error:
        raise as_jim_error(error) from None
    session.log.info("{account} created group #{group} with {count} members",
                     account=me.name, group=group.id, count=len(members))
    view = {**group_view(group), "members": len(members), "owner": me.name}
    push(session, (m.user_id for m in members), "group_created", group=view, by=me.name)
    return {"response": codes.CREATED, "group": {**view, "role": groups.OWNER},
            "members": [member_view(m) for m in members]}


@defer.inlineCallbacks
def group_list(session: Session, request: dict[str, Any]) -> Any:
    """202 with ``alert``: the caller's groups by id after ``after``, each with its
    role, member count, unread count (and how many of those mention the caller), read
    marker and last message."""
    me = session.account
    limit = request.get("limit") or LIST_PAGE
    rows = yield session.ctx.db.read(reads.group_list_txn, me.id, me.name,
                                     request.get("after") or 0, limit + 1)
    items = []
    for membership, members, owner, unread, mentioned, last in rows[:limit]:
        items.append({**group_view(membership.group), "role": membership.role,
                      "members": members, "owner": owner, "unread": unread,
                      "mentions": mentioned, "read_up_to": membership.read_floor,
                      "last": group_message_view(last) if last is not None else None})
    return Page(items, more=len(rows) > limit)


@defer.inlineCallbacks
def group_info(session: Session, request: dict[str, Any]) -> Any:
    """202: ``group`` (with the caller's role, member count and owner) and ``members``
    by name, one page after ``after``."""
    limit = request.get("limit") or INFO_PAGE
    try:
        membership, count, owner, members = yield session.ctx.db.read(
            groups.info_txn, request["group"], session.account.id,
            (request.get("after") or "").lower(), limit + 1)
    except groups.NotMember:
        raise Forbidden(NOT_MEMBER) from None
    head = {"group": {**group_view(membership.group), "role": membership.role,
                      "members": count, "owner": owner}}
    return Page([member_view(m) for m in members[:limit]], more=len(members) > limit,
                head=head, key="members")


@defer.inlineCallbacks
def group_add(session: Session, request: dict[str, Any]) -> Any:
    """200 with the new ``member``; every member (the new one too) gets
    ``group_member_added``."""
    ctx = session.ctx
    group, member, member_ids = yield write(
        session, groupchanges.add_txn, session.account.id, request["group"], request["user_id"],
        ctx.clock.seconds(), store_limits(session), target=request["user_id"])
    ctx.typing_members.forget(group.id)
    view = {**group_view(group), "members": len(member_ids)}
    push(session, member_ids, "group_member_added", group=view, member=member_view(member),
         by=session.account.name)
    return {"response": codes.OK, "member": member_view(member)}


@defer.inlineCallbacks
def group_remove(session: Session, request: dict[str, Any]) -> Any:
    """200; the member removed and those who remain get ``group_member_removed``."""
    ctx = session.ctx
    group_id = request["group"]
    member, remaining = yield write(
        session, groupchanges.remove_txn, session.account.id, group_id, request["user_id"],
        ctx.clock.seconds(), target=request["user_id"])
    ctx.typing_members.forget(group_id)
    push(session, [*remaining, member.user_id], "group_member_removed", group_id=group_id,
         account_name=member.name, reason="removed", by=session.account.name)
    return {"response": codes.OK}


@defer.inlineCallbacks
def group_leave(session: Session, request: dict[str, Any]) -> Any:
    """200; those who remain get ``group_member_removed`` with reason "left"."""
    me = session.account
    group_id = request["group"]
    remaining = yield write(session, groupchanges.leave_txn, me.id, group_id,
                            session.ctx.clock.seconds())
    session.ctx.typing_members.forget(group_id)
    push(session, remaining, "group_member_removed", group_id=group_id,
         account_name=me.name, reason="left", by=me.name)
    return {"response": codes.OK}


@defer.inlineCallbacks
def group_update(session: Session, request: dict[str, Any]) -> Any:
    """200 with the changed ``group``; the members get ``group_updated``."""
    limits = session.ctx.config.limits
    check_label(request, "name", limits.max_group_name)
    check_label(request, "topic", limits.max_group_topic)
    announce = request.get("announce_only")
    group, member_ids = yield write(session, groupchanges.update_txn, session.account.id,
                                    request["group"], request.get("name"),
                                    request.get("topic"), announce)
    view = group_view(group)
    push(session, member_ids, "group_updated", group=view, by=session.account.name)
    return {"response": codes.OK, "group": view}


@defer.inlineCallbacks
def group_set_role(session: Session, request: dict[str, Any]) -> Any:
    """200 with the ``members`` whose role changed (two when ownership is handed over);
    the members get one ``group_role_changed`` per change."""
    group_id = request["group"]
    changes, member_ids = yield write(session, groupchanges.set_role_txn, session.account.id,
                                      group_id, request["user_id"], request["role"],
                                      target=request["user_id"])
    for member in changes:
        push(session, member_ids, "group_role_changed", group_id=group_id,
             account_name=member.name, role=member.role, by=session.account.name)
    return {"response": codes.OK, "members": [member_view(m) for m in changes]}


@defer.inlineCallbacks
def group_delete(session: Session, request: dict[str, Any]) -> Any:
    """200; the members get ``group_deleted``. The owner may delete its group, a server
    administrator any group (audited)."""
    ctx = session.ctx
    me = session.account
    group_id = request["group"]
    try:
        group, member_ids, by_admin = yield ctx.db.write(groupchanges.delete_txn, me.id, me.name,
                                                         group_id, ctx.clock.seconds())
    except groups.NoSuchGroup:
        raise NotFound(f"no group with id {group_id}") from None
    except (groups.NotMember, groups.NotAllowed) as error:
        raise as_jim_error(error) from None
    ctx.typing_members.forget(group_id)
    session.log.info("{account} deleted group #{group}{how}", account=me.name, group=group_id,
                     how=" as a server administrator" if by_admin else "")
    push(session, member_ids, "group_deleted", group_id=group_id, name=group.name,
         by=me.name)
    return {"response": codes.OK}


@defer.inlineCallbacks
def admin_list_groups(session: Session, request: dict[str, Any]) -> Any:
    """202: every group (name containing ``query``), by id, for server administrators;
    audited."""
    ctx = session.ctx
    me = session.account
    limit = request.get("limit") or 50
    try:
        rows = yield ctx.db.write(groupchanges.admin_list_txn, me.id, me.name, request.get("query"),
                                  request.get("offset") or 0, limit + 1, ctx.clock.seconds())
    except NotAdmin:
        me.is_admin = False
        session.log.warn("Refused admin_list_groups to non-admin {account} at {address}",
                         account=me.name, address=session.address)
        raise Forbidden("administrators only") from None
    return Page([{**group_view(group), "owner": owner, "members": members,
                  "last_msg_id": group.last_msg_id} for group, owner, members in rows[:limit]],
                more=len(rows) > limit)


ROUTES = {
    "group_create": (group_create, LOGGED_IN),
    "group_list": (group_list, LOGGED_IN, True),
    "group_info": (group_info, LOGGED_IN, True),
    "group_add": (group_add, LOGGED_IN),
    "group_remove": (group_remove, LOGGED_IN),
    "group_leave": (group_leave, LOGGED_IN),
    "group_update": (group_update, LOGGED_IN),
    "group_set_role": (group_set_role, LOGGED_IN),
    "group_delete": (group_delete, LOGGED_IN),
    "admin_list_groups": (admin_list_groups, LOGGED_IN, True),
}
