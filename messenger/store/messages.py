"""Direct messages: batched idempotent inserts, sync since an id, history between two users.

Group messages share the table and the id sequence (`messenger.store.groupmsgs`); `sync_txn`
returns both kinds in one sequence.

A message is identified by the server's ``id`` (increasing in commit order) and, for
idempotence, by (sender, client request id): a resend of the same request is answered
with the row already stored instead of a second copy.
"""

from __future__ import annotations

from typing import Any

from messenger.store import groupmsgs, groups, replies
from messenger.store.engines import MESSAGES_LOCK, engine_of

INSERT = ("INSERT INTO messages (sender_id, recipient_id, client_id, body, created)"
          " VALUES (?, ?, ?, ?, ?) ON CONFLICT (sender_id, client_id) DO NOTHING")
# A batch with a reply in it (an item with a sixth field, ``reply_to``) uses this one.
INSERT_REPLIES = ("INSERT INTO messages (sender_id, recipient_id, client_id, body, created,"
                  " reply_to) VALUES (?, ?, ?, ?, ?, ?)"
                  " ON CONFLICT (sender_id, client_id) DO NOTHING")
EXISTING = "SELECT id, created FROM messages WHERE sender_id = ? AND client_id = ?"

# One queued message: (sender id, recipient id, client request id, body, created), and
# for a reply a sixth field: the id of the message it quotes (`messenger.store.replies`).
NewMessage = tuple[int, int, str, str, float] | tuple[int, int, str, str, float, int]
# The outcome per message: (message id, created, newly stored); RECIPIENT_GONE or
# SENDER_GONE when that account no longer exists (deleted after it was looked up).
Stored = tuple[int, float, bool] | str
RECIPIENT_GONE = "recipient gone"
SENDER_GONE = "sender gone"
REPLY_ELSEWHERE = replies.REPLY_ELSEWHERE
# A stored message as read back: (id, created, sender name, recipient name, body), the
# `replies.EXTRA` columns (reply_to, edited, deleted: None unless set), then the
# attachment as JSON text or None.
MessageRow = tuple[Any, ...]
# A message in a sync: (id, created, sender name, recipient name or None, group id or
# None, body, mentions or None), the `replies.EXTRA` columns, then the attachment or None:
# a direct message has a recipient, a group message a group. Every row type ends with the
# attachment (`_until_bytes`).
SyncRow = tuple[Any, ...]
SYNC_BODY = 5   # the body's column in a SyncRow


def insert_batch_txn(txn: Any, items: list[NewMessage]) -> list[Stored]:
    """Store a batch in one transaction; results are in the order of ``items``.

    Ids increase in the order of ``items`` and are never reused (schema 002). A message
    whose (sender, client id) is already stored, before or earlier in the same batch, is
    not stored again: its result is the first copy's id and time, with ``newly stored``
    false.

    On SQLite the rows go in with one ``executemany`` (the loop runs in C, off the GIL's
    critical path), then one query reads back the ids given out in this transaction:
    every id above the largest one before the insert. PostgreSQL has its own path
    (`_insert_batch_postgres`).
    """
    if engine_of(txn).name == "postgres":
        return _insert_batch_postgres(txn, items)
    user_ids = {item[0] for item in items} | {item[1] for item in items}
    txn.execute(f"SELECT id FROM users WHERE id IN ({','.join('?' * len(user_ids))})",
                tuple(user_ids))
    existing = {row[0] for row in txn.fetchall()}
    if len(existing) == len(user_ids):
        valid = items
    else:
        valid = [item for item in items if item[0] in existing and item[1] in existing]
    insert = INSERT
    if any(len(item) > 5 for item in valid):    # a reply: rare, checked apart
        valid = replies.checked_direct_txn(txn, valid)
        insert = INSERT_REPLIES
    txn.execute("SELECT MAX(id) FROM messages")
    floor = txn.fetchone()[0] or 0
    txn.executemany(insert, valid)
    txn.execute("SELECT sender_id, client_id, id FROM messages WHERE id > ?", (floor,))
    fresh = {(row[0], row[1]): row[2] for row in txn.fetchall()}
    results: list[Stored] = []
    append = results.append
    pop = fresh.pop
    for item in items:
        msg_id = pop((item[0], item[2]), None)
        if msg_id is not None:
            append((msg_id, item[4], True))
        elif item[0] not in existing:
            append(SENDER_GONE)
        elif item[1] not in existing:
            append(RECIPIENT_GONE)
        else:
            txn.execute(EXISTING, (item[0], item[2]))
            row = txn.fetchone()
            append((row[0], row[1], False) if row is not None else REPLY_ELSEWHERE)
    return results


# One round trip on PostgreSQL: the cluster-wide section that makes ids commit in the
# order they are given out (`Engine.serial_section_sql`), then every row (arrays, so the
# statement's size does not depend on the batch's), in batch order, skipping rows whose
# sender or recipient is gone and rows already stored.
_PG_INSERT = (
    " INSERT INTO messages (sender_id, recipient_id, client_id, body, created, reply_to)"
    " SELECT t.s, t.r, t.c, t.b, t.t, t.q"
    " FROM unnest(?::bigint[], ?::bigint[], ?::text[], ?::text[], ?::float8[], ?::bigint[])"
    " WITH ORDINALITY AS t(s, r, c, b, t, q, n)"
    " WHERE EXISTS (SELECT 1 FROM users WHERE id = t.s)"
    " AND EXISTS (SELECT 1 FROM users WHERE id = t.r)"
    " ORDER BY t.n"
    " ON CONFLICT (sender_id, client_id) DO NOTHING"
    " RETURNING sender_id, client_id, id")


def _insert_batch_postgres(txn: Any, items: list[NewMessage]) -> list[Stored]:
    """The batch insert on PostgreSQL, where several nodes insert at once.

    Ids come from the identity sequence, which hands them out in call order but lets
    transactions commit in any order: without the lock, a client could sync past id 101
    while 100 was still uncommitted, and never see 100. The advisory lock (held until
    commit, taken by every message insert of every node) makes id order commit order.
    It comes first, in READ COMMITTED, so everything after it sees what the previous
    holder committed. Rows not inserted are either already stored (a resend,
    maybe through another node) or addressed from or to an account that is gone.
    """
    rows: list[Any] = items
    if any(len(item) > 5 for item in items):    # a reply: rare, checked apart
        rows = replies.checked_direct_txn(txn, items)
    columns = [[item[k] for item in rows] for k in range(5)]
    columns.append([item[5] if len(item) > 5 else None for item in rows]
                   if rows is not items else [None] * len(rows))
    txn.execute(engine_of(txn).serial_section_sql(txn) + _PG_INSERT, (MESSAGES_LOCK, *columns))
    fresh = {(row[0], row[1]): row[2] for row in txn.fetchall()}
    results: list[Stored] = []
    existing: set[int] | None = None
    for item in items:
        msg_id = fresh.pop((item[0], item[2]), None)
        if msg_id is not None:
            results.append((msg_id, item[4], True))
            continue
        txn.execute(EXISTING, (item[0], item[2]))
        row = txn.fetchone()
        if row is not None:
            results.append((row[0], row[1], False))
            continue
        if len(item) > 5 and item not in rows:
            results.append(REPLY_ELSEWHERE)
            continue
        if existing is None:
            ids = list({i[0] for i in items} | {i[1] for i in items})
            txn.execute("SELECT id FROM users WHERE id = ANY(?)", (ids,))
            existing = {row[0] for row in txn.fetchall()}
        results.append(SENDER_GONE if item[0] not in existing else RECIPIENT_GONE)
    return results


def sync_txn(txn: Any, user_id: int, since: int, limit: int,
             max_bytes: int = 0) -> list[SyncRow]:
    """Messages to the user with an id above ``since``, oldest first: direct ones
    addressed to the user, and group messages by others within the user's membership
    windows (a group's messages from joining to leaving, whether a member now or not).

    One cursor over both kinds, each message once. Without group messages to look at
    this is one indexed range (messages_recipient); otherwise each window of a group that
    had something new since ``since`` is its own indexed range (messages_group) stopped
    after ``limit`` ids, and the ``limit`` lowest ids of all ranges are read back. With
    ``max_bytes``, reading stops at the first row whose body takes the page past it (see
    `_until_bytes`).
    """
    windows = groups.sync_windows_txn(txn, user_id, since)
    if not windows:
        txn.execute(_SYNC_DIRECT, (user_id, since, limit))
        return _until_bytes(txn, max_bytes, SYNC_BODY)
    terms = [("SELECT id FROM messages WHERE recipient_id = ? AND id > ? ORDER BY id LIMIT ?",
              (user_id, since, limit))]
    terms.extend(groupmsgs.window_terms(group_id, low, high, user_id, None, limit, False)
                 for group_id, low, high in windows)
    ids = groupmsgs.merged_ids_txn(txn, terms, limit, False)
    if not ids:
        return []
    txn.execute(_SYNC_ROWS.format(",".join("?" * len(ids))), tuple(ids))
    return _until_bytes(txn, max_bytes, SYNC_BODY)


_SYNC_COLUMNS = ("SELECT m.id, m.created, s.name, r.name, m.group_id, m.body, m.mentions,"
                 f" {replies.EXTRA}, m.attachment FROM messages m"
                 " JOIN users s ON s.id = m.sender_id")
_SYNC_DIRECT = (_SYNC_COLUMNS + " JOIN users r ON r.id = m.recipient_id"
                " WHERE m.recipient_id = ? AND m.id > ? ORDER BY m.id LIMIT ?")
_SYNC_ROWS = (_SYNC_COLUMNS + " LEFT JOIN users r ON r.id = m.recipient_id"
              " WHERE m.id IN ({}) ORDER BY m.id")


# One page of a conversation: each direction is its own indexed range scan on
# messages_pair (sender_id, recipient_id, id), read backwards from ``before`` and stopped
# after ``limit`` rows; only those (at most 2 * limit) rows are merged and joined. The
# same query as ``(a -> b OR b -> a) ORDER BY id DESC`` would read and sort the whole
# conversation for every page. (PostgreSQL may instead walk the primary key backwards
# and filter, where its statistics say the conversation is most of the table; either way
# a page reads about a page: tests/store/test_history_cost.py checks the plans.)
_HISTORY = (
    f"SELECT m.id, m.created, s.name, r.name, m.body, {replies.EXTRA}, m.attachment FROM ("
    " SELECT * FROM (SELECT id FROM messages WHERE sender_id = ? AND recipient_id = ?"
    " AND id < ? ORDER BY id DESC LIMIT ?) AS mine"
    " UNION ALL"
    " SELECT * FROM (SELECT id FROM messages WHERE sender_id = ? AND recipient_id = ?"
    " AND id < ? ORDER BY id DESC LIMIT ?) AS theirs"
    " ) AS page JOIN messages m ON m.id = page.id"
    " JOIN users s ON s.id = m.sender_id JOIN users r ON r.id = m.recipient_id"
    " ORDER BY m.id DESC LIMIT ?")
_HISTORY_SELF = (
    f"SELECT m.id, m.created, s.name, r.name, m.body, {replies.EXTRA}, m.attachment"
    " FROM messages m"
    " JOIN users s ON s.id = m.sender_id JOIN users r ON r.id = m.recipient_id"
    " WHERE m.sender_id = ? AND m.recipient_id = ? AND m.id < ?"
    " ORDER BY m.id DESC LIMIT ?")


def history_txn(txn: Any, user_id: int, other_id: int, before: int | None,
                limit: int, max_bytes: int = 0) -> list[MessageRow]:
    """One page of the conversation between two users, oldest first, ids below ``before``.

    Costs one page whatever the conversation's length (see ``_HISTORY``); with
    ``max_bytes``, rows are read newest first only until that many bytes of bodies (see
    `_until_bytes`)."""
    below = before if before is not None else 2**62
    if user_id == other_id:  # notes to self: one direction
        txn.execute(_HISTORY_SELF, (user_id, user_id, below, limit))
    else:
        txn.execute(_HISTORY, (user_id, other_id, below, limit,
                               other_id, user_id, below, limit, limit))
    rows = _until_bytes(txn, max_bytes)
    rows.reverse()
    return rows


def _until_bytes(txn: Any, max_bytes: int, body: int = 4) -> list[Any]:
    """The rows of the query just run, read until their bodies (column ``body``) and
    attachments (the last column) pass
    ``max_bytes`` (the row that passes it included; 0: all). A reply cut to ``max_bytes``
    by its encoded size, which is never less than its bodies' length, then says there is
    more; rows past it are never read into memory (SQLite reads them as they are
    fetched)."""
    if not max_bytes:
        return [tuple(row) for row in txn.fetchall()]
    rows: list[MessageRow] = []
    size = 0
    while size <= max_bytes:
        batch = txn.fetchmany(16)
        if not batch:
            break
        for row in batch:
            rows.append(tuple(row))  # type: ignore[arg-type]
            size += len(row[body]) + len(row[-1] or "")   # body and attachment
            if size > max_bytes:
                break
    return rows


def count_txn(txn: Any) -> int:
    txn.execute("SELECT COUNT(*) FROM messages")
    return txn.fetchone()[0]


def purge_older_than_txn(txn: Any, cutoff: float, batch: int) -> int:
    """Delete up to ``batch`` of the oldest messages created before ``cutoff`` (retention).

    Ids grow with time, so the oldest rows are found by walking the primary key from the
    bottom: no index on ``created`` is needed, and each batch is a short transaction."""
    txn.execute("DELETE FROM messages WHERE id IN (SELECT id FROM messages"
                " WHERE created < ? ORDER BY id LIMIT ?)", (cutoff, batch))
    return txn.rowcount
