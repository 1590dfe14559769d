"""Unit tests of messenger.server.refusals: refusals logged once per interval with a
count, with a `task.Clock` and the log events captured (a flood over real sockets: the log
flood test in test_abuse.py)."""

from __future__ import annotations

from typing import Any

from twisted.internet import task
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from messenger.server.refusals import RefusalLog


class RefusalLogTests(unittest.TestCase):

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(1000)
        self.events: list[dict[str, Any]] = []
        observer = self.events.append
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.refusals = RefusalLog(self.clock, interval=60.0)

    def lines(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("log_namespace", "").endswith("RefusalLog")]

    def test_first_of_a_kind_per_host_is_logged_then_counted(self) -> None:
        """The first refusal of a kind from a host is logged at once; the rest of the
        interval is only counted, whatever their number."""
        for _ in range(1000):
            self.refusals.note("frame too large", "10.0.0.1")
        self.refusals.note("frame too large", "10.0.0.2")
        self.refusals.note("handshake failed", "10.0.0.1")
        self.assertEqual([(e["kind"], e["address"]) for e in self.lines()], [
            ("frame too large", "10.0.0.1"), ("frame too large", "10.0.0.2"),
            ("handshake failed", "10.0.0.1")])
        self.assertEqual(self.refusals.total, {"frame too large": 1001,
                                               "handshake failed": 1})

    def test_summary_once_per_interval(self) -> None:
        """After the interval, the next refusal first logs one summary line per kind
        with the count and how many hosts, then starts a new interval."""
        for n in range(50):
            self.refusals.note("too many connections", f"10.0.0.{n % 5}")
        self.clock.advance(60)
        self.refusals.note("too many connections", "10.0.0.1")
        summaries = [e for e in self.lines() if "count" in e]
        self.assertEqual(len(summaries), 1)
        self.assertEqual((summaries[0]["count"], summaries[0]["hosts"],
                          summaries[0]["seconds"]), (45, 5, 60.0))
        self.assertEqual(self.lines()[-1]["address"], "10.0.0.1")   # a new interval

    def test_summary_when_the_interval_ends_without_a_new_refusal(self) -> None:
        """flush_if_due (the sweep) logs the summary once the interval is over, even when
        the flood has stopped; before that it does nothing."""
        for _ in range(3):
            self.refusals.note("kind", "10.0.0.1")
        self.refusals.flush_if_due(self.clock.seconds() + 59)
        self.assertEqual(len(self.lines()), 1)
        self.refusals.flush_if_due(self.clock.seconds() + 60)
        self.assertEqual(self.lines()[-1]["count"], 2)

    def test_ipv6_hosts_are_their_64(self) -> None:
        """Addresses of one /64 are one host: logged once."""
        self.refusals.note("kind", "2001:db8::1")
        self.refusals.note("kind", "2001:db8::2")
        self.assertEqual(len(self.lines()), 1)

    def test_flush_with_nothing_counted_logs_nothing(self) -> None:
        self.refusals.flush()
        self.assertEqual(self.lines(), [])

    def test_flush_at_shutdown(self) -> None:
        """flush() without a time (at shutdown) logs the counts so far."""
        self.refusals.note("kind", "10.0.0.1")
        self.refusals.note("kind", "10.0.0.1")
        self.clock.advance(5)
        self.refusals.flush()
        summary = self.lines()[-1]
        self.assertEqual((summary["count"], summary["seconds"]), (1, 5.0))

    def test_memory_is_bounded(self) -> None:
        """At most 1,000 hosts are logged individually per interval and 100,000 counted
        per kind; beyond that, refusals are only counted."""
        for n in range(1200):
            self.refusals.note("kind", f"10.{n // 250}.{n % 250}.1")
        self.assertEqual(len(self.lines()), 1000)
        self.assertEqual(self.refusals._counts["kind"], 200)
        self.refusals._hosts["kind"] = set(range(100_000))
        self.refusals.note("kind", "10.200.0.1")
        self.assertEqual(len(self.refusals._hosts["kind"]), 100_000)
        self.assertEqual(self.refusals._counts["kind"], 201)
