"""Read markers and unread counts, direct and group conversations alike.

A read marker says "I have read this conversation up to message id N". Markers live on
the server (direct ones in ``read_markers``, a group's in the member's ``group_members``
row), so unread counts are right after a restart or on another computer. They only move
forward, and never past the newest message: a marker set "to infinity" would swallow
messages not written yet.

Counting is bounded. Direct counts look at the user's newest `DIRECT_SCAN` received
messages (one indexed range, then a join with the markers). Group counts look only at
groups with a message above the member's marker (``chat_groups.last_msg_id``), each an
indexed range that stops after `GROUP_CAP` messages: a count that reaches it means "at
least that many".
"""

from __future__ import annotations

from typing import Any

from messenger.store import groupmsgs, groups, users

DIRECT_SCAN = 10_000
GROUP_CAP = 1000

# The highest id a marker may hold: the newest message id.
_NEWEST = "SELECT MAX(id) FROM messages"


def _clamp(txn: Any, up_to: int) -> int:
    txn.execute(_NEWEST)
    return min(up_to, txn.fetchone()[0] or 0)


def mark_direct_txn(txn: Any, user_id: int, other_id: int, up_to: int) -> int:
    """Move the user's marker of the conversation with ``other_id`` forward to
    ``up_to``; returns the marker now stored."""
    up_to = _clamp(txn, up_to)
    txn.execute("INSERT INTO read_markers (user_id, other_id, up_to) VALUES (?, ?, ?)"
                " ON CONFLICT (user_id, other_id) DO UPDATE SET up_to = CASE"
                " WHEN excluded.up_to > read_markers.up_to THEN excluded.up_to"
                " ELSE read_markers.up_to END", (user_id, other_id, up_to))
    txn.execute("SELECT up_to FROM read_markers WHERE user_id = ? AND other_id = ?",
                (user_id, other_id))
    return txn.fetchone()[0]


def mark_group_txn(txn: Any, user_id: int, group_id: int, up_to: int) -> int:
    """Move the member's marker of the group forward; `groups.NotMember` unless a member."""
    membership = groups.require_txn(txn, group_id, user_id)
    up_to = _clamp(txn, up_to)
    if up_to <= membership.read_up_to:
        return membership.read_up_to
    txn.execute("UPDATE group_members SET read_up_to = ? WHERE group_id = ? AND user_id = ?"
                " AND left_at IS NULL", (up_to, group_id, user_id))
    return up_to


def direct_unread_txn(txn: Any, user_id: int,
                      scan: int = DIRECT_SCAN) -> list[tuple[str, int, int]]:
    """(other's name, unread count, marker) of each direct conversation with messages
    to the user above its marker, among the newest ``scan`` the user received."""
    txn.execute("SELECT u.name, COUNT(*), COALESCE(MAX(r.up_to), 0) FROM"
                " (SELECT id, sender_id FROM messages WHERE recipient_id = ?"
                "  ORDER BY id DESC LIMIT ?) AS m"
                " JOIN users u ON u.id = m.sender_id"
                " LEFT JOIN read_markers r ON r.user_id = ? AND r.other_id = m.sender_id"
                " WHERE m.id > COALESCE(r.up_to, 0)"
                " GROUP BY u.name, u.name_lower ORDER BY u.name_lower",
                (user_id, scan, user_id))
    return [(row[0], row[1], row[2]) for row in txn.fetchall()]


def group_unread_txn(txn: Any, user_id: int, name: str,
                     memberships: list[groups.Membership] | None = None,
                     cap: int = GROUP_CAP) -> dict[int, tuple[int, int]]:
    """Group id -> (unread messages, of which mention the user) for the user's groups
    (or the ``memberships`` given) with messages by others above the marker."""
    if memberships is None:
        memberships = current_memberships_txn(txn, user_id)
    active = [m for m in memberships if m.group.last_msg_id > m.read_floor]
    counts: dict[int, tuple[int, int]] = {}
    pattern = f"% {users.escape_like(name)} %"
    for start in range(0, len(active), groupmsgs.MAX_TERMS):
        chunk = active[start:start + groupmsgs.MAX_TERMS]
        terms, args = [], []
        for n, membership in enumerate(chunk):
            terms.append(
                "SELECT CAST(? AS BIGINT), COUNT(*), SUM(CASE WHEN"
                " (' ' || mentions || ' ') LIKE ? ESCAPE '\\' THEN 1 ELSE 0 END)"
                " FROM (SELECT mentions FROM messages WHERE group_id = ? AND id > ?"
                f" AND sender_id <> ? ORDER BY id LIMIT ?) AS u{n}")
            args.extend((membership.group.id, pattern, membership.group.id,
                         membership.read_floor, user_id, cap))
        txn.execute(" UNION ALL ".join(terms), tuple(args))
        for group_id, unread, mentioned in txn.fetchall():
            if unread:
                counts[group_id] = (unread, mentioned or 0)
    return counts


def current_memberships_txn(txn: Any, user_id: int) -> list[groups.Membership]:
    txn.execute(f"SELECT {groups.GROUP_COLUMNS}, w.role, w.joined_after, w.read_up_to"
                " FROM group_members w JOIN chat_groups g ON g.id = w.group_id"
                " WHERE w.user_id = ? AND w.left_at IS NULL ORDER BY w.group_id", (user_id,))
    return [groups.Membership(groups.GroupRow.from_row(row), user_id, row[7], row[8], row[9])
            for row in txn.fetchall()]


def unread_txn(txn: Any, user_id: int,
               name: str) -> tuple[list[tuple[str, int, int]], list[tuple[int, int, int, int]]]:
    """Everything unread, for the login: direct (name, unread, marker) and group
    (group id, unread, mentions, marker) conversations with unread messages."""
    direct = direct_unread_txn(txn, user_id)
    memberships = current_memberships_txn(txn, user_id)
    counts = group_unread_txn(txn, user_id, name, memberships)
    group_rows = [(m.group.id, *counts[m.group.id], m.read_up_to) for m in memberships
                  if m.group.id in counts]
    return direct, group_rows


def group_list_txn(txn: Any, user_id: int, name: str, after: int, limit: int
                   ) -> list[tuple[groups.Membership, int, str | None, int, int,
                                   groupmsgs.GroupMessageRow | None]]:
    """One page of the user's groups by id, each as (membership, member count, owner,
    unread, unread mentioning the user, last message the user may see)."""
    page = groups.list_for_user_txn(txn, user_id, after, limit)
    counts = group_unread_txn(txn, user_id, name, [membership for membership, _ in page])
    rows = []
    for membership, members in page:
        unread, mentioned = counts.get(membership.group.id, (0, 0))
        last = (groupmsgs.last_txn(txn, membership.group.id, membership.joined_after)
                if membership.group.last_msg_id > membership.joined_after else None)
        rows.append((membership, members, groups.owner_name_txn(txn, membership.group.id),
                     unread, mentioned, last))
    return rows
