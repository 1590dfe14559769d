"""Account names to ids, cached: the message path resolves a recipient without a query.

Entries are added on a miss (one read), on registration and on login, and dropped when
an account is deleted. A stale entry cannot misdeliver: the message insert checks that
both users still exist in its own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet import defer

from messenger.store import users
from messenger.store.db import Database


@dataclass(frozen=True, slots=True)
class UserRef:
    id: int
    name: str


class Directory:
    def __init__(self, db: Database, max_entries: int = 100_000) -> None:
        self._db = db
        self._max = max_entries
        self._by_name: dict[str, UserRef] = {}

    def cached(self, name: str) -> UserRef | None:
        return self._by_name.get(name.lower())

    def remember(self, user_id: int, name: str) -> UserRef:
        if len(self._by_name) >= self._max:
            self._by_name.pop(next(iter(self._by_name)))
        ref = self._by_name[name.lower()] = UserRef(user_id, name)
        return ref

    def forget(self, name: str) -> None:
        self._by_name.pop(name.lower(), None)

    def lookup(self, name: str) -> defer.Deferred[UserRef | None]:
        """The user of that name (any case), from the cache or one read."""
        ref = self._by_name.get(name.lower())
        if ref is not None:
            return defer.succeed(ref)
        d = self._db.read(users.get_by_name_txn, name)
        d.addCallback(lambda row: self.remember(row.id, row.name) if row else None)
        return d
