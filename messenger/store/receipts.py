"""Delivered and read receipts: checked, batched writes, and what a sender missed.

A receipt says "my client has received (``delivered``) or I have read (``read``) this
conversation up to message N": one per conversation up to an id, never one per message.
Receipts queue for a group commit of their own (`apply_batch_txn`, many in one
transaction), so a crowd of readers costs a few transactions a second, not one each.

Each item is checked before anything is written: the message N must belong to the
conversation (a direct conversation with ``other``, or a group the reader is a member
of and may see N in), and must not be past its last message; a refused item changes
nothing and the others of its batch still go through. A ``read`` receipt moves the
reader's own marker (`messenger.store.reads`, the unread counts) and, unless the
reader turned read receipts off (users.read_receipts, migration 011), the ``read_up_to``
the others see; reading implies delivery, so it moves ``delivered_up_to`` too.

The published values live in ``receipts`` (migration 010), one row per reader and
conversation. A change deletes the row and inserts it again under a new id, so the row
ids are a change cursor: `changes_txn` returns what changed after the cursor a client
kept, which is how a sender who was offline learns what happened meanwhile. On
PostgreSQL the writes run in a serial section of their own, so ids commit in order and
a cursor never skips a row committed late.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from messenger.store import groups
from messenger.store import reads as read_markers
from messenger.store.engines import engine_of

DELIVERED = "delivered"
READ = "read"
KINDS = (DELIVERED, READ)
RECEIPTS_LOCK = 0x6D736772_0000000A
# A group receipt is pushed to the senders of the newest messages it covers, at most
# this many messages back (the others see it with their next sync_receipts).
PUSH_SCAN = 1000

# Refusals (the handler turns them into JIM errors); nothing was written for them.
PAST_END = "past the last message"
OTHER_CONVERSATION = "not in this conversation"
NOT_MEMBER = "not a member"

# One queued receipt: (reader id, kind, other user's id or None, group id or None, up_to).
NewReceipt = tuple[int, str, int | None, int | None, int]
# One published receipt as read back: (change id, reader's name, group id or None,
# delivered_up_to, read_up_to).
ReceiptRow = tuple[int, str, int | None, int, int]


class Applied(NamedTuple):
    """The outcome of one receipt."""

    seq: int                    # the row's new change id; 0 when nothing shown changed
    delivered_up_to: int        # as the others see it now
    read_up_to: int             # as the others see it now
    marker: int                 # the reader's own read marker (``read`` receipts), else 0
    notify: tuple[int, ...]     # the users whose messages' receipts changed


def apply_batch_txn(txn: Any, items: list[NewReceipt]) -> list[Applied | str]:
    """Check and store a batch of receipts in one transaction; results in order (an
    `Applied`, or one of the refusals above)."""
    engine_of(txn).serial_section(txn, RECEIPTS_LOCK)
    settings: dict[int, bool] = {}
    results: list[Applied | str] = []
    for item in items:
        reader = item[0]
        if reader not in settings:
            settings[reader] = read_receipts_txn(txn, reader)
        results.append(_apply_txn(txn, item, settings[reader]))
    return results


def _apply_txn(txn: Any, item: NewReceipt, publish_read: bool) -> Applied | str:
    reader, kind, other, group_id, up_to = item
    if group_id is None:
        assert other is not None
        refusal = _check_direct_txn(txn, reader, other, up_to)
        floor = 0
    else:
        membership = groups.membership_txn(txn, group_id, reader)
        if membership is None:
            return NOT_MEMBER
        refusal = _check_group_txn(txn, membership, up_to)
        floor = membership.joined_after
    if refusal is not None:
        return refusal
    marker = 0
    if kind == READ:
        marker = (read_markers.mark_direct_txn(txn, reader, other, up_to) if group_id is None
                  else read_markers.mark_group_txn(txn, reader, group_id, up_to))
    column, key = ("other_id", other) if group_id is None else ("group_id", group_id)
    txn.execute(f"SELECT delivered_up_to, read_up_to FROM receipts"
                f" WHERE reader_id = ? AND {column} = ?", (reader, key))
    row = txn.fetchone()
    old_delivered, old_read = (row[0], row[1]) if row else (0, 0)
    delivered = max(old_delivered, up_to)
    read = max(old_read, up_to) if kind == READ and publish_read else old_read
    if (delivered, read) == (old_delivered, old_read):
        return Applied(0, delivered, read, marker, ())
    if row is not None:
        txn.execute(f"DELETE FROM receipts WHERE reader_id = ? AND {column} = ?",
                    (reader, key))
    txn.execute(f"INSERT INTO receipts (reader_id, {column}, delivered_up_to, read_up_to)"
                f" VALUES (?, ?, ?, ?) RETURNING id", (reader, key, delivered, read))
    seq = txn.fetchone()[0]
    if group_id is None:
        notify: tuple[int, ...] = (other,)
    else:
        low = max(floor, old_read if read != old_read else old_delivered)
        notify = _group_senders_txn(txn, group_id, reader, low, up_to)
    return Applied(seq, delivered, read, marker, notify)


def _check_direct_txn(txn: Any, reader: int, other: int, up_to: int) -> str | None:
    """None if ``up_to`` is a message of the conversation (or one deleted from it)."""
    txn.execute("SELECT sender_id, recipient_id FROM messages WHERE id = ?", (up_to,))
    row = txn.fetchone()
    if row is not None:
        return None if {row[0], row[1]} == {reader, other} else OTHER_CONVERSATION
    txn.execute("SELECT MAX(id) FROM messages WHERE (sender_id = ? AND recipient_id = ?)"
                " OR (sender_id = ? AND recipient_id = ?)", (reader, other, other, reader))
    last = txn.fetchone()[0] or 0
    return PAST_END if up_to > last else None


def _check_group_txn(txn: Any, membership: groups.Membership, up_to: int) -> str | None:
    """None if ``up_to`` is a message of the group that the member may see."""
    if up_to > membership.group.last_msg_id:
        return PAST_END
    if up_to <= membership.joined_after:
        return OTHER_CONVERSATION      # from before the member joined: not theirs to see
    txn.execute("SELECT group_id FROM messages WHERE id = ?", (up_to,))
    row = txn.fetchone()
    if row is not None and row[0] != membership.group.id:
        return OTHER_CONVERSATION
    return None


def _group_senders_txn(txn: Any, group_id: int, reader: int, low: int,
                       up_to: int) -> tuple[int, ...]:
    """The senders (but the reader) of the group's messages in (low, up_to], among the
    newest `PUSH_SCAN` of them: one indexed range of messages_group."""
    txn.execute("SELECT DISTINCT sender_id FROM (SELECT sender_id FROM messages"
                " WHERE group_id = ? AND id > ? AND id <= ? ORDER BY id DESC LIMIT ?) AS s",
                (group_id, low, up_to, PUSH_SCAN))
    return tuple(row[0] for row in txn.fetchall() if row[0] != reader)


# -- reading ------------------------------------------------------------------------------

_SELECT = ("SELECT r.id, u.name, r.group_id, r.delivered_up_to, r.read_up_to FROM receipts r"
           " JOIN users u ON u.id = r.reader_id")


def changes_txn(txn: Any, user_id: int, since: int, limit: int) -> list[ReceiptRow]:
    """The receipts about the user's conversations changed after ``since``, by change
    id: the readers of the user's direct messages, and the other members of the user's
    groups; at most ``limit``."""
    txn.execute(f"{_SELECT} WHERE r.other_id = ? AND r.id > ? ORDER BY r.id LIMIT ?",
                (user_id, since, limit))
    found = [tuple(row) for row in txn.fetchall()]
    txn.execute(f"{_SELECT} WHERE r.group_id IN (SELECT group_id FROM group_members"
                " WHERE user_id = ? AND left_at IS NULL) AND r.id > ? AND r.reader_id <> ?"
                " ORDER BY r.id LIMIT ?", (user_id, since, user_id, limit))
    found.extend(tuple(row) for row in txn.fetchall())
    found.sort()
    return found[:limit]  # type: ignore[return-value]


# -- the setting --------------------------------------------------------------------------

def read_receipts_txn(txn: Any, user_id: int) -> bool:
    """Does the user send read receipts (the default)?"""
    txn.execute("SELECT read_receipts FROM users WHERE id = ?", (user_id,))
    row = txn.fetchone()
    return bool(row[0]) if row else False


def set_read_receipts_txn(txn: Any, user_id: int, enabled: bool) -> bool:
    txn.execute("UPDATE users SET read_receipts = ? WHERE id = ?", (int(enabled), user_id))
    return enabled
