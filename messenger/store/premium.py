"""Premium codes: single use, stored as SHA-256 hashes with who made them and when.

A code is shown once, when it is made; only its hash and a short hint (the first group)
are kept. The server's ``admin_create_code``, ``register`` and the ``messenger-admin``
tool all make and hash codes with the two functions here, so a code made anywhere is
accepted everywhere.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

# (id, hint, created by, created, used by, used)
CodeRow = tuple[int, str, str, float, str | None, float | None]

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: easy to read aloud


def new_code() -> str:
    """16 characters in four dash-separated groups (80 random bits)."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(16))
    return "-".join(raw[i:i + 4] for i in range(0, 16, 4))


def hash_code(code: str) -> str:
    """The stored form of a code; codes compare without regard to case, dashes or spaces."""
    normal = code.upper().replace("-", "").replace(" ", "")
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


def hint(code: str) -> str:
    """What is kept in clear to tell codes apart: the first group."""
    return code[:4] + "-…"


def create_txn(txn: Any, code_hash: str, hint: str, created_by: str, now: float) -> int:
    txn.execute("INSERT INTO premium_codes (code_hash, hint, created_by, created)"
                " VALUES (?, ?, ?, ?) RETURNING id", (code_hash, hint, created_by, now))
    return txn.fetchone()[0]


def list_txn(txn: Any, offset: int, limit: int) -> list[CodeRow]:
    """Newest first."""
    txn.execute("SELECT id, hint, created_by, created, used_by, used FROM premium_codes"
                " ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset))
    return [tuple(row) for row in txn.fetchall()]
