"""The audit log of admin actions: who did what to whom, when (names, not ids, so rows
outlive deleted accounts)."""

from __future__ import annotations

from typing import Any

# (id, time, actor, action, target, detail)
AuditRow = tuple[int, float, str, str, str | None, str | None]


def record_txn(txn: Any, now: float, actor: str, action: str, target: str | None,
               detail: str | None = None) -> None:
    txn.execute("INSERT INTO audit_log (time, actor, action, target, detail)"
                " VALUES (?, ?, ?, ?, ?)", (now, actor, action, target, detail))


def list_txn(txn: Any, before: int | None, limit: int) -> list[AuditRow]:
    """Newest first."""
    txn.execute("SELECT id, time, actor, action, target, detail FROM audit_log WHERE id < ?"
                " ORDER BY id DESC LIMIT ?", (before if before is not None else 2**62, limit))
    return [tuple(row) for row in txn.fetchall()]
