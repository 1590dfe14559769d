"""Account names to ids, cached: the message path resolves a recipient without a query.

Entries are added on a miss (one read), on registration and on login, and dropped when
an account is deleted. A stale entry cannot misdeliver: the message insert checks that
both users still exist in its own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from messenger.store import users
from messenger.store.db import Database
from messenger.wire.errors import NotFound


@dataclass(frozen=True, slots=True)
class UserRef:
    id: int
    name: str


class Directory:
    def __init__(self, db: Database, max_entries: int = 100_000) -> None:
        self._db = db
        self._max = max_entries
        self._by_name: dict[str, UserRef] = {}
        self._reading: dict[str, list[defer.Deferred[UserRef | None]]] = {}

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
        """The user of that name (any case), from the cache or one read.

        Lookups of one name while its read is in flight share that read and fire in the
        order they were asked, so messages to a new recipient keep their send order.
        """
        key = name.lower()
        ref = self._by_name.get(key)
        if ref is not None:
            return defer.succeed(ref)
        waiter: defer.Deferred[UserRef | None] = defer.Deferred()
        waiting = self._reading.get(key)
        if waiting is not None:
            waiting.append(waiter)
            return waiter
        self._reading[key] = [waiter]
        d = self._db.read(users.get_by_name_txn, name)
        d.addBoth(self._read_done, key)
        return waiter

    def require(self, name: str) -> defer.Deferred[UserRef]:
        """`lookup`, failing with the 404 every action gives for an unknown name."""
        return self.lookup(name).addCallback(_existing, name)

    def _read_done(self, result: Any, key: str) -> None:
        waiters = self._reading.pop(key, [])
        if isinstance(result, Failure):
            for waiter in waiters:
                waiter.errback(result)
            return
        ref = self.remember(result.id, result.name) if result is not None else None
        for waiter in waiters:
            waiter.callback(ref)


def no_such_user(name: str) -> NotFound:
    """The 404 for a name that belongs to no account."""
    return NotFound(f"no user named '{name}'")


def _existing(ref: UserRef | None, name: str) -> UserRef:
    if ref is None:
        raise no_such_user(name)
    return ref
