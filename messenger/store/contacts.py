"""Contact lists: who has whom (one direction; presence flows to those who have you)."""

from __future__ import annotations

from typing import Any

from messenger.store.errors import Duplicate, Missing


def list_txn(txn: Any, owner_id: int) -> list[tuple[int, str]]:
    """(user id, account name) of the owner's contacts, by name."""
    txn.execute("SELECT u.id, u.name FROM contacts c JOIN users u ON u.id = c.contact_id"
                " WHERE c.owner_id = ? ORDER BY u.name_lower", (owner_id,))
    return [(row[0], row[1]) for row in txn.fetchall()]


def list_page_txn(txn: Any, owner_id: int, after_name_lower: str,
                  limit: int) -> list[tuple[int, str]]:
    """One page of the owner's contacts by name: (user id, account name) of those whose
    lower-case name sorts after ``after_name_lower`` ("" for the first page).

    Keyset paging (the next page starts after the last name shown), so a page never
    repeats or skips a contact when others are added or removed meanwhile. The contacts
    of one owner come from the primary key (owner_id, contact_id) and are sorted by name:
    the cost grows with the owner's contact count, which `count_txn` lets the server cap.
    """
    txn.execute("SELECT u.id, u.name FROM contacts c JOIN users u ON u.id = c.contact_id"
                " WHERE c.owner_id = ? AND u.name_lower > ? ORDER BY u.name_lower LIMIT ?",
                (owner_id, after_name_lower, limit))
    return [(row[0], row[1]) for row in txn.fetchall()]


def count_txn(txn: Any, owner_id: int) -> int:
    """How many contacts the owner has (for a per-user cap)."""
    txn.execute("SELECT COUNT(*) FROM contacts WHERE owner_id = ?", (owner_id,))
    return txn.fetchone()[0]


def add_txn(txn: Any, owner_id: int, contact_id: int, now: float) -> None:
    """Add a contact; `Duplicate` if it is there already, `Missing` if either user is gone."""
    txn.execute("SELECT 1 FROM contacts WHERE owner_id = ? AND contact_id = ?",
                (owner_id, contact_id))
    if txn.fetchone():
        raise Duplicate("contact")
    txn.execute("INSERT INTO contacts (owner_id, contact_id, added)"
                " SELECT ?, id, ? FROM users WHERE id = ? AND EXISTS"
                " (SELECT 1 FROM users WHERE id = ?)", (owner_id, now, contact_id, owner_id))
    if txn.rowcount != 1:
        raise Missing(str(contact_id))


def delete_txn(txn: Any, owner_id: int, contact_id: int) -> bool:
    txn.execute("DELETE FROM contacts WHERE owner_id = ? AND contact_id = ?",
                (owner_id, contact_id))
    return txn.rowcount == 1


def watchers_txn(txn: Any, user_id: int) -> list[int]:
    """Ids of the users who have ``user_id`` as a contact."""
    txn.execute("SELECT owner_id FROM contacts WHERE contact_id = ?", (user_id,))
    return [row[0] for row in txn.fetchall()]


def is_contact_txn(txn: Any, owner_id: int, contact_id: int) -> bool:
    txn.execute("SELECT 1 FROM contacts WHERE owner_id = ? AND contact_id = ?",
                (owner_id, contact_id))
    return txn.fetchone() is not None
