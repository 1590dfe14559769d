"""Changes to groups: create, add, remove, leave, update, set roles, delete; and what
server administrators and operators do to groups.

Every change starts in the messages' serial section (`groups.serial_txn`) and reads the
acting member's role in the same transaction (`groups.require_txn`), so a role taken
away a moment ago cannot slip through, and each message is wholly before or after each
membership change (the model is `messenger.store.groups`).
"""

from __future__ import annotations

from typing import Any

from messenger.store import audit, users
from messenger.store.errors import Missing, NotAdmin
from messenger.store.groups import (
    ADMIN,
    GROUP_COLUMNS,
    IN_CHUNK,
    MANAGERS,
    MEMBER,
    OWNER,
    AlreadyMember,
    GroupRow,
    LimitReached,
    Limits,
    Member,
    NoSuchGroup,
    NotAllowed,
    NotInGroup,
    NotMember,
    RoleConflict,
    group_txn,
    member_count_txn,
    member_ids_txn,
    membership_txn,
    message_floor_txn,
    require_txn,
    serial_txn,
)

# -- members and groups --------------------------------------------------------------------------

def _names_to_users(txn: Any, names: list[str]) -> dict[str, tuple[int, str]]:
    """Lower-case name -> (id, name as registered) for the names that exist."""
    found: dict[str, tuple[int, str]] = {}
    lowered = sorted({name.lower() for name in names})
    for start in range(0, len(lowered), IN_CHUNK):
        chunk = lowered[start:start + IN_CHUNK]
        txn.execute(f"SELECT id, name, name_lower FROM users WHERE name_lower IN"
                    f" ({','.join('?' * len(chunk))})", tuple(chunk))
        for user_id, name, name_lower in txn.fetchall():
            found[name_lower] = (user_id, name)
    return found


def _groups_of(txn: Any, user_ids: list[int]) -> dict[int, int]:
    """How many groups each user is a member of now."""
    counts: dict[int, int] = {}
    for start in range(0, len(user_ids), IN_CHUNK):
        chunk = user_ids[start:start + IN_CHUNK]
        txn.execute(f"SELECT user_id, COUNT(*) FROM group_members WHERE left_at IS NULL"
                    f" AND user_id IN ({','.join('?' * len(chunk))}) GROUP BY user_id",
                    tuple(chunk))
        counts.update((row[0], row[1]) for row in txn.fetchall())
    return counts


def _check_groups_per_user(txn: Any, members: list[tuple[int, str]], limits: Limits,
                           creator_id: int | None = None) -> None:
    if not limits.max_groups:
        return
    counts = _groups_of(txn, [user_id for user_id, _ in members])
    for user_id, name in members:
        if counts.get(user_id, 0) >= limits.max_groups:
            who = "you are" if user_id == creator_id else f"'{name}' is"
            raise LimitReached(f"{who} already in {limits.max_groups} groups, the most"
                               " allowed")


def touch_txn(txn: Any, group_id: int) -> None:
    """The members, their roles or announce_only changed: a new ``members_version`` (the
    message inserts' cache of members is checked against it)."""
    txn.execute("UPDATE chat_groups SET members_version = members_version + 1 WHERE id = ?",
                (group_id,))


def _join(txn: Any, group_id: int, user_id: int, role: str, floor: int, now: float) -> None:
    txn.execute("INSERT INTO group_members (group_id, user_id, role, joined_after,"
                " read_up_to, joined_time) VALUES (?, ?, ?, ?, ?, ?)",
                (group_id, user_id, role, floor, floor, now))
    touch_txn(txn, group_id)


def _leave(txn: Any, group_id: int, user_id: int, floor: int, now: float) -> None:
    txn.execute("UPDATE group_members SET left_at = ?, left_time = ?"
                " WHERE group_id = ? AND user_id = ? AND left_at IS NULL",
                (floor, now, group_id, user_id))
    touch_txn(txn, group_id)


def create_txn(txn: Any, creator_id: int, creator_name: str, name: str, topic: str,
               announce_only: bool, member_names: list[str], now: float,
               limits: Limits) -> tuple[GroupRow, list[Member]]:
    """Create a group owned by the creator with the named members (each once; the
    creator's own name is ignored). `Missing(name)` for an unknown name, `LimitReached`
    for too many members or a member (or the creator) in too many groups: then nothing
    is created."""
    serial_txn(txn)
    wanted = [n for n in dict.fromkeys(n.lower() for n in member_names)
              if n != creator_name.lower()]
    found = _names_to_users(txn, wanted)
    for lowered in wanted:
        if lowered not in found:
            raise Missing(next(n for n in member_names if n.lower() == lowered))
    others = [found[lowered] for lowered in wanted]
    if limits.max_members and len(others) + 1 > limits.max_members:
        raise LimitReached(f"a group may have at most {limits.max_members} members")
    _check_groups_per_user(txn, [(creator_id, creator_name), *others], limits, creator_id)
    txn.execute("INSERT INTO chat_groups (name, topic, announce_only, created, created_by)"
                " VALUES (?, ?, ?, ?, ?) RETURNING id",
                (name, topic, int(announce_only), now, creator_name))
    group_id = txn.fetchone()[0]
    floor = message_floor_txn(txn)
    _join(txn, group_id, creator_id, OWNER, floor, now)
    for user_id, _ in others:
        _join(txn, group_id, user_id, MEMBER, floor, now)
    group = GroupRow(group_id, name, topic, announce_only, now, creator_name, 0)
    members = [Member(creator_id, creator_name, OWNER)]
    members.extend(Member(user_id, member_name, MEMBER) for user_id, member_name in others)
    return group, members


def add_txn(txn: Any, actor_id: int, group_id: int, target_name: str, now: float,
            limits: Limits) -> tuple[GroupRow, Member, list[int]]:
    """An owner or admin adds a member: (group, the new member, every member's id)."""
    serial_txn(txn)
    membership = require_txn(txn, group_id, actor_id, MANAGERS,
                             "only the group's owner and admins may add members")
    target = users.get_by_name_txn(txn, target_name)
    if target is None:
        raise Missing(target_name)
    if membership_txn(txn, group_id, target.id) is not None:
        raise AlreadyMember(target.name)
    count = member_count_txn(txn, group_id)
    if limits.max_members and count >= limits.max_members:
        raise LimitReached(f"the group has {count} members, the most allowed")
    _check_groups_per_user(txn, [(target.id, target.name)], limits)
    _join(txn, group_id, target.id, MEMBER, message_floor_txn(txn), now)
    return membership.group, Member(target.id, target.name, MEMBER), member_ids_txn(
        txn, group_id)


def remove_txn(txn: Any, actor_id: int, group_id: int, target_name: str,
               now: float) -> tuple[Member, list[int]]:
    """An owner or admin removes a member (an admin only plain members; nobody the
    owner): (the member removed, the ids of those who remain)."""
    serial_txn(txn)
    membership = require_txn(txn, group_id, actor_id, MANAGERS,
                             "only the group's owner and admins may remove members")
    target = users.get_by_name_txn(txn, target_name)
    if target is None:
        raise Missing(target_name)
    if target.id == actor_id:
        raise RoleConflict("use group_leave to leave a group")
    current = membership_txn(txn, group_id, target.id)
    if current is None:
        raise NotInGroup(target.name)
    if current.role == OWNER:
        raise NotAllowed("the owner cannot be removed")
    if current.role == ADMIN and membership.role != OWNER:
        raise NotAllowed("only the owner may remove an admin")
    _leave(txn, group_id, target.id, message_floor_txn(txn), now)
    return Member(target.id, target.name, current.role), member_ids_txn(txn, group_id)


def leave_txn(txn: Any, user_id: int, group_id: int, now: float) -> list[int]:
    """A member leaves (the owner must hand ownership over first): the remaining ids."""
    serial_txn(txn)
    membership = require_txn(txn, group_id, user_id)
    if membership.role == OWNER:
        raise RoleConflict("the owner cannot leave: make another member the owner"
                           " (group_set_role) or delete the group")
    _leave(txn, group_id, user_id, message_floor_txn(txn), now)
    return member_ids_txn(txn, group_id)


def update_txn(txn: Any, actor_id: int, group_id: int, name: str | None,
               topic: str | None, announce_only: bool | None) -> tuple[GroupRow, list[int]]:
    """An owner or admin changes the name, topic or announce_only (None: unchanged)."""
    serial_txn(txn)
    membership = require_txn(txn, group_id, actor_id, MANAGERS,
                             "only the group's owner and admins may change the group")
    old = membership.group
    new = GroupRow(old.id, old.name if name is None else name,
                   old.topic if topic is None else topic,
                   old.announce_only if announce_only is None else announce_only,
                   old.created, old.created_by, old.last_msg_id)
    txn.execute("UPDATE chat_groups SET name = ?, topic = ?, announce_only = ? WHERE id = ?",
                (new.name, new.topic, int(new.announce_only), group_id))
    if new.announce_only != old.announce_only:
        touch_txn(txn, group_id)
    return new, member_ids_txn(txn, group_id)


def set_role_txn(txn: Any, actor_id: int, group_id: int, target_name: str,
                 role: str) -> tuple[list[Member], list[int]]:
    """The owner sets a member's role; making another member the owner hands ownership
    over (the old owner becomes an admin). Returns the members whose role changed (none
    when the role was already that) and every member's id."""
    serial_txn(txn)
    require_txn(txn, group_id, actor_id, (OWNER,), "only the group's owner may change roles")
    target = users.get_by_name_txn(txn, target_name)
    if target is None:
        raise Missing(target_name)
    current = membership_txn(txn, group_id, target.id)
    if current is None:
        raise NotInGroup(target.name)
    if target.id == actor_id:
        if role == OWNER:
            return [], member_ids_txn(txn, group_id)
        raise RoleConflict("the owner keeps its role until it makes another member the"
                           " owner")
    if current.role == role:
        return [], member_ids_txn(txn, group_id)
    changes = [Member(target.id, target.name, role)]
    _set_role(txn, group_id, target.id, role)
    if role == OWNER:
        _set_role(txn, group_id, actor_id, ADMIN)
        actor = users.get_by_id_txn(txn, actor_id)
        changes.append(Member(actor_id, actor.name if actor else "", ADMIN))
    return changes, member_ids_txn(txn, group_id)


def _set_role(txn: Any, group_id: int, user_id: int, role: str) -> None:
    txn.execute("UPDATE group_members SET role = ? WHERE group_id = ? AND user_id = ?"
                " AND left_at IS NULL", (role, group_id, user_id))
    touch_txn(txn, group_id)


def delete_txn(txn: Any, actor_id: int, actor_name: str, group_id: int,
               now: float) -> tuple[GroupRow, list[int], bool]:
    """Delete a group with its messages and membership history: by its owner, or by a
    server administrator (then audited). Returns (the group, the ids of its members, and
    whether a server administrator did it)."""
    serial_txn(txn)
    membership = membership_txn(txn, group_id, actor_id)
    by_admin = membership is None or membership.role != OWNER
    if by_admin:
        actor = users.get_by_id_txn(txn, actor_id)
        if actor is None or not actor.is_admin:
            if membership is None:
                raise NotMember()
            raise NotAllowed("only the group's owner (or a server administrator) may"
                             " delete the group")
    group = membership.group if membership is not None else group_txn(txn, group_id)
    if group is None:
        raise NoSuchGroup(str(group_id))
    member_ids = member_ids_txn(txn, group_id)
    _delete(txn, group_id)
    if by_admin:
        audit.record_txn(txn, now, actor_name, "delete_group", None,
                         f"group #{group_id} {group.name!r}")
    return group, member_ids, by_admin


def _delete(txn: Any, group_id: int) -> None:
    # Messages first: their rows are most of the work, and the cascade would do it anyway.
    txn.execute("DELETE FROM messages WHERE group_id = ?", (group_id,))
    txn.execute("DELETE FROM chat_groups WHERE id = ?", (group_id,))


def user_deleted_txn(txn: Any, user_id: int) -> list[tuple[int, str | None]]:
    """Before an account is deleted: each group it owns passes to its longest-standing
    admin, else to its longest-standing member; a group left with nobody is deleted.
    Every group the account is in gets a new ``members_version`` (its rows go with the
    account). Returns the groups that remain, each with the name of its new owner (None
    where the account was not the owner), for telling their members."""
    txn.execute("UPDATE chat_groups SET members_version = members_version + 1 WHERE id IN"
                " (SELECT group_id FROM group_members WHERE user_id = ? AND left_at IS NULL)",
                (user_id,))
    txn.execute("SELECT group_id, role FROM group_members WHERE user_id = ?"
                " AND left_at IS NULL ORDER BY group_id", (user_id,))
    remaining: list[tuple[int, str | None]] = []
    for group_id, role in txn.fetchall():
        if role != OWNER:
            remaining.append((group_id, None))
            continue
        txn.execute("SELECT w.user_id, u.name FROM group_members w"
                    " JOIN users u ON u.id = w.user_id WHERE w.group_id = ?"
                    " AND w.left_at IS NULL AND w.user_id <> ?"
                    " ORDER BY CASE w.role WHEN 'admin' THEN 0 ELSE 1 END, w.id LIMIT 1",
                    (group_id, user_id))
        heir = txn.fetchone()
        if heir is None:
            _delete(txn, group_id)
        else:
            _set_role(txn, group_id, heir[0], OWNER)
            remaining.append((group_id, heir[1]))
    return remaining


# -- server administrators ----------------------------------------------------------------

def admin_list_txn(txn: Any, actor_id: int, actor_name: str, query: str | None,
                   offset: int, limit: int,
                   now: float) -> list[tuple[GroupRow, str | None, int]]:
    """Every group (or those whose name contains ``query``), by id, for a server
    administrator (checked here, `NotAdmin` otherwise): (group, owner, member count).
    The look is audited."""
    actor = users.get_by_id_txn(txn, actor_id)
    if actor is None or not actor.is_admin:
        raise NotAdmin(actor_name)
    rows = list_all_txn(txn, query, offset, limit)
    detail = f"query {query!r}, offset {offset}" if query else f"offset {offset}"
    audit.record_txn(txn, now, actor_name, "list_groups", None, detail)
    return rows


def list_all_txn(txn: Any, query: str | None, offset: int,
                 limit: int) -> list[tuple[GroupRow, str | None, int]]:
    """Every group (name containing ``query``, any case), by id: (group, owner, members)."""
    where, args = "", ()
    if query:
        where = " WHERE LOWER(g.name) LIKE ? ESCAPE '\\'"
        args = (f"%{users.escape_like(query.lower())}%",)
    txn.execute(f"SELECT {GROUP_COLUMNS},"
                " (SELECT u.name FROM group_members o JOIN users u ON u.id = o.user_id"
                "  WHERE o.group_id = g.id AND o.left_at IS NULL AND o.role = 'owner'),"
                " (SELECT COUNT(*) FROM group_members c"
                "  WHERE c.group_id = g.id AND c.left_at IS NULL)"
                f" FROM chat_groups g{where} ORDER BY g.id LIMIT ? OFFSET ?",
                (*args, limit, offset))
    return [(GroupRow.from_row(row), row[7], row[8]) for row in txn.fetchall()]


def operator_delete_txn(txn: Any, actor: str, group_id: int,
                        now: float) -> tuple[GroupRow, list[int]]:
    """Delete a group from the command line (messenger-admin), audited."""
    serial_txn(txn)
    group = group_txn(txn, group_id)
    if group is None:
        raise NoSuchGroup(str(group_id))
    member_ids = member_ids_txn(txn, group_id)
    _delete(txn, group_id)
    audit.record_txn(txn, now, actor, "delete_group", None, f"group #{group_id} {group.name!r}")
    return group, member_ids
