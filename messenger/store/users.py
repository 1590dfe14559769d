"""Accounts: the users table (names unique without regard to case, e-mails unique)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from messenger.store.errors import Duplicate, InvalidCode

COLUMNS = ("id, name, email, password_hash, is_admin, is_premium, failed_logins,"
           " first_failure, locked_until, admin_locked, created, password_changed")


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    name: str
    email: str
    password_hash: str
    is_admin: bool
    is_premium: bool
    failed_logins: int
    first_failure: float | None
    locked_until: float | None
    admin_locked: bool
    created: float
    password_changed: float

    @classmethod
    def from_row(cls, row: Any) -> UserRow:
        (id_, name, email, password_hash, is_admin, is_premium, failed, first_failure,
         locked_until, admin_locked, created, changed) = row
        return cls(id_, name, email, password_hash, bool(is_admin), bool(is_premium), failed,
                   first_failure, locked_until, bool(admin_locked), created, changed)


def escape_like(text: str) -> str:
    """Escape LIKE wildcards so a search matches the text literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def get_by_name_txn(txn: Any, name: str) -> UserRow | None:
    txn.execute(f"SELECT {COLUMNS} FROM users WHERE name_lower = ?", (name.lower(),))
    row = txn.fetchone()
    return UserRow.from_row(row) if row else None


def get_by_id_txn(txn: Any, user_id: int) -> UserRow | None:
    txn.execute(f"SELECT {COLUMNS} FROM users WHERE id = ?", (user_id,))
    row = txn.fetchone()
    return UserRow.from_row(row) if row else None


def create_txn(txn: Any, name: str, email: str, password_hash: str, now: float,
               premium_code_hash: str | None = None) -> UserRow:
    """Create an account; the first account ever is an admin.

    A premium code is consumed in the same transaction, so an invalid or used code
    creates nothing (`InvalidCode`); a taken name or e-mail raises `Duplicate`.
    """
    txn.execute("SELECT id FROM users WHERE name_lower = ?", (name.lower(),))
    if txn.fetchone():
        raise Duplicate("account name")
    txn.execute("SELECT id FROM users WHERE email_lower = ?", (email.lower(),))
    if txn.fetchone():
        raise Duplicate("e-mail address")
    txn.execute("SELECT COUNT(*) FROM users")
    first = txn.fetchone()[0] == 0
    premium = False
    if premium_code_hash is not None:
        txn.execute("UPDATE premium_codes SET used_by = ?, used = ?"
                    " WHERE code_hash = ? AND used IS NULL", (name, now, premium_code_hash))
        if txn.rowcount != 1:
            raise InvalidCode()
        premium = True
    txn.execute("INSERT INTO users (name, name_lower, email, email_lower, password_hash,"
                " is_admin, is_premium, created, password_changed)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (name, name.lower(), email, email.lower(), password_hash, int(first),
                 int(premium), now, now))
    user_id = txn.fetchone()[0]
    return UserRow(user_id, name, email, password_hash, first, premium, 0, None, None, False,
                   now, now)


def search_txn(txn: Any, query: str, exclude_id: int | None, offset: int,
               limit: int) -> list[tuple[int, str]]:
    """(id, name) of accounts whose name contains ``query`` (any case, taken literally:
    ``%`` and ``_`` are not wildcards), alphabetical, one page, ``exclude_id`` left out."""
    txn.execute("SELECT id, name FROM users WHERE name_lower LIKE ? ESCAPE '\\' AND id <> ?"
                " ORDER BY name_lower LIMIT ? OFFSET ?",
                (f"%{escape_like(query.lower())}%", -1 if exclude_id is None else exclude_id,
                 limit, offset))
    return [(row[0], row[1]) for row in txn.fetchall()]


def list_txn(txn: Any, query: str | None, offset: int, limit: int) -> list[UserRow]:
    if query:
        txn.execute(f"SELECT {COLUMNS} FROM users WHERE name_lower LIKE ? ESCAPE '\\'"
                    " ORDER BY id LIMIT ? OFFSET ?",
                    (f"%{escape_like(query.lower())}%", limit, offset))
    else:
        txn.execute(f"SELECT {COLUMNS} FROM users ORDER BY id LIMIT ? OFFSET ?",
                    (limit, offset))
    return [UserRow.from_row(row) for row in txn.fetchall()]


def count_txn(txn: Any) -> int:
    txn.execute("SELECT COUNT(*) FROM users")
    return txn.fetchone()[0]


def count_admins_txn(txn: Any, now: float) -> int:
    """Administrators who can log in: not locked by an admin, not in a timed lockout."""
    txn.execute("SELECT COUNT(*) FROM users WHERE is_admin = 1 AND admin_locked = 0"
                " AND (locked_until IS NULL OR locked_until <= ?)", (now,))
    return txn.fetchone()[0]


def set_admin_txn(txn: Any, user_id: int, value: bool) -> None:
    txn.execute("UPDATE users SET is_admin = ? WHERE id = ?", (int(value), user_id))


def set_premium_txn(txn: Any, user_id: int, value: bool) -> None:
    txn.execute("UPDATE users SET is_premium = ? WHERE id = ?", (int(value), user_id))


def save_lock_state_txn(txn: Any, user_id: int, failed_logins: int,
                        first_failure: float | None, locked_until: float | None,
                        admin_locked: bool) -> None:
    txn.execute("UPDATE users SET failed_logins = ?, first_failure = ?, locked_until = ?,"
                " admin_locked = ? WHERE id = ?",
                (failed_logins, first_failure, locked_until, int(admin_locked), user_id))


def set_password_txn(txn: Any, user_id: int, password_hash: str, now: float) -> None:
    txn.execute("UPDATE users SET password_hash = ?, password_changed = ? WHERE id = ?",
                (password_hash, now, user_id))


def rehash_txn(txn: Any, user_id: int, old_hash: str, new_hash: str) -> bool:
    """Replace a password hash by one of a higher cost, if it is still ``old_hash`` (a
    password changed meanwhile is left alone); the password itself is unchanged."""
    txn.execute("UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?",
                (new_hash, user_id, old_hash))
    return txn.rowcount == 1


def delete_txn(txn: Any, user_id: int) -> bool:
    txn.execute("DELETE FROM users WHERE id = ?", (user_id,))
    return txn.rowcount == 1


def barred_txn(txn: Any, user_ids: list[int]) -> list[tuple[int, bool]]:
    """Of these ids, those whose account was deleted or locked by an administrator, each
    with True when it was deleted."""
    barred: list[tuple[int, bool]] = []
    for start in range(0, len(user_ids), 500):
        chunk = user_ids[start:start + 500]
        txn.execute(f"SELECT id, admin_locked FROM users WHERE id IN"
                    f" ({','.join('?' * len(chunk))})", tuple(chunk))
        found = {row[0]: bool(row[1]) for row in txn.fetchall()}
        barred.extend((user_id, user_id not in found) for user_id in chunk
                      if found.get(user_id, True))
    return barred
