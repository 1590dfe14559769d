"""Uploads, files and blobs: the rows behind docs/PROTOCOL.md's "Files" (schema 007).

A *blob* is content, keyed by its SHA-256 and stored once. A *file* is one finished
upload's view of a blob (name, MIME type, owner); a message refers to a file. An *upload*
is a file being sent: it reserves its size against the owner's quota from its start.

The bytes themselves are not here: the server's blob store keeps them in files named by
the hash. Two functions take a callback into it, because their correctness needs the
file system and the rows to change under one lock: finishing an upload makes sure the
blob's file exists while the blob row is held (`finish_txn`), and removing an unused
blob deletes its file while its row is held (`collect_txn`). On SQLite the one writer
connection serialises them; on PostgreSQL the row lock does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from messenger.store.errors import StoreError


class QuotaExceeded(StoreError):
    """Starting the upload would pass the owner's quota."""

    def __init__(self, used: int, quota: int) -> None:
        super().__init__(f"{used} of {quota} bytes used")
        self.used = used
        self.quota = quota


class FileRow(NamedTuple):
    id: int
    sha256: str
    owner_id: int | None
    name: str
    size: int
    mime: str
    created: float


class UploadRow(NamedTuple):
    id: int
    owner_id: int
    sha256: str
    size: int
    name: str
    mime: str
    known: bool                 # the owner already holds this content: no bytes needed
    created: float
    touched: float


_FILE = "SELECT id, sha256, owner_id, name, size, mime, created FROM files"
_UPLOAD = ("SELECT id, owner_id, sha256, size, name, mime, known, created, touched"
           " FROM uploads")


def _upload(row: Any) -> UploadRow | None:
    if row is None:
        return None
    return UploadRow(row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]), row[7],
                     row[8])


def _file(row: Any) -> FileRow | None:
    return FileRow(*row) if row is not None else None


# -- quota and uploads ----------------------------------------------------------------------

def quota_used_txn(txn: Any, owner_id: int) -> int:
    """Bytes counted against ``owner_id``: the distinct contents of its files (the same
    bytes uploaded twice count once) and the declared sizes of its unfinished uploads
    (but those of content it already holds)."""
    txn.execute("SELECT COALESCE(SUM(size), 0) FROM (SELECT DISTINCT sha256, size FROM files"
                " WHERE owner_id = ?) owned", (owner_id,))
    stored = txn.fetchone()[0]
    txn.execute("SELECT COALESCE(SUM(size), 0) FROM uploads WHERE owner_id = ? AND known = 0",
                (owner_id,))
    return int(stored) + int(txn.fetchone()[0])


def open_upload_txn(txn: Any, owner_id: int, sha256: str, size: int, name: str, mime: str,
                    now: float, quota: int) -> tuple[UploadRow, bool]:
    """The owner's upload of this content: ``(row, True)`` when one was already under
    way (it resumes, under the new name and type), else a new one, ``(row, False)``.

    A new upload must fit the quota (0: none) with everything else counted, or
    `QuotaExceeded`: checked here, before any byte is stored, in the transaction that
    reserves it, so that parallel starts cannot overdraw. When the owner already has a
    file of this content, the upload is *known*: it needs no bytes.
    """
    txn.execute(_UPLOAD + " WHERE owner_id = ? AND sha256 = ? AND size = ?",
                (owner_id, sha256, size))
    row = _upload(txn.fetchone())
    if row is not None:
        txn.execute("UPDATE uploads SET name = ?, mime = ?, touched = ? WHERE id = ?",
                    (name, mime, now, row.id))
        return row._replace(name=name, mime=mime, touched=now), True
    txn.execute("SELECT 1 FROM files WHERE owner_id = ? AND sha256 = ? AND size = ?"
                " LIMIT 1", (owner_id, sha256, size))
    known = txn.fetchone() is not None
    if quota and not known:
        used = quota_used_txn(txn, owner_id)
        if used + size > quota:
            raise QuotaExceeded(used, quota)
    txn.execute("INSERT INTO uploads (owner_id, sha256, size, name, mime, known, created,"
                " touched) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (owner_id, sha256, size, name, mime, int(known), now, now))
    upload_id = txn.fetchone()[0]
    return UploadRow(upload_id, owner_id, sha256, size, name, mime, known, now, now), False


def get_upload_txn(txn: Any, upload_id: int) -> UploadRow | None:
    txn.execute(_UPLOAD + " WHERE id = ?", (upload_id,))
    return _upload(txn.fetchone())


def forget_known_txn(txn: Any, upload_id: int) -> None:
    """The content a known upload relied on is gone: it needs its bytes after all."""
    txn.execute("UPDATE uploads SET known = 0 WHERE id = ?", (upload_id,))


def delete_upload_txn(txn: Any, upload_id: int, owner_id: int) -> bool:
    txn.execute("DELETE FROM uploads WHERE id = ? AND owner_id = ?", (upload_id, owner_id))
    return txn.rowcount > 0


def finish_txn(txn: Any, upload_id: int, owner_id: int, now: float,
               ensure_blob: Callable[[str], None]) -> FileRow | None:
    """Turn a complete, verified upload into a file; None if there is no such upload.

    The blob row is made (or found and locked) first, then ``ensure_blob(sha256)`` makes
    sure its file exists while the row is held, so a concurrent removal of an unused blob
    (`collect_txn`) either finished before (and the file is put back, or ``ensure_blob``
    raises when it cannot be) or waits, and then fails on the new file's reference.
    """
    upload = get_upload_txn(txn, upload_id)
    if upload is None or upload.owner_id != owner_id:
        return None
    # DO UPDATE, not DO NOTHING: it locks an existing row (PostgreSQL) until the commit.
    txn.execute("INSERT INTO blobs (sha256, size, created) VALUES (?, ?, ?)"
                " ON CONFLICT (sha256) DO UPDATE SET size = excluded.size",
                (upload.sha256, upload.size, now))
    ensure_blob(upload.sha256)
    txn.execute("INSERT INTO files (sha256, owner_id, upload_id, name, size, mime, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (upload.sha256, owner_id, upload_id, upload.name, upload.size, upload.mime,
                 now))
    file_id = txn.fetchone()[0]
    txn.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))
    return FileRow(file_id, upload.sha256, owner_id, upload.name, upload.size, upload.mime,
                   now)


def file_of_upload_txn(txn: Any, upload_id: int, owner_id: int) -> FileRow | None:
    """The file an upload became (a finish sent again after a reconnect)."""
    txn.execute(_FILE + " WHERE upload_id = ? AND owner_id = ?", (upload_id, owner_id))
    return _file(txn.fetchone())


def expire_uploads_txn(txn: Any, cutoff: float, batch: int) -> list[int]:
    """Delete up to ``batch`` uploads untouched since ``cutoff``; their ids (whose partial
    files the caller removes)."""
    txn.execute("SELECT id FROM uploads WHERE touched < ? ORDER BY touched LIMIT ?",
                (cutoff, batch))
    ids = [row[0] for row in txn.fetchall()]
    if ids:
        txn.execute(f"DELETE FROM uploads WHERE id IN ({','.join('?' * len(ids))})",
                    tuple(ids))
    return ids


def touch_uploads_txn(txn: Any, upload_ids: list[int], now: float) -> None:
    """Uploads being received right now do not expire."""
    txn.execute(f"UPDATE uploads SET touched = ? WHERE id IN ({','.join('?' * len(upload_ids))})",
                (now, *upload_ids))


def upload_ids_txn(txn: Any) -> set[int]:
    """Every upload under way (to tell partial files left by a crash from live ones)."""
    txn.execute("SELECT id FROM uploads")
    return {row[0] for row in txn.fetchall()}


# -- files and access ----------------------------------------------------------------------

def get_file_txn(txn: Any, file_id: int) -> FileRow | None:
    txn.execute(_FILE + " WHERE id = ?", (file_id,))
    return _file(txn.fetchone())


def readable_txn(txn: Any, user_id: int, file_id: int) -> FileRow | None:
    """The file if ``user_id`` may download it, else None (whether or not it exists).

    Its owner may; so may every participant of a conversation where a message refers to
    it: each kind of conversation is one check of `ACCESS_CHECKS`, tried in turn.
    """
    row = get_file_txn(txn, file_id)
    if row is None:
        return None
    if row.owner_id == user_id:
        return row
    for check in ACCESS_CHECKS:
        if check(txn, user_id, file_id):
            return row
    return None


def _direct_participant(txn: Any, user_id: int, file_id: int) -> bool:
    """A direct message carrying the file was sent or received by the user, and the
    other person of that conversation has not blocked the user: a block shuts the
    conversation's files too, as it refuses its messages (docs/PROTOCOL.md,
    "Blocking")."""
    txn.execute("SELECT 1 FROM messages m WHERE m.file_id = ? AND m.recipient_id IS NOT NULL"
                " AND ((m.sender_id = ? AND NOT EXISTS (SELECT 1 FROM blocks b"
                "  WHERE b.owner_id = m.recipient_id AND b.blocked_id = m.sender_id))"
                " OR (m.recipient_id = ? AND NOT EXISTS (SELECT 1 FROM blocks b"
                "  WHERE b.owner_id = m.sender_id AND b.blocked_id = m.recipient_id)))"
                " LIMIT 1", (file_id, user_id, user_id))
    return txn.fetchone() is not None


def _group_participant(txn: Any, user_id: int, file_id: int) -> bool:
    """A group message carrying the file lies within one of the user's membership
    windows (schema 004): members from their joining on, and a removed (or departed)
    member for what was posted while a member, never after."""
    txn.execute("SELECT 1 FROM messages m JOIN group_members w ON w.group_id = m.group_id"
                " AND w.user_id = ? WHERE m.file_id = ? AND m.group_id IS NOT NULL"
                " AND m.id > w.joined_after AND (w.left_at IS NULL OR m.id <= w.left_at)"
                " LIMIT 1", (user_id, file_id))
    return txn.fetchone() is not None


# One function per kind of conversation: (txn, user id, file id) -> may the user read it.
ACCESS_CHECKS: tuple[Callable[[Any, int, int], bool], ...] = (_direct_participant,
                                                              _group_participant)


# -- housekeeping --------------------------------------------------------------------------

def collect_txn(txn: Any, unposted_before: float, batch: int,
                remove_blob: Callable[[str], None]) -> tuple[int, list[str]]:
    """Delete files no message refers to that were finished before ``unposted_before``,
    then blobs no file refers to; ``remove_blob(sha256)`` takes each blob's file away
    while its row is held. Returns (files deleted, blob hashes deleted); at most ``batch``
    of each."""
    txn.execute("SELECT f.id FROM files f WHERE f.created < ? AND NOT EXISTS"
                " (SELECT 1 FROM messages m WHERE m.file_id = f.id) ORDER BY f.id LIMIT ?",
                (unposted_before, batch))
    file_ids = [row[0] for row in txn.fetchall()]
    if file_ids:
        txn.execute(f"DELETE FROM files WHERE id IN ({','.join('?' * len(file_ids))})",
                    tuple(file_ids))
    txn.execute("SELECT b.sha256 FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM files f"
                " WHERE f.sha256 = b.sha256) AND NOT EXISTS (SELECT 1 FROM uploads u"
                " WHERE u.sha256 = b.sha256 AND u.known = 1) LIMIT ?", (batch,))
    hashes = [row[0] for row in txn.fetchall()]
    removed = []
    for sha256 in hashes:
        txn.execute("DELETE FROM blobs WHERE sha256 = ? AND NOT EXISTS (SELECT 1 FROM files"
                    " f WHERE f.sha256 = blobs.sha256)", (sha256,))
        if txn.rowcount:
            remove_blob(sha256)
            removed.append(sha256)
    return len(file_ids), removed


def blob_hashes_txn(txn: Any) -> set[str]:
    txn.execute("SELECT sha256 FROM blobs")
    return {row[0] for row in txn.fetchall()}
