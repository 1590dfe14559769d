"""Administrative actions, each with its audit row in the same transaction.

Shared by the server's ``admin_*`` handlers and the ``messenger-admin`` tool, so an
operator at the command line and an admin in the client change accounts the same way
and leave the same trail. ``actor`` is the account name of the admin (or
``"operator:<login>"`` for the command line). The audit row records who (actor), what
(action), whom (target account name) and when; names rather than ids, so the rows
outlive deleted accounts.

Changes raise `Missing` for an unknown account and `LastAdmin` when they would leave the
deployment without an administrator. The ``*_audited_txn`` reads let the protocol record
that an admin looked at users, login history, codes or the audit log itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from messenger.store import audit, groupchanges, logins, premium, users
from messenger.store.engines import MESSAGES_LOCK, engine_of
from messenger.store.errors import LastAdmin, Missing, NotAdmin


def _user(txn: Any, name: str) -> users.UserRow:
    row = users.get_by_name_txn(txn, name)
    if row is None:
        raise Missing(name)
    return row


def as_admin_txn(txn: Any, actor_id: int, fn: Any, actor: str, *args: Any) -> Any:
    """Run ``fn(txn, actor, *args)`` if ``actor_id`` is an administrator, checked in the
    same transaction as the change (`NotAdmin` otherwise): a role revoked a moment ago
    cannot slip between a check and the write."""
    row = users.get_by_id_txn(txn, actor_id)
    if row is None or not row.is_admin:
        raise NotAdmin(actor)
    return fn(txn, actor, *args)


def nothing_txn(txn: Any, actor: str, now: float) -> None:
    """No change: for a role check alone (`as_admin_txn`)."""


def _last_admin(txn: Any, row: users.UserRow, now: float) -> bool:
    """Is ``row`` the last administrator who can still log in?"""
    return row.is_admin and not _locked(row, now) and users.count_admins_txn(txn, now) <= 1


def _locked(row: users.UserRow, now: float) -> bool:
    return row.admin_locked or (row.locked_until is not None and row.locked_until > now)


# -- changes ------------------------------------------------------------------------------

def set_admin_txn(txn: Any, actor: str, name: str, value: bool, now: float) -> users.UserRow:
    row = _user(txn, name)
    if not value and _last_admin(txn, row, now):
        raise LastAdmin(name)
    users.set_admin_txn(txn, row.id, value)
    audit.record_txn(txn, now, actor, "set_admin" if value else "clear_admin", row.name)
    return _user(txn, name)


def set_premium_txn(txn: Any, actor: str, name: str, value: bool,
                    now: float) -> users.UserRow:
    row = _user(txn, name)
    users.set_premium_txn(txn, row.id, value)
    audit.record_txn(txn, now, actor, "set_premium" if value else "clear_premium", row.name)
    return _user(txn, name)


def lock_txn(txn: Any, actor: str, name: str, until: float | None,
             now: float) -> users.UserRow:
    """Lock until a time, or (``until`` None) until an admin unlocks; never the last
    administrator who can still log in."""
    row = _user(txn, name)
    if _last_admin(txn, row, now):
        raise LastAdmin(name)
    users.save_lock_state_txn(txn, row.id, 0, None, until, until is None)
    audit.record_txn(txn, now, actor, "lock", row.name,
                     "until unlocked" if until is None else f"until {until:.0f}")
    return _user(txn, name)


def unlock_txn(txn: Any, actor: str, name: str, now: float) -> users.UserRow:
    row = _user(txn, name)
    users.save_lock_state_txn(txn, row.id, 0, None, None, False)
    audit.record_txn(txn, now, actor, "unlock", row.name)
    return _user(txn, name)


@dataclass(frozen=True, slots=True)
class DeletedAccount:
    """What `delete_user_txn` did: the account as it was, and the groups it was in that
    remain, each with its new owner's name (None where it was not the owner)."""

    row: users.UserRow
    groups: list[tuple[int, str | None]]


def delete_user_txn(txn: Any, actor: str, name: str, now: float) -> DeletedAccount:
    """Delete an account and everything that cascades from it (contacts, messages,
    login history, tokens, group memberships; a group it owned passes to another member);
    its broadcasts stay, under its name.

    Waits for the message inserts running on any node (their lock), so that none of
    them finds the account half deleted: they see it whole, or gone."""
    engine_of(txn).lock(txn, MESSAGES_LOCK)
    row = _user(txn, name)
    if _last_admin(txn, row, now):
        raise LastAdmin(name)
    remaining = groupchanges.user_deleted_txn(txn, row.id)
    users.delete_txn(txn, row.id)
    audit.record_txn(txn, now, actor, "delete_user", row.name, row.email)
    return DeletedAccount(row, remaining)


def create_code_txn(txn: Any, actor: str, code_hash: str, hint: str, now: float) -> int:
    code_id = premium.create_txn(txn, code_hash, hint, actor, now)
    audit.record_txn(txn, now, actor, "create_premium_code", None, f"code #{code_id} {hint}")
    return code_id


def record_txn(txn: Any, actor: str, action: str, target: str | None, detail: str | None,
               now: float) -> None:
    """An audit row for an action that is not one of the changes above (e.g. ``sql``)."""
    audit.record_txn(txn, now, actor, action, target, detail)


# -- reads that leave an audit row --------------------------------------------------------

def list_users_audited_txn(txn: Any, actor: str, query: str | None, offset: int, limit: int,
                           now: float) -> list[users.UserRow]:
    rows = users.list_txn(txn, query, offset, limit)
    detail = f"query {query!r}, offset {offset}" if query else f"offset {offset}"
    audit.record_txn(txn, now, actor, "list_users", None, detail)
    return rows


def login_history_audited_txn(txn: Any, actor: str, name: str, before: int | None,
                              limit: int, now: float) -> list[tuple[int, float, str, str, bool]]:
    row = _user(txn, name)
    rows = logins.history_txn(txn, row.id, before, limit)
    audit.record_txn(txn, now, actor, "login_history", row.name)
    return rows


def list_codes_audited_txn(txn: Any, actor: str, offset: int, limit: int,
                           now: float) -> list[premium.CodeRow]:
    rows = premium.list_txn(txn, offset, limit)
    audit.record_txn(txn, now, actor, "list_premium_codes", None, f"offset {offset}")
    return rows


def audit_audited_txn(txn: Any, actor: str, before: int | None, limit: int,
                      now: float) -> list[audit.AuditRow]:
    """The audit log (newest first) as it was before this look at it is recorded."""
    rows = audit.list_txn(txn, before, limit)
    audit.record_txn(txn, now, actor, "view_audit", None)
    return rows


# -- summaries for the operator -----------------------------------------------------------

def summary_txn(txn: Any, name: str) -> dict[str, Any]:
    """One account with counts of what it owns, for ``messenger-admin users show``."""
    row = _user(txn, name)

    def count(sql: str, *args: Any) -> int:
        txn.execute(sql, args)
        return txn.fetchone()[0]
    txn.execute("SELECT time, address FROM login_history WHERE user_id = ? AND success = 1"
                " ORDER BY id DESC LIMIT 1", (row.id,))
    last = txn.fetchone()
    return {
        "user": row,
        "contacts": count("SELECT COUNT(*) FROM contacts WHERE owner_id = ?", row.id),
        "contact_of": count("SELECT COUNT(*) FROM contacts WHERE contact_id = ?", row.id),
        "sent": count("SELECT COUNT(*) FROM messages WHERE sender_id = ?", row.id),
        "received": count("SELECT COUNT(*) FROM messages WHERE recipient_id = ?", row.id),
        "broadcasts": count("SELECT COUNT(*) FROM broadcasts WHERE sender_id = ?", row.id),
        "tokens": count("SELECT COUNT(*) FROM resume_tokens WHERE user_id = ?", row.id),
        "last_login": (last[0], last[1]) if last else None,
    }


def usage_txn(txn: Any, limit: int, since: float) -> list[tuple[str, int, int, int]]:
    """Who stores the most: (name, messages sent, characters sent, characters sent after
    ``since``), the largest senders first, ``limit`` of them (``messenger-admin usage``)."""
    txn.execute("SELECT u.name, COUNT(m.id), COALESCE(SUM(LENGTH(m.body)), 0),"
                " COALESCE(SUM(CASE WHEN m.created >= ? THEN LENGTH(m.body) ELSE 0 END), 0)"
                " FROM users u JOIN messages m ON m.sender_id = u.id"
                " GROUP BY u.id, u.name ORDER BY 3 DESC, u.name LIMIT ?", (since, limit))
    return [(row[0], row[1], row[2], row[3]) for row in txn.fetchall()]
