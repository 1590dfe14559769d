"""Login history: every login attempt with its time, peer address and method."""

from __future__ import annotations

from typing import Any


def record_txn(txn: Any, user_id: int, now: float, address: str, method: str,
               success: bool) -> None:
    txn.execute("INSERT INTO login_history (user_id, time, address, method, success)"
                " VALUES (?, ?, ?, ?, ?)", (user_id, now, address, method, int(success)))


def history_txn(txn: Any, user_id: int, before: int | None,
                limit: int) -> list[tuple[int, float, str, str, bool]]:
    """Newest first: (id, time, address, method, success)."""
    txn.execute("SELECT id, time, address, method, success FROM login_history"
                " WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
                (user_id, before if before is not None else 2**62, limit))
    return [(r[0], r[1], r[2], r[3], bool(r[4])) for r in txn.fetchall()]


def known_addresses_txn(txn: Any, user_id: int, limit: int = 1000) -> list[str]:
    """Distinct addresses of this user's successful logins, most recent first."""
    txn.execute("SELECT address, MAX(id) AS last FROM login_history"
                " WHERE user_id = ? AND success = 1 GROUP BY address ORDER BY last DESC LIMIT ?",
                (user_id, limit))
    return [row[0] for row in txn.fetchall()]
