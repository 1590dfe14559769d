"""When the search index is written: in the background, shortly after messages commit.

The store indexes stored messages for search in batches of their own
(`messenger.store.searchindex`, SQLite only), because indexing each message inside the
transaction that stores it halved the server's throughput (issue 17). This decides
when: a committed batch of messages `nudge`s the indexer, which runs one pass
`INTERVAL` seconds later, so that under load one pass, one FTS5 transaction, takes in
the thousands of messages stored meanwhile; a pass that finds a full `BATCH` goes on at
once with the next, so the index never falls further behind. With no traffic nothing
runs at all. On start a first pass takes in what was stored before a restart.

Passes run through the database's writer, like every write, never on the reactor; they
are not bounded like requests (`messenger.store.bounded`): they are the server's own
work, one at a time. Nobody waits for them: a search matches the messages not indexed
yet itself (`messenger.store.search`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from messenger.store import searchindex
from messenger.store.db import Database
from messenger.store.errors import Unavailable

# Seconds from the first commit after a pass to the next pass: under load, the traffic
# of this long goes into one index transaction; a search meanwhile matches it itself.
INTERVAL = 0.5
BATCH = searchindex.BATCH

OnBatch = Callable[[int, float], None]


class SearchIndexer:
    """Runs `searchindex.index_pending_txn` after commits, one pass at a time."""

    log = Logger()

    def __init__(self, db: Database, clock: Any, interval: float = INTERVAL,
                 batch: int = BATCH) -> None:
        self._db = db
        self._clock = clock
        self.interval = interval
        self.batch = batch
        # Only engines that index in batches need passes (PostgreSQL indexes each
        # message as it is stored: see `messenger.store.searchindex`).
        self.enabled = not getattr(db, "postgres", False)
        self._next: Any = None                  # the scheduled pass (an IDelayedCall)
        self._running: defer.Deferred[Any] | None = None
        self._again: float | None = None        # the next pass's delay, asked for
                                                # while one ran (None: not asked)
        self._stopped = True
        self._idle_waiters: list[defer.Deferred[None]] = []
        self._pass_waiters: list[defer.Deferred[int]] = []
        self.passes = 0
        self.indexed = 0
        # Messages stored but not indexed yet (the metrics' gauge): what a pass left, plus
        # the rows committed since. Rows whose commit is reported while a pass runs are
        # counted as waiting even if the pass took them in; the next pass sets it right.
        # Before the first pass after a start it does not know what an earlier run left.
        self.waiting = 0

    def start(self) -> None:
        """Begin; the first pass runs at once (messages stored before a restart)."""
        if not self.enabled:
            return
        self._stopped = False
        self._schedule(0)

    def stop(self) -> defer.Deferred[None]:
        """No more passes; fires when the one running, if any, has finished."""
        self._stopped = True
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None
        if self._running is None:
            self._maybe_idle()
            return defer.succeed(None)
        done: defer.Deferred[None] = defer.Deferred()
        self._running.addBoth(lambda result: (done.callback(None), result)[1])
        return done

    def nudge(self, rows: int = 0) -> None:
        """``rows`` messages were committed: index them within `interval` seconds."""
        if self._stopped:
            return
        self.waiting += rows
        if self._running is not None:
            if self._again is None:
                self._again = self.interval
        elif self._next is None:
            self._schedule(self.interval)

    def after_batch(self, on_batch: OnBatch | None) -> OnBatch | None:
        """An ``on_batch`` for a message group commit (`messenger.store.groupcommit`)
        that nudges the indexer, then calls ``on_batch`` (the metrics' count)."""
        if not self.enabled:
            return on_batch
        nudge = self.nudge
        if on_batch is None:
            return lambda rows, seconds: nudge(rows)

        def committed(rows: int, seconds: float) -> None:
            nudge(rows)
            on_batch(rows, seconds)
        return committed

    def index_now(self) -> defer.Deferred[None]:
        """Run a pass now instead of when it is due (tests, operators); fires once no
        pass is running or scheduled."""
        if not self._stopped:
            if self._running is not None:
                self._again = 0
            else:
                if self._next is not None and self._next.active():
                    self._next.cancel()
                self._schedule(0)
        return self.idle()

    def when_passed(self) -> defer.Deferred[int]:
        """Fires after the next pass with how many messages it indexed (0 for a pass
        that failed)."""
        waiter: defer.Deferred[int] = defer.Deferred()
        self._pass_waiters.append(waiter)
        return waiter

    def idle(self) -> defer.Deferred[None]:
        """Fires once no pass is running or scheduled (everything nudged is indexed)."""
        if self._running is None and self._next is None:
            return defer.succeed(None)
        waiter: defer.Deferred[None] = defer.Deferred()
        self._idle_waiters.append(waiter)
        return waiter

    def _schedule(self, delay: float) -> None:
        self._next = self._clock.callLater(delay, self._run)

    def _run(self) -> None:
        self._next = None
        self._again = None
        self._running = self._db.write(searchindex.index_pass_txn, self.batch)
        self._running.addCallbacks(self._done, self._failed, callbackArgs=(self.waiting,))

    def _done(self, result: tuple[int, int], waiting_before: int) -> None:
        count, left = result
        self._running = None
        self.passes += 1
        self.indexed += count
        # Rows committed while the pass ran (nudges since it began) wait still.
        self.waiting = left + max(0, self.waiting - waiting_before)
        if not self._stopped:
            if count >= self.batch:
                self._schedule(0)           # more are waiting now: no pause
            elif self._again is not None:
                self._schedule(self._again)
        self._passed(count)

    def _failed(self, failure: Any) -> None:
        self._running = None
        if not failure.check(Unavailable):  # an outage is logged once, by the Database
            self.log.failure("Indexing messages for search failed", failure)
        if not self._stopped:
            self._schedule(self.interval)   # try again; searches match them meanwhile
        self._passed(0)

    def _passed(self, count: int) -> None:
        waiters, self._pass_waiters = self._pass_waiters, []
        for waiter in waiters:
            waiter.callback(count)
        self._maybe_idle()

    def _maybe_idle(self) -> None:
        if self._running is not None or self._next is not None or not self._idle_waiters:
            return
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            waiter.callback(None)
