"""Broadcasts to everyone's home feed (premium and admin users), idempotent per request id."""

from __future__ import annotations

from typing import Any

from messenger.store.engines import BROADCASTS_LOCK, engine_of

# (id, created, sender name, body)
BroadcastRow = tuple[int, float, str, str]


def insert_txn(txn: Any, sender_id: int, sender_name: str, client_id: str, body: str,
               now: float) -> tuple[int, float, bool]:
    """Store one broadcast; a resend returns the first copy: (id, created, newly stored).

    Feeds are paged by id, so ids must commit in the order they are given out: on
    PostgreSQL the insert runs inside a cluster-wide section (like messages).
    """
    engine_of(txn).serial_section(txn, BROADCASTS_LOCK)
    txn.execute("INSERT INTO broadcasts (sender_id, sender_name, client_id, body, created)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (sender_name, client_id) DO NOTHING"
                " RETURNING id", (sender_id, sender_name, client_id, body, now))
    row = txn.fetchone()
    if row is not None:
        return row[0], now, True
    txn.execute("SELECT id, created FROM broadcasts WHERE sender_name = ? AND client_id = ?",
                (sender_name, client_id))
    row = txn.fetchone()
    return row[0], row[1], False


def recent_txn(txn: Any, before: int | None, limit: int) -> list[BroadcastRow]:
    """Newest first."""
    txn.execute("SELECT id, created, sender_name, body FROM broadcasts WHERE id < ?"
                " ORDER BY id DESC LIMIT ?", (before if before is not None else 2**62, limit))
    return [tuple(row) for row in txn.fetchall()]


def purge_older_than_txn(txn: Any, cutoff: float, batch: int) -> int:
    """Delete up to ``batch`` of the oldest broadcasts created before ``cutoff``."""
    txn.execute("DELETE FROM broadcasts WHERE id IN (SELECT id FROM broadcasts"
                " WHERE created < ? ORDER BY id LIMIT ?)", (cutoff, batch))
    return txn.rowcount
