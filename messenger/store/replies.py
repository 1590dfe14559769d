"""Replies: a message may quote an earlier message of the same conversation.

The quoted id (``messages.reply_to``, schema 012) is checked inside the batch transaction
that stores the reply (`messages.insert_batch_txn`, `groupmsgs.insert_batch_txn`), so a
reply never points into another conversation, nor at a group message its author could
not see (one from outside the author's membership windows). A reply whose quote fails
the check is not stored; its result is `REPLY_ELSEWHERE`. The check is the same whether
the quoted message was edited or deleted since (it stays a message of the conversation).

Also here: the extra columns every reader of messages returns after its own (`EXTRA`),
so that history, sync and search all show a message's reply, edit and deletion alike.
"""

from __future__ import annotations

from typing import Any

REPLY_ELSEWHERE = "reply to a message of another conversation"
# Appended to the columns of every message read back (alias ``m``), in this order.
EXTRA = "m.reply_to, m.edited, m.deleted"
EXTRA_COLUMNS = 3


def checked_direct_txn(txn: Any, items: list[Any]) -> list[Any]:
    """The direct messages of a batch that may be stored, each as a 6-tuple (``reply_to``
    None for a plain message); a reply is left out unless the message it quotes is a
    direct message between the same two people (either direction)."""
    wanted = sorted({item[5] for item in items if len(item) > 5})
    pairs = _direct_pairs_txn(txn, wanted)
    rows = []
    for item in items:
        if len(item) == 5:
            rows.append((*item, None))
            continue
        pair = pairs.get(item[5])
        if pair is not None and pair in ((item[0], item[1]), (item[1], item[0])):
            rows.append(item)
    return rows


def _direct_pairs_txn(txn: Any, ids: list[int]) -> dict[int, tuple[int, int]]:
    found: dict[int, tuple[int, int]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        txn.execute(f"SELECT id, sender_id, recipient_id FROM messages WHERE id IN"
                    f" ({','.join('?' * len(chunk))}) AND group_id IS NULL", tuple(chunk))
        found.update((row[0], (row[1], row[2])) for row in txn.fetchall())
    return found


def group_reply_ok_txn(txn: Any, sender_id: int, group_id: int, reply_to: int) -> bool:
    """Is ``reply_to`` a message of the group that ``sender_id`` could see (within one of
    its membership windows)?"""
    txn.execute("SELECT 1 FROM messages m WHERE m.id = ? AND m.group_id = ? AND EXISTS ("
                " SELECT 1 FROM group_members w WHERE w.group_id = ? AND w.user_id = ?"
                " AND w.joined_after < m.id AND (w.left_at IS NULL OR w.left_at >= m.id))",
                (reply_to, group_id, group_id, sender_id))
    return txn.fetchone() is not None
