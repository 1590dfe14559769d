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

from messenger.store.engines import MESSAGES_LOCK, engine_of
from messenger.store.errors import StoreError

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


def member_ids_of_txn(txn: Any, group_ids: list[int]) -> dict[int, list[int]]:
    """The current members' ids of each of these groups (one read for many)."""
    return {group_id: member_ids_txn(txn, group_id) for group_id in group_ids}


def all_members_txn(txn: Any, group_id: int, page: int = 1000) -> list[Member]:
    """Every current member by name, read page by page (the operator's ``groups show``)."""
    members: list[Member] = []
    after = ""
    while True:
        found = members_page_txn(txn, group_id, after, page)
        members.extend(found)
        if len(found) < page:
            return members
        after = found[-1].name.lower()


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
