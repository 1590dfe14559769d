"""Administrative changes, each with its audit row in the same transaction.

Shared by the server's ``admin_*`` handlers and the ``messenger-admin`` tool, so an
operator at the command line and an admin in the client change accounts the same way
and leave the same trail. ``actor`` is the account name of the admin (or
``"operator:<login>"`` for the command line).
"""

from __future__ import annotations

from typing import Any

from messenger.store import audit, premium, users
from messenger.store.errors import LastAdmin, Missing


def _user(txn: Any, name: str) -> users.UserRow:
    row = users.get_by_name_txn(txn, name)
    if row is None:
        raise Missing(name)
    return row


def set_admin_txn(txn: Any, actor: str, name: str, value: bool, now: float) -> users.UserRow:
    row = _user(txn, name)
    if row.is_admin and not value and users.count_admins_txn(txn) <= 1:
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
    """Lock until a time, or (``until`` None) until an admin unlocks."""
    row = _user(txn, name)
    users.save_lock_state_txn(txn, row.id, row.failed_logins, row.first_failure, until,
                              until is None)
    audit.record_txn(txn, now, actor, "lock", row.name,
                     "until unlocked" if until is None else f"until {until:.0f}")
    return _user(txn, name)


def unlock_txn(txn: Any, actor: str, name: str, now: float) -> users.UserRow:
    row = _user(txn, name)
    users.save_lock_state_txn(txn, row.id, 0, None, None, False)
    audit.record_txn(txn, now, actor, "unlock", row.name)
    return _user(txn, name)


def delete_user_txn(txn: Any, actor: str, name: str, now: float) -> users.UserRow:
    row = _user(txn, name)
    if row.is_admin and users.count_admins_txn(txn) <= 1:
        raise LastAdmin(name)
    users.delete_txn(txn, row.id)
    audit.record_txn(txn, now, actor, "delete_user", row.name, row.email)
    return row


def create_code_txn(txn: Any, actor: str, code_hash: str, hint: str, now: float) -> int:
    code_id = premium.create_txn(txn, code_hash, hint, actor, now)
    audit.record_txn(txn, now, actor, "create_premium_code", None, f"code #{code_id} {hint}")
    return code_id
