"""Logins as transactions: a success or a failure recorded with its effect on the lock.

A login ends in one write transaction whatever proved it. The row is checked again there,
as it is now: the account still exists, is not locked (a lock may have been set while
the password was being checked) and, for a token login, the token was not revoked
meanwhile. The lockout state is read and written in the same transaction as the attempt
it accounts for (`messenger.store.lockout`), so parallel guesses cannot lose counts.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from messenger.store import contacts, lockout, logins, tokens, users
from messenger.store.errors import Locked, Missing, Revoked


class LoginRecord(NamedTuple):
    """What a successful login needs next: addresses seen before it, and contacts."""

    known_addresses: list[str]
    contacts: list[tuple[int, str]]


class FailureRecord(NamedTuple):
    """The lock state after a failed login, and whether this failure locked it."""

    state: lockout.LockState
    locked_now: bool


def lock_state(row: users.UserRow) -> lockout.LockState:
    return lockout.LockState(row.failed_logins, row.first_failure, row.locked_until,
                             row.admin_locked)


def _save(txn: Any, user_id: int, state: lockout.LockState) -> None:
    users.save_lock_state_txn(txn, user_id, state.failed_count, state.first_failure,
                              state.locked_until, state.admin_locked)


def login_success_txn(txn: Any, user_id: int, now: float, address: str, method: str,
                      new_token_hash: str | None, expires: float,
                      used_token_hash: str | None) -> LoginRecord:
    """Record a successful login: `Missing`, `Locked` or `Revoked` when it may not be.

    The failure count is cleared; a lock never is. A new resume token is stored (by its
    hash) when ``new_token_hash`` is given; a used one is touched."""
    row = users.get_by_id_txn(txn, user_id)
    if row is None:
        raise Missing(str(user_id))
    state = lock_state(row)
    if lockout.is_locked(state, now):
        raise Locked(state)
    if used_token_hash is not None:
        if tokens.lookup_txn(txn, used_token_hash) is None:
            raise Revoked()
        tokens.touch_txn(txn, used_token_hash, now)
    known = logins.known_addresses_txn(txn, user_id)
    logins.record_txn(txn, user_id, now, address, method, True)
    if new_token_hash is not None:
        tokens.create_txn(txn, user_id, new_token_hash, now, expires)
    cleared = lockout.on_success(state)
    if cleared != state:
        _save(txn, user_id, cleared)
    return LoginRecord(known, contacts.list_txn(txn, user_id))


def login_failure_txn(txn: Any, user_id: int, now: float, address: str, method: str,
                      policy: lockout.LockoutPolicy) -> FailureRecord:
    """Record a failed login and count it toward a lock."""
    row = users.get_by_id_txn(txn, user_id)
    if row is None:
        return FailureRecord(lockout.LockState(), False)
    logins.record_txn(txn, user_id, now, address, method, False)
    state = lock_state(row)
    new_state, locked_now = lockout.on_failure(state, now, policy)
    if new_state != state:
        _save(txn, user_id, new_state)
    return FailureRecord(new_state, locked_now)


def set_password_txn(txn: Any, user_id: int, password_hash: str, now: float,
                     token_hash: str | None, expires: float) -> None:
    """A new password: every resume token revoked, and one new token when given."""
    users.set_password_txn(txn, user_id, password_hash, now)
    tokens.revoke_all_txn(txn, user_id)
    if token_hash is not None:
        tokens.create_txn(txn, user_id, token_hash, now, expires)
