"""Edits and deletions for everyone, and the changes a client catches up with.

The author may edit or delete a message within the server's edit window; an owner or
admin of a group may delete any message of the group at any time. An edit replaces the
body (no earlier version is kept); a deletion empties it and clears the mentions, so the
text is gone from the row, not hidden, and the search index drops its words (schema 013
and 014 triggers). The row itself stays, as a tombstone: ids are never reused, replies
may still point at it, and a client learns that the message it has was deleted.

Each change gives the message a row in ``message_changes`` with a new id from that
table's own sequence (schema 012): `changes_txn` returns the changes above the last one a
client saw, of the messages it may see (the rules of ``sync``: its direct conversations
and its group membership windows). On PostgreSQL change ids are given out and committed
in one order cluster-wide (`CHANGES_LOCK`), as message ids are, so a cursor never skips
a change that commits late.

Refusals: `NoSuchMessage` (no such message, or not one the user may see: the same
answer, so nothing leaks), `NotAllowed` (the user sees it but may not change it: not the
author, or past the window), `AlreadyDeleted` (an edit of a deleted message).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from messenger.store import groupmsgs, groups, messages
from messenger.store.engines import engine_of
from messenger.store.errors import StoreError

# The advisory lock key of change ids on PostgreSQL ("msgr" and a number; see engines).
CHANGES_LOCK = 0x6D736772_0000000C
EDITED, DELETED = "edited", "deleted"


class NoSuchMessage(StoreError):
    """No message with that id that the user may see."""


class NotAllowed(StoreError):
    """The user sees the message but may not make this change (the text says why)."""


class AlreadyDeleted(StoreError):
    """The message was deleted: there is nothing left to edit."""


@dataclass(frozen=True, slots=True)
class Change:
    """A message as it is after its latest change, with who may see the change."""

    change_id: int
    msg_id: int
    time: float                 # when the message was sent
    sender: str
    recipient: str | None       # a direct message's recipient, else None
    group_id: int | None        # a group message's group, else None
    body: str                   # "" once deleted
    reply_to: int | None
    edited: float | None
    deleted: float | None
    actor: str | None           # who made the change (None: an account deleted since)
    audience: tuple[int, ...] = ()  # user ids to push it to (set by edit/delete)

    @property
    def kind(self) -> str:
        return DELETED if self.deleted is not None else EDITED


@dataclass(frozen=True, slots=True)
class _Target:
    id: int
    sender_id: int
    recipient_id: int | None
    group_id: int | None
    created: float
    deleted: float | None


def _target_txn(txn: Any, msg_id: int) -> _Target | None:
    txn.execute("SELECT id, sender_id, recipient_id, group_id, created, deleted"
                " FROM messages WHERE id = ?", (msg_id,))
    row = txn.fetchone()
    return _Target(*row) if row is not None else None


def _can_see_group_txn(txn: Any, target: _Target, user_id: int) -> str | None:
    """The user's current role in the message's group if it may see the message
    (a current member whose windows hold it; a manager sees the group's every message),
    else None."""
    membership = groups.membership_txn(txn, target.group_id, user_id)  # type: ignore[arg-type]
    if membership is None:
        return None
    if membership.role in groups.MANAGERS:
        return membership.role
    for low, high in groups.windows_txn(txn, target.group_id, user_id):  # type: ignore
        if low < target.id and (high is None or target.id <= high):
            return membership.role
    return None


def _require(txn: Any, user_id: int, msg_id: int) -> tuple[_Target, str | None]:
    """The message and the user's role in its group (None for a direct message), or
    `NoSuchMessage` when the user may not see it."""
    target = _target_txn(txn, msg_id)
    if target is None:
        raise NoSuchMessage()
    if target.group_id is None:
        if user_id not in (target.sender_id, target.recipient_id):
            raise NoSuchMessage()
        return target, None
    role = _can_see_group_txn(txn, target, user_id)
    if role is None:
        raise NoSuchMessage()
    return target, role


def within_window(created: float, now: float, window: float) -> bool:
    """May the author still change a message sent at ``created``? (``window`` 0: always.)"""
    return window <= 0 or now - created <= window


def _window_text(window: float) -> str:
    """The edit window in words: "48 hours", "30 minutes", "1 second"."""
    for unit, seconds in (("hour", 3600), ("minute", 60), ("second", 1)):
        if window >= seconds or unit == "second":
            amount = window / seconds
            return f"{amount:g} {unit}" + ("" if amount == 1 else "s")
    raise AssertionError("unreachable")


def edit_txn(txn: Any, user_id: int, msg_id: int, body: str, now: float,
             window: float) -> Change:
    """Replace the body of the user's own message (within ``window`` seconds of sending
    it); returns the change, with the users to push it to."""
    engine_of(txn).serial_section(txn, CHANGES_LOCK)
    target, _ = _require(txn, user_id, msg_id)
    if target.sender_id != user_id:
        raise NotAllowed("you may only edit your own messages")
    if target.deleted is not None:
        raise AlreadyDeleted("this message was deleted")
    if not within_window(target.created, now, window):
        raise NotAllowed(f"messages can be edited for {_window_text(window)} after they"
                         " were sent")
    txn.execute("UPDATE messages SET body = ?, edited = ? WHERE id = ?", (body, now, msg_id))
    return _record_txn(txn, target, user_id, now)


def delete_txn(txn: Any, user_id: int, msg_id: int, now: float,
               window: float) -> tuple[Change, bool]:
    """Delete a message for everyone: its author within ``window``, or an owner or admin
    of its group at any time. Returns (the change, whether it is new): deleting a deleted
    message changes nothing and answers with the first deletion."""
    engine_of(txn).serial_section(txn, CHANGES_LOCK)
    target, role = _require(txn, user_id, msg_id)
    manager = role in groups.MANAGERS
    if target.sender_id != user_id and not manager:
        raise NotAllowed("you may only delete your own messages (a group's owner and"
                         " admins may delete any message of the group)")
    if target.deleted is not None:
        (change,) = change_rows_txn(txn, [msg_id], by_message=True)
        return change, False
    if not manager and not within_window(target.created, now, window):
        raise NotAllowed(f"messages can be deleted for {_window_text(window)} after they"
                         " were sent")
    if engine_of(txn).name == "sqlite":
        # Overwrite the freed bytes of the old body on the pages written anyway (a
        # connection setting: the writer keeps it on from its first deletion).
        txn.execute("PRAGMA secure_delete = FAST")
    txn.execute("UPDATE messages SET body = '', mentions = NULL, attachment = NULL,"
                " file_id = NULL,"
                " deleted = ? WHERE id = ?", (now, msg_id))
    return _record_txn(txn, target, user_id, now), True


def _record_txn(txn: Any, target: _Target, actor_id: int, now: float) -> Change:
    """Give the message's change row a new id; return the change with its audience."""
    txn.execute("DELETE FROM message_changes WHERE msg_id = ?", (target.id,))
    txn.execute("INSERT INTO message_changes (msg_id, sender_id, recipient_id, group_id,"
                " actor_id, created) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (target.id, target.sender_id, target.recipient_id, target.group_id,
                 actor_id, now))
    txn.fetchone()
    if target.group_id is None:
        audience = {target.sender_id, target.recipient_id}
    else:
        txn.execute("SELECT DISTINCT user_id FROM group_members WHERE group_id = ?"
                    " AND joined_after < ? AND (left_at IS NULL OR left_at >= ?)",
                    (target.group_id, target.id, target.id))
        audience = {row[0] for row in txn.fetchall()} | {target.sender_id}
    audience.discard(actor_id)
    (change,) = change_rows_txn(txn, [target.id], by_message=True)
    return dataclasses.replace(change, audience=tuple(sorted(audience)))


# -- reading ------------------------------------------------------------------------------

_CHANGE_ROWS = (
    "SELECT c.id, m.id, m.created, s.name, r.name, m.group_id, m.body, m.reply_to,"
    " m.edited, m.deleted, a.name FROM message_changes c JOIN messages m ON m.id = c.msg_id"
    " JOIN users s ON s.id = m.sender_id LEFT JOIN users r ON r.id = m.recipient_id"
    " LEFT JOIN users a ON a.id = c.actor_id WHERE c.{} IN ({}) ORDER BY c.id")
CHANGE_BODY = 6  # the body's column in a change row


def change_rows_txn(txn: Any, ids: list[int], by_message: bool = False,
                    max_bytes: int = 0) -> list[Change]:
    """The changes with these change ids (or of these message ids), in change order."""
    if not ids:
        return []
    txn.execute(_CHANGE_ROWS.format("msg_id" if by_message else "id",
                                    ",".join("?" * len(ids))), tuple(ids))
    return [Change(*row) for row in messages._until_bytes(txn, max_bytes, CHANGE_BODY)]


def changes_txn(txn: Any, user_id: int, since: int, limit: int,
                max_bytes: int = 0) -> list[Change]:
    """The changes above ``since`` of messages the user may see, oldest first: of its
    direct conversations (sent or received) and of its group membership windows (those
    of groups it has left included, as for ``sync``). Each source is an indexed range
    (message_changes by recipient, sender or group, then id) stopped after ``limit``."""
    terms: list[tuple[str, tuple[Any, ...]]] = [
        ("SELECT id FROM message_changes WHERE recipient_id = ? AND id > ?"
         " ORDER BY id LIMIT ?", (user_id, since, limit)),
        ("SELECT id FROM message_changes WHERE sender_id = ? AND id > ?"
         " AND group_id IS NULL AND recipient_id <> ? ORDER BY id LIMIT ?",
         (user_id, since, user_id, limit))]
    txn.execute("SELECT group_id, joined_after, left_at FROM group_members WHERE user_id = ?",
                (user_id,))
    for group_id, low, high in txn.fetchall():
        sql = ("SELECT id FROM message_changes WHERE group_id = ? AND id > ?"
               " AND msg_id > ?")
        args: tuple[Any, ...] = (group_id, since, low)
        if high is not None:
            sql += " AND msg_id <= ?"
            args += (high,)
        terms.append((sql + " ORDER BY id LIMIT ?", (*args, limit)))
    ids = groupmsgs.merged_ids_txn(txn, terms, limit, False)
    return change_rows_txn(txn, ids, max_bytes=max_bytes)


def last_change_txn(txn: Any) -> int:
    """The newest change id (0: none yet): where a client that starts afresh begins."""
    txn.execute("SELECT MAX(id) FROM message_changes")
    return txn.fetchone()[0] or 0
