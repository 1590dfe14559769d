"""ThrottledLogger: one line per interval with a count, driven by a task.Clock."""

from __future__ import annotations

from typing import Any

from twisted.internet import task
from twisted.logger import Logger, LogLevel, formatEvent
from twisted.trial import unittest

from messenger.server.logs.throttle import ThrottledLogger


class _Capture:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def lines(self) -> list[str]:
        return [formatEvent(event) for event in self.events]


def _make(interval: float = 60.0) -> tuple[ThrottledLogger, task.Clock, _Capture]:
    capture = _Capture()
    clock = task.Clock()
    return ThrottledLogger(Logger(observer=capture), clock, interval), clock, capture


class ThrottledLoggerTests(unittest.TestCase):
    def test_first_event_logged_at_once(self) -> None:
        """The first event of a key is logged immediately, unchanged."""
        throttled, _, capture = _make()
        self.assertTrue(throttled.warn("refused", "Refused {address}", address="10.0.0.1"))
        self.assertEqual(capture.lines(), ["Refused 10.0.0.1"])
        self.assertEqual(capture.events[0]["log_level"], LogLevel.warn)

    def test_repeats_counted_then_summarised_once(self) -> None:
        """Repeats within the interval make one summary line with their count."""
        throttled, clock, capture = _make(60.0)
        throttled.info("refused", "Refused {address}", address="a")
        for n in range(500):
            self.assertFalse(throttled.info("refused", "Refused {address}", address=f"b{n}"))
        self.assertEqual(len(capture.events), 1)
        self.assertEqual(throttled.held_back("refused"), 500)
        clock.advance(59.9)
        self.assertEqual(len(capture.events), 1)
        clock.advance(0.1)
        self.assertEqual(capture.lines()[1],
                         "Refused b499 (500 more like this in the last 60 s)")
        self.assertEqual(capture.events[1]["throttled_count"], 500)
        self.assertEqual(capture.events[1]["throttled_seconds"], 60.0)

    def test_steady_flood_costs_one_line_per_interval(self) -> None:
        """An event every second for ten minutes gives one line per minute, not 600."""
        throttled, clock, capture = _make(60.0)
        for _ in range(600):
            throttled.warn("flood", "Dropped a mail")
            clock.advance(1.0)
        clock.advance(120.0)
        # The first at once, then one summary per interval while it lasted.
        self.assertEqual(len(capture.events), 11)
        self.assertEqual(sum(event.get("throttled_count", 1) for event in capture.events),
                         600)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_quiet_interval_forgets_the_key(self) -> None:
        """After an interval without repeats the next event is logged at once again."""
        throttled, clock, capture = _make(10.0)
        throttled.info("k", "one")
        clock.advance(10.0)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertTrue(throttled.info("k", "two"))
        self.assertEqual(capture.lines(), ["one", "two"])

    def test_keys_are_independent(self) -> None:
        """Each key has its own interval and count."""
        throttled, clock, capture = _make(10.0)
        throttled.info("a", "a")
        throttled.info("b", "b")
        throttled.info("a", "a")
        clock.advance(10.0)
        self.assertEqual(capture.lines(), ["a", "b", "a (1 more like this in the last 10 s)"])

    def test_flush_logs_pending_counts(self) -> None:
        """flush() logs what is held back and cancels every timer (for shutdown)."""
        throttled, clock, capture = _make(60.0)
        throttled.info("a", "a")
        throttled.info("a", "a")
        throttled.info("b", "b")
        throttled.flush()
        self.assertEqual(capture.lines(), ["a", "b", "a (1 more like this in the last 60 s)"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_interval_must_be_positive(self) -> None:
        """A zero interval is refused."""
        self.assertRaises(ValueError, ThrottledLogger, Logger(), task.Clock(), 0)
