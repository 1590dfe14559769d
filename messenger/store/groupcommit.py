"""Group commit: many writers' rows in one transaction, one transaction in flight.

Committing each message on its own would cap throughput at the rate of commits. Instead,
rows queue here while the previous transaction runs; when it finishes, everything that
queued meanwhile goes into the next one. Under light load a batch is one row and adds no
delay; under heavy load batches grow by themselves.

Each row comes with a token; once its batch has committed, ``on_result(item, token,
result)`` is called on the reactor thread with that row's result or, if the whole
transaction failed, with the exception. One callback for all rows, not a closure per
row: the message path submits tens of thousands of rows a second, and every object kept
alive until its batch commits feeds the garbage collector. The default ``on_result``
(`settle_token`) calls ``token.settle(result)``: the message path's tokens are small
objects that push and answer without a Deferred; `fire_token` takes the token to be a
Deferred and fires it with the row's result (or fails it with the exception).

``on_batch(rows, seconds)``, when given, hears of every committed batch: its size and how
long its transaction took (monotonic clock), for the server's metrics. Once per batch,
never per row.

``settling``, when given, is a context manager held around each batch's callbacks: the
server's `messenger.server.directwrite.CORK`, so that a batch's pushes and answers leave
as one ``send`` per connection.

``window`` (seconds, with ``clock``): a collection window for light load. A transaction
starts once the oldest queued row has waited the window (or a full batch has queued),
and takes every row that arrived meanwhile; no row waits longer than the window for
company. At 2,000 messages a second arriving one at a time, every transaction would
otherwise carry one or two messages and pay its own commit, WAL sync and two thread
hand-offs (docs/BENCHMARKS.md, sitting S). Under load nothing waits: rows queued
while a transaction ran have waited longer than the window by the time it commits. A
window of 0 starts at once, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Generic, TypeVar

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from messenger.store.db import Database
from messenger.store.errors import Unavailable

Item = TypeVar("Item")
Result = TypeVar("Result")
OnResult = Callable[[Any, Any, Any], None]


def settle_token(item: Any, token: Any, result: Any) -> None:
    """The default ``on_result``: ``token.settle(result)`` (result or exception)."""
    token.settle(result)


def fire_token(item: Any, token: defer.Deferred[Any], result: Any) -> None:
    """The default ``on_result``: the token is a Deferred for the row's result."""
    if isinstance(result, BaseException):
        token.errback(result)
    else:
        token.callback(result)


class GroupCommit(Generic[Item, Result]):
    log = Logger()

    def __init__(self, db: Database,
                 batch_txn: Callable[[Any, list[Item]], list[Result]],
                 on_result: OnResult = settle_token, max_batch: int = 2000,
                 on_batch: Callable[[int, float], None] | None = None,
                 settling: AbstractContextManager[Any] | None = None,
                 window: float = 0.0, clock: IReactorTime | None = None) -> None:
        self._db = db
        self._window = window if clock is not None else 0.0
        self._clock = clock
        self._oldest = 0.0                  # when the oldest queued row came
        self._timer: IDelayedCall | None = None
        self._settling = settling if settling is not None else nullcontext()
        self._batch_txn = batch_txn
        self._on_result = on_result
        self._max_batch = max_batch
        self._items: list[Item] = []
        self._tokens: list[Any] = []
        self._busy = False
        self._started = 0.0
        self.on_batch = on_batch
        self._idle_waiters: list[defer.Deferred[None]] = []
        self.batches = 0
        self.rows = 0

    def submit(self, item: Item, token: Any) -> None:
        """Queue one row; ``on_result(item, token, result)`` follows its commit."""
        self._items.append(item)
        self._tokens.append(token)
        if self._window and len(self._items) == 1:
            self._oldest = self._clock.seconds()  # type: ignore[union-attr]
        if not self._busy:
            self._next()

    def _next(self) -> None:
        """Start the next transaction now, or when the oldest queued row has waited the
        window (a full batch never waits)."""
        if not self._window or len(self._items) >= self._max_batch:
            self._start()
            return
        wait = self._oldest + self._window - self._clock.seconds()  # type: ignore[union-attr]
        if wait <= 0:
            self._start()
        elif self._timer is None:
            self._timer = self._clock.callLater(wait, self._window_over)  # type: ignore[union-attr]

    def _window_over(self) -> None:
        self._timer = None
        if not self._busy and self._items:
            self._start()

    def _close_window(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def pending(self) -> int:
        """Rows queued and not yet handed to the database."""
        return len(self._items)

    def _start(self) -> None:
        if self._timer is not None:
            self._close_window()
        self._busy = True
        size = self._max_batch
        items, tokens = self._items[:size], self._tokens[:size]
        del self._items[:size]
        del self._tokens[:size]
        if self._items and self._window:   # the rest queued behind a full batch
            self._oldest = self._clock.seconds()  # type: ignore[union-attr]
        self.batches += 1
        self.rows += len(items)
        self._started = time.perf_counter()
        d = self._db.write(self._batch_txn, items)
        d.addCallbacks(self._committed, self._failed, callbackArgs=(items, tokens),
                       errbackArgs=(items, tokens))

    def _committed(self, results: list[Result], items: list[Item], tokens: list[Any]) -> None:
        # The next batch goes to the database thread first, so that it is written while
        # this one's callbacks (replies, pushes) run here; its results cannot arrive
        # before these callbacks are done, so callbacks still run in submission order.
        if self.on_batch is not None:
            self.on_batch(len(items), time.perf_counter() - self._started)
        self._busy = False
        if self._items:
            self._next()
        if len(results) != len(items):
            error = RuntimeError(f"batch of {len(items)} rows gave {len(results)} results")
            self.log.error("Group commit: {error}", error=error)
            results = [error] * len(items)  # type: ignore[list-item]
        on_result = self._on_result
        with self._settling:
            for item, token, result in zip(items, tokens, results, strict=True):
                try:
                    on_result(item, token, result)
                except Exception:
                    self.log.failure("Group commit callback failed")
        self._maybe_idle()

    def _failed(self, failure: Failure, items: list[Item], tokens: list[Any]) -> None:
        if not failure.check(Unavailable):  # an outage is logged once, by the Database
            self.log.failure("Group commit of {rows} rows failed", failure, rows=len(items))
        self._busy = False
        if self._items:
            self._next()
        error = failure.value
        with self._settling:
            for item, token in zip(items, tokens, strict=True):
                try:
                    self._on_result(item, token, error)
                except Exception:
                    self.log.failure("Group commit callback failed")
        self._maybe_idle()

    def _maybe_idle(self) -> None:
        if self._busy or self._items or not self._idle_waiters:
            return
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def flush(self) -> defer.Deferred[None]:
        """Fires when every queued row has been written (or failed) and its callback run."""
        if not self._busy and not self._items:
            return defer.succeed(None)
        if self._timer is not None:      # nobody waits for company now
            self._close_window()
            self._start()
        waiter: defer.Deferred[None] = defer.Deferred()
        self._idle_waiters.append(waiter)
        return waiter
