"""Premium codes: single use, stored as SHA-256 hashes with who made them and when."""

from __future__ import annotations

from typing import Any

# (id, hint, created by, created, used by, used)
CodeRow = tuple[int, str, str, float, str | None, float | None]


def create_txn(txn: Any, code_hash: str, hint: str, created_by: str, now: float) -> int:
    txn.execute("INSERT INTO premium_codes (code_hash, hint, created_by, created)"
                " VALUES (?, ?, ?, ?) RETURNING id", (code_hash, hint, created_by, now))
    return txn.fetchone()[0]


def list_txn(txn: Any, offset: int, limit: int) -> list[CodeRow]:
    txn.execute("SELECT id, hint, created_by, created, used_by, used FROM premium_codes"
                " ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset))
    return [tuple(row) for row in txn.fetchall()]
