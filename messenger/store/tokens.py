"""Resume tokens: only a SHA-256 of each token is stored, with an expiry."""

from __future__ import annotations

from typing import Any


def create_txn(txn: Any, user_id: int, token_hash: str, now: float, expires: float) -> None:
    txn.execute("INSERT INTO resume_tokens (user_id, token_hash, created, expires)"
                " VALUES (?, ?, ?, ?)", (user_id, token_hash, now, expires))


def lookup_txn(txn: Any, token_hash: str) -> tuple[int, float] | None:
    """(user id, expiry) of a token, or None when no such token exists."""
    txn.execute("SELECT user_id, expires FROM resume_tokens WHERE token_hash = ?",
                (token_hash,))
    row = txn.fetchone()
    return (row[0], row[1]) if row else None


def touch_txn(txn: Any, token_hash: str, now: float) -> None:
    txn.execute("UPDATE resume_tokens SET last_used = ? WHERE token_hash = ?", (now, token_hash))


def revoke_txn(txn: Any, token_hash: str) -> bool:
    txn.execute("DELETE FROM resume_tokens WHERE token_hash = ?", (token_hash,))
    return txn.rowcount == 1


def revoke_all_txn(txn: Any, user_id: int) -> int:
    txn.execute("DELETE FROM resume_tokens WHERE user_id = ?", (user_id,))
    return txn.rowcount


def purge_expired_txn(txn: Any, now: float) -> int:
    txn.execute("DELETE FROM resume_tokens WHERE expires < ?", (now,))
    return txn.rowcount
