"""Typing notifications: relayed through the router, never stored.

"bob is typing..." is worth nothing a few seconds later, so the server keeps no state of
it and writes nothing: a ``typing`` request becomes one push to the other person, or to
the group's other members online, through the router (the one push path, so it crosses
nodes like any push). Clients send it at most every few seconds while the user types and
expire it themselves (docs/PROTOCOL.md, "Typing").

A group's members are needed to know who may send it and whom to tell. `GroupMembers`
keeps them in memory for `MEMBERS_TTL` seconds: the database is read at most once per
group in that time, however many members type; a member who left may go on hearing of
typing in that group until the entry expires (they never see a message there).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from messenger.store import groups

MEMBERS_TTL = 30.0
MAX_GROUPS = 10_000


class GroupMembers:
    """Group id -> the ids of its current members, read at most every `MEMBERS_TTL` s."""

    def __init__(self, db: Any, clock: Any, ttl: float = MEMBERS_TTL,
                 max_groups: int = MAX_GROUPS) -> None:
        self._db = db
        self._clock = clock
        self._ttl = ttl
        self._max = max_groups
        self._cache: dict[int, tuple[float, frozenset[int]]] = {}
        self._waiting: dict[int, list[defer.Deferred[frozenset[int]]]] = {}

    def members(self, group_id: int) -> defer.Deferred[frozenset[int]]:
        now = self._clock.seconds()
        cached = self._cache.get(group_id)
        if cached is not None and now - cached[0] < self._ttl:
            return defer.succeed(cached[1])
        waiter: defer.Deferred[frozenset[int]] = defer.Deferred()
        waiting = self._waiting.get(group_id)
        if waiting is not None:
            waiting.append(waiter)          # one read per group, however many ask
            return waiter
        self._waiting[group_id] = [waiter]
        d = self._db.read(groups.member_ids_txn, group_id)
        d.addBoth(self._loaded, group_id, now)
        return waiter

    def forget(self, group_id: int) -> None:
        """The group's members changed on this node (added, removed, left, deleted): the
        next typing reads them again, so a member removed a moment ago is refused and
        one added is heard at once. Other nodes of a cluster follow within the TTL."""
        self._cache.pop(group_id, None)

    def _loaded(self, result: Any, group_id: int, now: float) -> None:
        waiters = self._waiting.pop(group_id, [])
        if isinstance(result, Failure):
            for waiter in waiters:
                waiter.errback(result)
            return
        members = frozenset(result)
        if len(self._cache) >= self._max and group_id not in self._cache:
            self._cache.pop(next(iter(self._cache)))
        self._cache[group_id] = (now, members)
        for waiter in waiters:
            waiter.callback(members)
