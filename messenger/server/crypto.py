"""RSA work off the reactor thread: a small pool of threads shared fairly by connections.

Two kinds of work are too slow for the reactor thread: the RSA private-key operations of a
key exchange (the transcript signature) and the rsa-oaep suite's sealing and opening (one
RSA operation per chunk of about 200 bytes; a 1 MiB page is thousands). cryptography
releases the GIL around its RSA operations (since 47.0), so these jobs really run beside
the reactor.

Every connection gets a `Lane`. A lane runs one job at a time, in the order they were
submitted (frame counters and sealing order depend on it), and the pool serves the lanes
that have work round robin: a client that asks for huge pages in a loop waits behind its
own jobs, never in front of everyone else's. A lane that is closed (its connection went)
drops its queued jobs unrun. The pool's threads run at a lower priority than the reactor
thread (`messenger.server.background`), so sealing a flood of pages never takes the CPU
the reactor needs to serve everyone else.

`InlineCryptoPool` runs the same jobs at once on the calling thread: for unit tests on a
`StringTransport`, where there is no reactor to wait for.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import defer, threads
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from messenger.server.background import in_background

T = TypeVar("T")


class Lane:
    """One connection's queue of crypto jobs: in order, one at a time."""

    __slots__ = ("_pool", "_jobs", "busy", "closed")

    def __init__(self, pool: CryptoPool) -> None:
        self._pool = pool
        self._jobs: deque[tuple[Callable[..., Any], tuple[Any, ...], defer.Deferred[Any]]] = \
            deque()
        self.busy = False          # a job of this lane is in a thread now
        self.closed = False

    def submit(self, fn: Callable[..., T], *args: Any,
               urgent: bool = False) -> defer.Deferred[T]:
        """Run ``fn(*args)`` in the pool after this lane's earlier jobs; fires on the
        reactor thread with its result. After `close`, never fires. An ``urgent`` job of
        an idle lane (a key exchange: one signature) goes ahead of the lanes waiting,
        rather than behind every other connection's page."""
        d: defer.Deferred[T] = defer.Deferred()
        if self.closed:
            return d
        self._jobs.append((fn, args, d))
        if not self.busy and len(self._jobs) == 1:
            self._pool._ready(self, urgent)
        return d

    @property
    def queued(self) -> int:
        """Jobs waiting or running."""
        return len(self._jobs) + self.busy

    def close(self) -> None:
        """Drop every queued job (the connection is gone); a running one finishes unseen."""
        self.closed = True
        self._jobs.clear()

    def _next(self) -> tuple[Callable[..., Any], tuple[Any, ...], defer.Deferred[Any]]:
        self.busy = True
        return self._jobs.popleft()

    def _finished(self) -> bool:
        """The running job is done; True if the lane has more work."""
        self.busy = False
        return bool(self._jobs) and not self.closed


class CryptoPool:
    """A fixed number of threads serving lanes round robin."""

    def __init__(self, reactor: Any, threads_max: int = 2) -> None:
        self._reactor = reactor
        self._threads = ThreadPool(minthreads=0, maxthreads=threads_max, name="crypto")
        self._max = threads_max
        self._running = 0
        self._waiting: deque[Lane] = deque()
        self.jobs_done = 0

    def start(self) -> None:
        self._threads.start()

    def stop(self) -> None:
        self._waiting.clear()
        self._threads.stop()

    def lane(self) -> Lane:
        return Lane(self)

    @property
    def backlog(self) -> int:
        """Lanes waiting for a thread (for metrics and overload decisions)."""
        return len(self._waiting)

    def _ready(self, lane: Lane, urgent: bool = False) -> None:
        if urgent:
            self._waiting.appendleft(lane)
        else:
            self._waiting.append(lane)
        self._schedule()

    def _schedule(self) -> None:
        while self._running < self._max and self._waiting:
            lane = self._waiting.popleft()
            if lane.closed or not lane._jobs:
                continue
            fn, args, d = lane._next()
            self._running += 1
            done = threads.deferToThreadPool(self._reactor, self._threads, in_background,
                                             fn, *args)
            done.addBoth(self._done, lane, d)

    def _done(self, result: Any, lane: Lane, d: defer.Deferred[Any]) -> None:
        self._running -= 1
        self.jobs_done += 1
        if lane._finished():
            self._waiting.append(lane)
        self._schedule()
        if lane.closed:
            return  # nobody is waiting for it (a failure is dropped with it)
        if isinstance(result, Failure):
            d.errback(result)
        else:
            d.callback(result)


class InlineLane:
    """A lane that runs each job at once (see `InlineCryptoPool`)."""

    __slots__ = ("closed",)
    busy = False
    queued = 0

    def __init__(self) -> None:
        self.closed = False

    def submit(self, fn: Callable[..., T], *args: Any,
               urgent: bool = False) -> defer.Deferred[T]:
        if self.closed:
            return defer.Deferred()
        return defer.maybeDeferred(fn, *args)

    def close(self) -> None:
        self.closed = True


class InlineCryptoPool:
    """Runs every job synchronously: deterministic unit tests with test doubles."""

    backlog = 0
    jobs_done = 0

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def lane(self) -> InlineLane:
        return InlineLane()
