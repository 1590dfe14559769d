"""A cap on the database work waiting for a thread, so that overload answers at once.

adbapi hands every interaction to a thread pool whose queue has no end: when requests
arrive faster than the database answers (an attacker pipelining expensive pages, or a
slow disk), they wait behind each other for as long as it takes, and every user's login
waits behind them. `BoundedDatabase` counts the reads and writes not yet finished and
refuses more than ``max_waiting`` of each with `ServiceUnavailable` (JIM 503) at once:
nothing was done, and the client may retry after ``retry_after`` seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import defer

from messenger.store.db import Database
from messenger.wire.errors import ServiceUnavailable

T = TypeVar("T")
RETRY_AFTER = 2.0


class BoundedDatabase:
    """`Database.read` and `Database.write` with a cap on how many may wait."""

    def __init__(self, db: Database, max_waiting: int) -> None:
        self.db = db
        self.max_waiting = max_waiting
        self.reads = 0
        self.writes = 0
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)

    def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> defer.Deferred[T]:
        if self.max_waiting and self.reads >= self.max_waiting:
            return self._refuse()
        self.reads += 1
        return self.db.read(fn, *args, **kwargs).addBoth(self._read_done)

    def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> defer.Deferred[T]:
        if self.max_waiting and self.writes >= self.max_waiting:
            return self._refuse()
        self.writes += 1
        return self.db.write(fn, *args, **kwargs).addBoth(self._write_done)

    def _refuse(self) -> defer.Deferred[Any]:
        self.refused += 1
        return defer.fail(ServiceUnavailable("the server is busy; try again shortly",
                                             RETRY_AFTER))

    def _read_done(self, result: Any) -> Any:
        self.reads -= 1
        return result

    def _write_done(self, result: Any) -> Any:
        self.writes -= 1
        return result
