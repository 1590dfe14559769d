"""Log an event that can repeat at will once per interval, with a count of the repeats.

A refused connection, a replayed request id or a dropped mail is worth one log line; ten
thousand of them a minute from one attacker are worth one line too, not ten thousand
(issue 23: 12 MB of log in 20 s from one address). `ThrottledLogger` wraps a
`twisted.logger.Logger`:

* the first event of a *key* is logged at once, as it is;
* further events of that key within ``interval`` seconds are only counted;
* when the interval ends with a count, one line is logged: the last event's text
  followed by ``(N more like this in the last S s)``; the event carries the count in
  ``throttled_count`` (and the interval in ``throttled_seconds``) for log shippers. A
  new interval starts then, so a steady flood costs exactly one line per interval;
* an interval that ends without repeats forgets the key: the next event is logged at
  once again.

Keys name a *kind* of event ("connection refused: too many"), not a peer: memory is one
small record and at most one timer per key seen within the last interval, so a key
made from an attacker's address would let the attacker grow it. Put the address in the
fields instead; the summary shows the last one.

Time comes from an injected clock (`IReactorTime`); tests drive a `task.Clock`.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel

DEFAULT_INTERVAL = 60.0
SUMMARY_SUFFIX = " ({throttled_count} more like this in the last {throttled_seconds:.0f} s)"


class _Window:
    """The current interval of one key: what to repeat and how often it was held back."""

    __slots__ = ("level", "format", "fields", "count", "timer")

    def __init__(self, level: LogLevel, format: str, fields: dict[str, Any],
                 timer: IDelayedCall) -> None:
        self.level = level
        self.format = format
        self.fields = fields
        self.count = 0
        self.timer = timer


class ThrottledLogger:
    """At most one line per key per interval (see the module docstring).

        refusals = ThrottledLogger(log, reactor)
        refusals.warn("too-many-connections", "Refused a connection from {address}:"
                      " too many", address=address)
    """

    def __init__(self, log: Logger, clock: IReactorTime,
                 interval: float = DEFAULT_INTERVAL) -> None:
        if not interval > 0:
            raise ValueError("interval must be positive")
        self.log = log
        self.interval = interval
        self._clock = clock
        self._windows: dict[Hashable, _Window] = {}

    def emit(self, level: LogLevel, key: Hashable, format: str, **fields: Any) -> bool:
        """Log (or count) one event of ``key``; True when it was logged now."""
        window = self._windows.get(key)
        if window is not None:
            window.count += 1
            window.level, window.format, window.fields = level, format, fields
            return False
        timer = self._clock.callLater(self.interval, self._close, key)
        self._windows[key] = _Window(level, format, fields, timer)
        self.log.emit(level, format, **fields)
        return True

    def debug(self, key: Hashable, format: str, **fields: Any) -> bool:
        return self.emit(LogLevel.debug, key, format, **fields)

    def info(self, key: Hashable, format: str, **fields: Any) -> bool:
        return self.emit(LogLevel.info, key, format, **fields)

    def warn(self, key: Hashable, format: str, **fields: Any) -> bool:
        return self.emit(LogLevel.warn, key, format, **fields)

    def error(self, key: Hashable, format: str, **fields: Any) -> bool:
        return self.emit(LogLevel.error, key, format, **fields)

    def held_back(self, key: Hashable) -> int:
        """Events of ``key`` counted but not yet logged in the current interval."""
        window = self._windows.get(key)
        return window.count if window is not None else 0

    def _close(self, key: Hashable) -> None:
        window = self._windows.pop(key)
        if window.count:
            self._summarise(window)
            # A flood that goes on gets its next line at the end of the next interval.
            window.count = 0
            window.timer = self._clock.callLater(self.interval, self._close, key)
            self._windows[key] = window

    def _summarise(self, window: _Window) -> None:
        self.log.emit(window.level, window.format + SUMMARY_SUFFIX, **window.fields,
                      throttled_count=window.count, throttled_seconds=self.interval)

    def flush(self) -> None:
        """Log every pending count now and forget all keys (at shutdown)."""
        windows, self._windows = self._windows, {}
        for window in windows.values():
            if window.timer.active():
                window.timer.cancel()
            if window.count:
                self._summarise(window)
