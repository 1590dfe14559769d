"""Blocked users: who refuses whom (one direction, like contacts).

The server holds every pair in memory (`messenger.server.blocks`), so the message path
never reads this table: it is read whole at start and written on each change.
"""

from __future__ import annotations

from typing import Any

from messenger.store.errors import Duplicate, Missing


def all_pairs_txn(txn: Any) -> list[tuple[int, int]]:
    """Every (owner id, blocked id) pair."""
    txn.execute("SELECT owner_id, blocked_id FROM blocks")
    return [(row[0], row[1]) for row in txn.fetchall()]


def count_txn(txn: Any, owner_id: int) -> int:
    """How many users the owner has blocked (for a per-user cap)."""
    txn.execute("SELECT COUNT(*) FROM blocks WHERE owner_id = ?", (owner_id,))
    return txn.fetchone()[0]


def block_txn(txn: Any, owner_id: int, blocked_id: int, now: float) -> None:
    """Block; `Duplicate` if blocked already, `Missing` if either user is gone."""
    txn.execute("SELECT 1 FROM blocks WHERE owner_id = ? AND blocked_id = ?",
                (owner_id, blocked_id))
    if txn.fetchone():
        raise Duplicate("block")
    txn.execute("INSERT INTO blocks (owner_id, blocked_id, created)"
                " SELECT ?, id, ? FROM users WHERE id = ? AND EXISTS"
                " (SELECT 1 FROM users WHERE id = ?)", (owner_id, now, blocked_id, owner_id))
    if txn.rowcount != 1:
        raise Missing(str(blocked_id))


def unblock_txn(txn: Any, owner_id: int, blocked_id: int) -> bool:
    """Unblock; False when the pair was not blocked."""
    txn.execute("DELETE FROM blocks WHERE owner_id = ? AND blocked_id = ?",
                (owner_id, blocked_id))
    return txn.rowcount == 1


def list_page_txn(txn: Any, owner_id: int, after_name_lower: str,
                  limit: int) -> list[tuple[str, float]]:
    """One page of the owner's blocked users by name: (account name, when blocked) of
    those whose lower-case name sorts after ``after_name_lower`` ("" for the first)."""
    txn.execute("SELECT u.name, b.created FROM blocks b JOIN users u ON u.id = b.blocked_id"
                " WHERE b.owner_id = ? AND u.name_lower > ? ORDER BY u.name_lower LIMIT ?",
                (owner_id, after_name_lower, limit))
    return [(row[0], row[1]) for row in txn.fetchall()]
