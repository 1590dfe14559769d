"""Housekeeping on a timer: expired resume tokens and, when configured, old messages.

Once an hour (and once shortly after start) the server deletes resume tokens past their
expiry and, with ``--retention-days``, the messages and broadcasts older than that. Old
rows go in batches of `BATCH`, each its own short write transaction, so the message path
never waits long behind a purge; a purge that finds a full batch goes on at once with the
next one until none is left.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

from messenger.store import broadcasts, messages, tokens

INTERVAL = 3600.0
FIRST_RUN = 60.0
BATCH = 5000
DAY = 24 * 3600.0


class Maintenance:
    log = Logger()

    def __init__(self, db: Any, clock: Any, retention_days: float = 0.0) -> None:
        self._db = db
        self._clock = clock
        self._retention = retention_days * DAY
        self._loop: task.LoopingCall | None = None
        self._first: Any = None
        self.running: defer.Deferred[None] | None = None

    def start(self) -> None:
        self._loop = task.LoopingCall(self.run)
        self._loop.clock = self._clock
        self._first = self._clock.callLater(FIRST_RUN, self._begin)

    def _begin(self) -> None:
        self._first = None
        assert self._loop is not None
        self._loop.start(INTERVAL, now=True)

    def stop(self) -> None:
        if self._first is not None and self._first.active():
            self._first.cancel()
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def run(self) -> defer.Deferred[None]:
        """One round; never fails (a failure is logged and the next round tries again)."""
        if self.running is None:
            self.running = self._round()
            self.running.addErrback(lambda f: self.log.failure("Housekeeping failed", f))
            self.running.addBoth(self._done)
        return self.running

    def _done(self, result: Any) -> None:
        self.running = None

    @defer.inlineCallbacks
    def _round(self) -> Any:
        now = self._clock.seconds()
        purged = yield self._db.write(tokens.purge_expired_txn, now)
        if purged:
            self.log.info("Deleted {count} expired resume token(s)", count=purged)
        if self._retention > 0:
            cutoff = now - self._retention
            for table, purge in (("message", messages.purge_older_than_txn),
                                 ("broadcast", broadcasts.purge_older_than_txn)):
                total = 0
                while True:
                    count = yield self._db.write(purge, cutoff, BATCH)
                    total += count
                    if count < BATCH:
                        break
                if total:
                    self.log.info("Deleted {count} {table}(s) older than the retention"
                                  " period", count=total, table=table)
