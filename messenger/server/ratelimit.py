"""Leaky-bucket rate limits: one bucket per key, or one bucket held by a connection.

A bucket has a *level* that drains at ``rate`` units per second and may hold at most
``burst`` units. An action of cost ``c`` (1 by default) is allowed when the level, after
draining, plus ``c`` is at most ``burst``; allowing it adds ``c`` to the level. So a quiet
key may do ``burst`` actions at once and then ``rate`` actions per second for as long as it
likes. This is the shape of Synapse's ``Ratelimiter.can_do_action``:

* ``check(..., update=True)`` asks and, when allowed, consumes: the usual call, made
  *before* any side effect, so that a refusal (a 429) means nothing was done;
* ``check(..., update=False)`` only asks;
* ``record(...)`` consumes unconditionally, even past ``burst`` (counting something
  that already happened, e.g. a failed login, so that later checks wait longer).

Every check answers ``(allowed, retry_after)``: ``retry_after`` is 0.0 when allowed and
otherwise the seconds until the same action would be allowed. A refused check consumes
nothing, so a client that keeps retrying too early is refused for as long as it keeps
the bucket full, and never pushes its own wait further out.

Two shapes:

* `Bucket` is one bucket in a small ``__slots__`` object and takes ``now`` as an argument;
  a connection holds one and calls ``bucket.check(now)`` for every request (no dict
  lookup, no clock call of its own; about a microsecond).
* `RateLimiter` holds buckets keyed by anything hashable (a source address, an account
  name) and reads an injected clock. Buckets that have drained completely carry no
  information and are pruned, amortised: at most once per drain time, and whenever the
  number of buckets has doubled since the last pruning. Memory is therefore bounded by
  about twice the number of keys active within one drain time (``burst / rate`` seconds).

Pure logic: no I/O, no scheduling. Time is whatever the clock says; a clock that steps
backwards never refills a bucket.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from typing import Union

from twisted.internet.interfaces import IReactorTime

# Levels are compared with a little slack so that float rounding never refuses an action
# that is exactly on the boundary: timestamps from the reactor (~1.8e9 s) are only
# precise to about 0.24 us, so one microsecond's worth of drain is forgiven.
_EPSILON = 1e-9
_CLOCK_SLACK = 1e-6

# Below this many buckets pruning on size alone is not worth the scan.
_MIN_PRUNE_SIZE = 1024

Clock = Union[IReactorTime, Callable[[], float]]


def _now_function(clock: Clock) -> Callable[[], float]:
    """The zero-argument function that reads ``clock`` (IReactorTime or a callable)."""
    seconds = getattr(clock, "seconds", None)
    if callable(seconds):
        return seconds
    if callable(clock):
        return clock
    raise TypeError("clock must provide IReactorTime or be a callable returning seconds")


def _check_parameters(rate: float, burst: float) -> None:
    if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be a positive number of actions per second, not {rate!r}")
    if not (isinstance(burst, (int, float)) and math.isfinite(burst) and burst > 0):
        raise ValueError(f"burst must be a positive number of actions, not {burst!r}")


class Bucket:
    """One leaky bucket: ``rate`` units drain per second, at most ``burst`` are held.

    Cheap enough for every request of every connection: five slots, no allocation but
    the result tuple, and ``now`` passed in by the caller (read the reactor's clock once
    per frame and share it).
    """

    __slots__ = ("rate", "burst", "level", "last", "_limit")

    def __init__(self, rate: float, burst: float, level: float = 0.0,
                 last: float = 0.0) -> None:
        _check_parameters(rate, burst)
        self.rate = float(rate)
        self.burst = float(burst)
        self.level = float(level)   # units in the bucket at time `last`
        self.last = float(last)     # when `level` was last brought up to date
        self._limit = self.burst + _EPSILON + self.rate * _CLOCK_SLACK

    def check(self, now: float, cost: float = 1.0, update: bool = True) -> tuple[bool, float]:
        """May an action of ``cost`` happen at ``now``? Returns ``(allowed, retry_after)``.

        When allowed and ``update`` is true the cost is consumed. When refused nothing
        changes and ``retry_after`` is the number of seconds until the same action would
        be allowed. Raises ValueError for a cost larger than ``burst`` (never allowed).
        """
        elapsed = now - self.last
        if elapsed > 0.0:
            level = self.level - elapsed * self.rate
            if level < 0.0:
                level = 0.0
        else:                       # the same instant, or a clock that stepped back
            level = self.level
            now = self.last
        wanted = level + cost
        if wanted > self._limit:
            if cost > self.burst:
                raise ValueError(f"cost {cost} exceeds the burst of {self.burst}")
            return False, (wanted - self.burst) / self.rate
        if update:
            self.level = wanted
            self.last = now
        return True, 0.0

    def record(self, now: float, cost: float = 1.0) -> None:
        """Add ``cost`` whatever the level, even past ``burst`` (something that happened)."""
        elapsed = now - self.last
        if elapsed > 0.0:
            level = self.level - elapsed * self.rate
            self.level = (level if level > 0.0 else 0.0) + cost
            self.last = now
        else:
            self.level += cost

    def empty_at(self) -> float:
        """The time at which this bucket will have drained completely."""
        return self.last + self.level / self.rate

    def __repr__(self) -> str:
        return (f"Bucket(rate={self.rate!r}, burst={self.burst!r}, level={self.level!r}, "
                f"last={self.last!r})")


class RateLimiter:
    """Leaky buckets keyed by anything hashable, all with the same ``rate`` and ``burst``.

    ``rate`` is in actions per second; ``clock`` is an ``IReactorTime`` provider (the
    reactor, a ``task.Clock``) or a callable returning the time in seconds.
    """

    def __init__(self, rate: float, burst: float, clock: Clock) -> None:
        _check_parameters(rate, burst)
        self.rate = float(rate)
        self.burst = float(burst)
        self._now = _now_function(clock)
        self._buckets: dict[Hashable, Bucket] = {}
        # Pruning happens when the dict reaches _prune_size or the clock passes _prune_at.
        self._drain_time = self.burst / self.rate
        self._prune_size = _MIN_PRUNE_SIZE
        self._prune_at = self._now() + self._drain_time

    @classmethod
    def per_minute(cls, count: float, clock: Clock) -> RateLimiter:
        """``count`` actions per minute: a burst of ``count``, refilled at ``count`` / 60 s."""
        return cls(rate=count / 60.0, burst=count, clock=clock)

    def check(self, key: Hashable, cost: float = 1.0, *,
              update: bool = True) -> tuple[bool, float]:
        """May ``key`` act now? Returns ``(allowed, retry_after)``; see `Bucket.check`.

        An unknown key starts with an empty bucket. Asking with ``update=False`` never
        creates a bucket, so lookups alone cost no memory.
        """
        now = self._now()
        if now >= self._prune_at:
            self.prune(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            if cost > self.burst:
                raise ValueError(f"cost {cost} exceeds the burst of {self.burst}")
            if update:
                self._insert(key, Bucket(self.rate, self.burst, cost, now), now)
            return True, 0.0
        return bucket.check(now, cost, update)

    def record(self, key: Hashable, cost: float = 1.0) -> None:
        """Consume ``cost`` for ``key`` unconditionally, even past ``burst``."""
        now = self._now()
        if now >= self._prune_at:
            self.prune(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            self._insert(key, Bucket(self.rate, self.burst, cost, now), now)
        else:
            bucket.record(now, cost)

    def reset(self, key: Hashable) -> None:
        """Forget ``key``: its next action starts from an empty bucket."""
        self._buckets.pop(key, None)

    def prune(self, now: float | None = None) -> int:
        """Drop every bucket that has drained completely; returns how many were dropped."""
        if now is None:
            now = self._now()
        empty = [key for key, bucket in self._buckets.items() if bucket.empty_at() <= now]
        for key in empty:
            del self._buckets[key]
        self._prune_size = max(_MIN_PRUNE_SIZE, 2 * len(self._buckets))
        self._prune_at = now + self._drain_time
        return len(empty)

    def _insert(self, key: Hashable, bucket: Bucket, now: float) -> None:
        buckets = self._buckets
        if len(buckets) >= self._prune_size:
            self.prune(now)
        buckets[key] = bucket

    def __len__(self) -> int:
        """The number of buckets held (drained ones included until the next pruning)."""
        return len(self._buckets)
