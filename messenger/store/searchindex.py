"""The search index written in batches of its own, after the messages it indexes.

Why: on SQLite, indexing each message inside the transaction that stores it made FTS5
write (and merge) a small segment for every group commit; the writer's work per message
tripled and the server's throughput halved (issue 17). Indexing thousands of stored
messages in one transaction costs FTS5 a fraction of that per message.

How (schema 016): ``search_progress.last_id`` splits the messages in two. Every message
with an id up to it is in the FTS5 index, kept in step with edits, deletions and purges
by triggers; no message above it is indexed at all. `index_pending_txn` indexes the next
messages after it, in id order, each with its body as it is now (edited, emptied by a
deletion; a purged one is simply not there), and moves ``last_id`` to the last of them,
in one transaction. That is exact because SQLite has one writer: ids are given out and
committed in one order, so no message can appear below ``last_id`` later.

Search does not wait for the indexer: `messenger.store.search` reads the index up to
``last_id`` and matches the few newer messages itself, so a message is found the moment
its send is acknowledged. The server runs the indexer in the background
(`messenger.server.searchindex`).

PostgreSQL keeps indexing each message in its insert (schema 014's trigger): measured
(`scripts/bench/pg_search_cost.py`), the trigger is about a third of PostgreSQL's CPU
per stored message (16 of 46 µs), but indexing the same messages afterwards in batches
costs PostgreSQL 15-22 µs each again (a side table's rows written and checked, or the
messages' rows rewritten), so batches would move that CPU, not save it. There
`index_pending_txn` has nothing to do.
"""

from __future__ import annotations

from typing import Any

from messenger.store.engines import engine_of

# The most messages indexed in one transaction. Measured on the writer (2-core VM, 9-word
# messages; µs per message / ms per transaction): 50 a transaction (a group commit's
# size, what the insert trigger paid) 53 / 1; 500: 9.7 / 3; 1,000: 8.6 / 5; 5,000: 5.9 /
# 29. A pass takes what the traffic of one interval left (`messenger.server.searchindex`:
# 1,000 messages at 2,000 msg/s); the cap matters only when the index is behind, where
# larger passes catch up faster, each between two group commits.
BATCH = 5000

# The conversation tokens of a message (column ``vis`` of the index, see schema 013).
VIS = ("CASE WHEN group_id IS NULL THEN 'u' || sender_id || ' u' || recipient_id"
       " ELSE 'g' || group_id END")


def batched(txn: Any) -> bool:
    """Does this engine index in batches (SQLite), or each message as it is stored?"""
    return engine_of(txn).name == "sqlite"


def progress_txn(txn: Any) -> int:
    """The newest message id up to which every message is indexed (SQLite only)."""
    txn.execute("SELECT last_id FROM search_progress")
    return txn.fetchone()[0]


def pending_txn(txn: Any) -> int:
    """How many stored messages wait to be indexed (0 on an engine that indexes each
    message as it is stored)."""
    if not batched(txn):
        return 0
    txn.execute("SELECT COUNT(*) FROM messages WHERE id > (SELECT last_id FROM search_progress)")
    return txn.fetchone()[0]


def index_pending_txn(txn: Any, limit: int = BATCH) -> int:
    """Index up to ``limit`` of the messages waiting, oldest first, and move the progress
    past them (in a writer transaction); returns how many were indexed, so a result of
    ``limit`` means there may be more."""
    if not batched(txn):
        return 0
    last = progress_txn(txn)
    txn.execute("SELECT COUNT(*), MAX(id) FROM (SELECT id FROM messages WHERE id > ?"
                " ORDER BY id LIMIT ?)", (last, limit))
    count, newest = txn.fetchone()
    if not count:
        return 0
    txn.execute(f"INSERT INTO messages_fts (rowid, body, vis) SELECT id, body, {VIS}"
                " FROM messages WHERE id > ? AND id <= ? ORDER BY id", (last, newest))
    txn.execute("UPDATE search_progress SET last_id = ?", (newest,))
    return count


def index_pass_txn(txn: Any, limit: int = BATCH) -> tuple[int, int]:
    """`index_pending_txn`, then how many still wait: ``(indexed, waiting)``. Only a
    full batch can leave any (there is one writer: nothing commits during the pass), so
    the count costs a query only then."""
    indexed = index_pending_txn(txn, limit)
    return indexed, pending_txn(txn) if indexed >= limit else 0
