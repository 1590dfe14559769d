"""The message stream of a cluster: where each committed batch sits in the id order.

Every node's message inserts take one advisory lock (`messenger.store.messages`), so
batches commit one after another cluster-wide and ids grow in commit order. `chained`
wraps a batch insert so that it also reports, inside that lock, the highest id committed
before the batch (``prev``) and after it (``hi``): batch ``(prev, hi]`` follows the batch
that ended at ``prev``. The nodes use this chain to push each user's messages in id order
whichever node committed them, and to notice a batch they never heard of
(`messenger.server.cluster.stream`), which they then read here (`range_txn`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from messenger.store.engines import MESSAGES_LOCK, engine_of

# One message read back for a gap: (id, created, sender name, recipient id, recipient
# name, body, attachment as JSON text or None).
StreamRow = tuple[int, float, str, int, str, str, str | None]


def max_id_txn(txn: Any) -> int:
    txn.execute("SELECT COALESCE(MAX(id), 0) FROM messages")
    return int(txn.fetchone()[0])


def chained(batch_txn: Callable[[Any, list[Any]], list[Any]]
            ) -> Callable[[Any, list[Any]], tuple[int, int, list[Any]]]:
    """``batch_txn`` that also returns its place in the chain: ``(prev, hi, results)``.

    Its results are per row, a tuple ``(id, created, newly stored, ...)`` for a stored
    row; ``hi`` is the largest new id (``prev`` when nothing new was stored)."""
    def txn_fn(txn: Any, items: list[Any]) -> tuple[int, int, list[Any]]:
        sql = engine_of(txn).serial_section_sql(txn)
        txn.execute(sql + "SELECT COALESCE(MAX(id), 0) FROM messages",
                    (MESSAGES_LOCK,) if sql else ())
        prev = int(txn.fetchone()[0])
        results = batch_txn(txn, items)
        hi = prev
        for result in results:
            if type(result) is tuple and result[2] and result[0] > hi:
                hi = result[0]
        return prev, hi, results
    txn_fn.__name__ = f"chained_{getattr(batch_txn, '__name__', 'batch')}"
    return txn_fn


def has_group_rows_txn(txn: Any, after: int, up_to: int) -> bool:
    """Whether messages with ids in (after, up_to] include any without a recipient
    (group messages, schema 005): those are read per user, by `messages.sync_txn`."""
    txn.execute("SELECT 1 FROM messages WHERE id > ? AND id <= ? AND recipient_id IS NULL"
                " LIMIT 1", (after, up_to))
    return txn.fetchone() is not None


def range_txn(txn: Any, after: int, up_to: int, limit: int) -> list[StreamRow]:
    """Direct messages with ids in (after, up_to], oldest first, at most ``limit``."""
    txn.execute("SELECT m.id, m.created, s.name, m.recipient_id, r.name, m.body,"
                " m.attachment FROM messages m JOIN users s ON s.id = m.sender_id"
                " JOIN users r ON r.id = m.recipient_id"
                " WHERE m.id > ? AND m.id <= ? ORDER BY m.id LIMIT ?", (after, up_to, limit))
    return [tuple(row) for row in txn.fetchall()]
