"""Groups: the group rows, their members and roles, and the membership history.

A member's rights follow its role: the ``owner`` (exactly one per group) may do
everything, hand ownership over and delete the group; an ``admin`` may add members,
remove plain members, change the name, topic and ``announce_only``; a ``member`` may read,
post (unless the group is ``announce_only``) and leave. Every check reads the role inside
the write transaction that makes the change, so a role taken away a moment ago cannot
slip through.

Membership is a history of windows (schema 004): adding a member opens a window after the
newest message id, removing (or leaving) closes it at the newest message id. Those ids
are read in the same write transaction (`message_floor_txn`), and message inserts check
membership in theirs, so every message is plainly before or after every change: a removed
member is never sent what was posted after the removal, and a new member sees the
conversation from its joining on.

A user who is not a member learns nothing about a group: `NotMember` is raised alike
whether the group exists or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from messenger.store import audit, users
from messenger.store.engines import MESSAGES_LOCK, engine_of
from messenger.store.errors import Missing, NotAdmin, StoreError

OWNER, ADMIN, MEMBER = "owner", "admin", "member"
ROLES = (OWNER, ADMIN, MEMBER)
MANAGERS = (OWNER, ADMIN)
GROUP_COLUMNS = "g.id, g.name, g.topic, g.announce_only, g.created, g.created_by, g.last_msg_id"
# SQLite refuses more than 999 parameters in one statement before 3.32; stay below.
IN_CHUNK = 900


class NotMember(StoreError):
    """The user is not a member of that group (or there is no such group)."""


class NotAllowed(StoreError):
    """The user's role does not allow this; the message says what would."""


class NotInGroup(StoreError):
    """The account named is not a member of the group."""

    def __init__(self, name: str) -> None:
        super().__init__(f"'{name}' is not a member of this group")
        self.name = name


class AlreadyMember(StoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f"'{name}' is already a member of this group")
        self.name = name


class LimitReached(StoreError):
    """A configured limit (members per group, groups per user) would be exceeded."""


class RoleConflict(StoreError):
    """The change contradicts the roles (the owner leaving, demoting itself, ...)."""


class NoSuchGroup(StoreError):
    """No group has that id (told only to server administrators and operators)."""


@dataclass(frozen=True, slots=True)
class GroupRow:
    id: int
    name: str
    topic: str
    announce_only: bool
    created: float
    created_by: str
    last_msg_id: int

    @classmethod
    def from_row(cls, row: Any) -> GroupRow:
        id_, name, topic, announce_only, created, created_by, last_msg_id = row[:7]
        return cls(id_, name, topic, bool(announce_only), created, created_by, last_msg_id)


@dataclass(frozen=True, slots=True)
class Membership:
    """A user's current membership of a group."""

    group: GroupRow
    user_id: int
    role: str
    joined_after: int
    read_up_to: int

    @property
    def read_floor(self) -> int:
        """Messages above this id are unread (nothing before joining counts)."""
        return max(self.joined_after, self.read_up_to)


@dataclass(frozen=True, slots=True)
class Member:
    user_id: int
    name: str
    role: str


@dataclass(frozen=True, slots=True)
class Limits:
    """The configured limits the store enforces (0: no limit)."""

    max_members: int = 1000
    max_groups: int = 500


def serial_txn(txn: Any) -> None:
    """Start a group change in the messages' serial section (first in its transaction).

    Message inserts take it too (`messenger.store.groupmsgs`), so on every engine each
    message is wholly before or wholly after each membership or role change: on SQLite
    the single writer already runs one transaction at a time; on PostgreSQL this is the
    cluster-wide advisory lock that also makes message ids commit in order.
    """
    engine_of(txn).serial_section(txn, MESSAGES_LOCK)


def message_floor_txn(txn: Any) -> int:
    """The newest message id: the bound of a membership window opened or closed now
    (in a transaction that began with `serial_txn`)."""
    txn.execute("SELECT MAX(id) FROM messages")
    return txn.fetchone()[0] or 0


# -- reading ------------------------------------------------------------------------------

def membership_txn(txn: Any, group_id: int, user_id: int) -> Membership | None:
    """The user's current membership of the group, or None."""
    txn.execute(f"SELECT {GROUP_COLUMNS}, w.role, w.joined_after, w.read_up_to"
                " FROM group_members w JOIN chat_groups g ON g.id = w.group_id"
                " WHERE w.group_id = ? AND w.user_id = ? AND w.left_at IS NULL",
                (group_id, user_id))
    row = txn.fetchone()
    if row is None:
        return None
    return Membership(GroupRow.from_row(row), user_id, row[7], row[8], row[9])


def require_txn(txn: Any, group_id: int, user_id: int, roles: tuple[str, ...] = ROLES,
                refusal: str = "") -> Membership:
    """The user's membership; `NotMember` if none, `NotAllowed(refusal)` if its role is
    not one of ``roles``."""
    membership = membership_txn(txn, group_id, user_id)
    if membership is None:
        raise NotMember()
    if membership.role not in roles:
        raise NotAllowed(refusal)
    return membership


def group_txn(txn: Any, group_id: int) -> GroupRow | None:
    txn.execute(f"SELECT {GROUP_COLUMNS} FROM chat_groups g WHERE g.id = ?", (group_id,))
    row = txn.fetchone()
    return GroupRow.from_row(row) if row else None


def member_ids_txn(txn: Any, group_id: int) -> list[int]:
    """The current members' user ids (the partial index group_members_current)."""
    txn.execute("SELECT user_id FROM group_members WHERE group_id = ? AND left_at IS NULL",
                (group_id,))
    return [row[0] for row in txn.fetchall()]


def member_count_txn(txn: Any, group_id: int) -> int:
    txn.execute("SELECT COUNT(*) FROM group_members WHERE group_id = ? AND left_at IS NULL",
                (group_id,))
    return txn.fetchone()[0]


def owner_name_txn(txn: Any, group_id: int) -> str | None:
    txn.execute("SELECT u.name FROM group_members w JOIN users u ON u.id = w.user_id"
                " WHERE w.group_id = ? AND w.left_at IS NULL AND w.role = ?",
                (group_id, OWNER))
    row = txn.fetchone()
    return row[0] if row else None


def members_page_txn(txn: Any, group_id: int, after_name_lower: str,
                     limit: int) -> list[Member]:
    """One page of the current members by name (keyset paging on the lower-case name)."""
    txn.execute("SELECT u.id, u.name, w.role FROM group_members w"
                " JOIN users u ON u.id = w.user_id"
                " WHERE w.group_id = ? AND w.left_at IS NULL AND u.name_lower > ?"
                " ORDER BY u.name_lower LIMIT ?", (group_id, after_name_lower, limit))
    return [Member(*row) for row in txn.fetchall()]


def info_txn(txn: Any, group_id: int, user_id: int, after_name_lower: str,
             limit: int) -> tuple[Membership, int, str | None, list[Member]]:
    """For a member: (its membership, member count, owner's name, a page of members)."""
    membership = require_txn(txn, group_id, user_id)
    return (membership, member_count_txn(txn, group_id), owner_name_txn(txn, group_id),
            members_page_txn(txn, group_id, after_name_lower, limit))


def list_for_user_txn(txn: Any, user_id: int, after: int,
                      limit: int) -> list[tuple[Membership, int]]:
    """One page of the user's groups by id (above ``after``): (membership, member count)."""
    txn.execute(f"SELECT {GROUP_COLUMNS}, w.role, w.joined_after, w.read_up_to,"
                " (SELECT COUNT(*) FROM group_members c"
                "  WHERE c.group_id = g.id AND c.left_at IS NULL)"
                " FROM group_members w JOIN chat_groups g ON g.id = w.group_id"
                " WHERE w.user_id = ? AND w.left_at IS NULL AND w.group_id > ?"
                " ORDER BY w.group_id LIMIT ?", (user_id, after, limit))
    return [(Membership(GroupRow.from_row(row), user_id, row[7], row[8], row[9]), row[10])
            for row in txn.fetchall()]


def windows_txn(txn: Any, group_id: int, user_id: int) -> list[tuple[int, int | None]]:
    """Every window of the user's membership of the group: (joined_after, left_at)."""
    txn.execute("SELECT joined_after, left_at FROM group_members"
                " WHERE group_id = ? AND user_id = ? ORDER BY id", (group_id, user_id))
    return [(row[0], row[1]) for row in txn.fetchall()]


def sync_windows_txn(txn: Any, user_id: int,
                     since: int) -> list[tuple[int, int, int]]:
    """The user's membership windows that may hold group messages above ``since``:
    (group id, lowest id excluded, highest id included). Groups whose newest message is
    not above the window's start are left out, so a sync only looks into the groups that
    had something new; the highest id is at most the group's newest message, so that a
    plan walking the primary key starts at the group's messages, not at the newest of
    the whole table."""
    txn.execute("SELECT w.group_id, w.joined_after, w.left_at, g.last_msg_id"
                " FROM group_members w JOIN chat_groups g ON g.id = w.group_id"
                " WHERE w.user_id = ? AND g.last_msg_id > ?"
                " AND (w.left_at IS NULL OR w.left_at > ?)", (user_id, since, since))
    windows = []
    for group_id, joined_after, left_at, last_msg_id in txn.fetchall():
        low = max(since, joined_after)
        if last_msg_id > low:
            high = last_msg_id if left_at is None else min(left_at, last_msg_id)
            windows.append((group_id, low, high))
    return windows


# -- changes ------------------------------------------------------------------------------

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


def _join(txn: Any, group_id: int, user_id: int, role: str, floor: int, now: float) -> None:
    txn.execute("INSERT INTO group_members (group_id, user_id, role, joined_after,"
                " read_up_to, joined_time) VALUES (?, ?, ?, ?, ?, ?)",
                (group_id, user_id, role, floor, floor, now))


def _leave(txn: Any, group_id: int, user_id: int, floor: int, now: float) -> None:
    txn.execute("UPDATE group_members SET left_at = ?, left_time = ?"
                " WHERE group_id = ? AND user_id = ? AND left_at IS NULL",
                (floor, now, group_id, user_id))


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


def user_deleted_txn(txn: Any, user_id: int) -> None:
    """Before an account is deleted: each group it owns passes to its longest-standing
    admin, else to its longest-standing member; a group left with nobody is deleted."""
    txn.execute("SELECT group_id FROM group_members WHERE user_id = ? AND left_at IS NULL"
                " AND role = ?", (user_id, OWNER))
    for (group_id,) in txn.fetchall():
        txn.execute("SELECT user_id FROM group_members WHERE group_id = ?"
                    " AND left_at IS NULL AND user_id <> ?"
                    " ORDER BY CASE role WHEN 'admin' THEN 0 ELSE 1 END, id LIMIT 1",
                    (group_id, user_id))
        heir = txn.fetchone()
        if heir is None:
            _delete(txn, group_id)
        else:
            _set_role(txn, group_id, heir[0], OWNER)


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
