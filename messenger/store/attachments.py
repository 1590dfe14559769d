"""Messages that carry a file: stored like any direct or group message, plus the file they
refer to.

Kept apart from `messenger.store.messages` and `messenger.store.groupmsgs` so that the
hot paths of plain messages stay as they are: these rows go through their own group
commits. A group message with a file is stored by the group path itself (membership,
announcement channels, mentions, the members to push to), and given its file in the
same transaction. Idempotence is the same: a
resend of a (sender, client request id) already stored is answered with the first copy.
The referenced file is checked in the same transaction: a file deleted since the sender
was allowed to post it (it was never posted and its grace period ran out) makes that
message fail, not the batch.
"""

from __future__ import annotations

from typing import Any

from messenger.store import groupmsgs, groups
from messenger.store.engines import MESSAGES_LOCK, engine_of
from messenger.store.messages import EXISTING, RECIPIENT_GONE, SENDER_GONE, Stored

FILE_GONE = "file gone"
INSERT = ("INSERT INTO messages (sender_id, recipient_id, client_id, body, created, file_id,"
          " attachment) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sender_id, client_id)"
          " DO NOTHING RETURNING id")

# One queued message: (sender id, recipient id, client request id, body, created, file id,
# the attachment object as JSON text).
NewAttachment = tuple[int, int, str, str, float, int, str]


# One queued group message: (sender id, group id, client request id, body, created,
# lower-case names written as @name, file id, the attachment object as JSON text).
NewGroupAttachment = tuple[int, int, str, str, float, tuple[str, ...], int, str]


def insert_batch_txn(txn: Any, items: list[NewAttachment]) -> list[Stored]:
    """Store a batch in one transaction; results in the order of ``items`` (see
    `messenger.store.messages.insert_batch_txn`), or `FILE_GONE` for a message whose
    file no longer exists. On PostgreSQL the inserts run in the messages' serial
    section, as plain messages do: ids commit in the order they are given out."""
    engine_of(txn).serial_section(txn, MESSAGES_LOCK)
    user_ids = {item[0] for item in items} | {item[1] for item in items}
    txn.execute(f"SELECT id FROM users WHERE id IN ({','.join('?' * len(user_ids))})",
                tuple(user_ids))
    users = {row[0] for row in txn.fetchall()}
    files = _existing_files(txn, {item[5] for item in items})
    results: list[Stored] = []
    for item in items:
        if item[0] not in users:
            results.append(SENDER_GONE)
        elif item[1] not in users:
            results.append(RECIPIENT_GONE)
        elif item[5] not in files:
            results.append(FILE_GONE)
        else:
            results.append(_insert(txn, item))
    return results


def _insert(txn: Any, item: NewAttachment) -> Stored:
    txn.execute(INSERT, item)
    row = txn.fetchone()
    if row is not None:
        return (row[0], item[4], True)
    txn.execute(EXISTING, (item[0], item[2]))
    row = txn.fetchone()
    return (row[0], row[1], False)



def _existing_files(txn: Any, file_ids: set[int]) -> set[int]:
    txn.execute(f"SELECT id FROM files WHERE id IN ({','.join('?' * len(file_ids))})",
                tuple(file_ids))
    return {row[0] for row in txn.fetchall()}


class GroupAttachments:
    """The batch function of the group commit for group messages with a file (one per
    server, with its own `groupmsgs.MemberCache`)."""

    def __init__(self) -> None:
        self.cache = groupmsgs.MemberCache()

    def insert_batch_txn(self, txn: Any,
                         items: list[NewGroupAttachment]) -> list[groupmsgs.Stored]:
        """Store a batch in one transaction; results in the order of ``items``: those of
        `groupmsgs.insert_batch_txn`, or `FILE_GONE` for a message whose file no longer
        exists. The rows stored now are given their file in the same transaction, so a
        message is never seen without it."""
        groups.serial_txn(txn)
        files = _existing_files(txn, {item[6] for item in items})
        kept = [item for item in items if item[6] in files]
        stored = iter(groupmsgs.insert_batch_txn(txn, [item[:6] for item in kept],
                                                 self.cache) if kept else ())
        results: list[groupmsgs.Stored] = []
        updates = []
        for item in items:
            if item[6] not in files:
                results.append(FILE_GONE)
                continue
            result = next(stored)
            if type(result) is tuple and result[2]:
                updates.append((item[6], item[7], result[0]))
            results.append(result)
        if updates:
            txn.executemany("UPDATE messages SET file_id = ?, attachment = ? WHERE id = ?",
                            updates)
        return results
