"""Unit tests of messenger.store.bounded: reads and writes past the cap are refused with
503 at once, and the counts follow the work as it finishes (a stand-in database whose
Deferreds the test fires)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from messenger.store.bounded import RETRY_AFTER, BoundedDatabase
from messenger.wire.errors import ServiceUnavailable


class HeldDatabase:
    """A Database whose reads and writes wait until the test fires them."""

    def __init__(self) -> None:
        self.reads: list[defer.Deferred[Any]] = []
        self.writes: list[defer.Deferred[Any]] = []
        self.path = "held.sqlite"

    def read(self, fn: Any, *args: Any, **kwargs: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self.reads.append(d)
        return d

    def write(self, fn: Any, *args: Any, **kwargs: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self.writes.append(d)
        return d


def txn(cursor: Any) -> None:
    return None


class BoundedDatabaseTests(unittest.TestCase):

    def setUp(self) -> None:
        self.held = HeldDatabase()
        self.db = BoundedDatabase(self.held, max_waiting=2)  # type: ignore[arg-type]

    def test_reads_past_the_cap_are_refused_at_once(self) -> None:
        """Two reads wait; the third is a 503 with retry_after without touching the
        database; once one finishes there is room again."""
        first, second = self.db.read(txn), self.db.read(txn)
        refused = self.db.read(txn)
        error = self.failureResultOf(refused, ServiceUnavailable).value
        self.assertEqual((error.code, error.retry_after), (503, RETRY_AFTER))
        self.assertEqual((len(self.held.reads), self.db.reads, self.db.refused), (2, 2, 1))
        self.held.reads[0].callback("row")
        self.assertEqual(self.successResultOf(first), "row")
        self.assertEqual(self.db.reads, 1)
        self.assertNoResult(self.db.read(txn))
        self.assertNoResult(second)

    def test_writes_are_counted_apart_from_reads(self) -> None:
        """Writes have their own cap: full reads do not refuse a write."""
        self.db.read(txn)
        self.db.read(txn)
        self.assertNoResult(self.db.write(txn))
        self.assertNoResult(self.db.write(txn))
        self.failureResultOf(self.db.write(txn), ServiceUnavailable)
        self.assertEqual((self.db.writes, self.db.refused), (2, 1))

    def test_a_failure_frees_its_place_and_is_passed_on(self) -> None:
        """A read or write that fails frees its place; the failure reaches the caller."""
        read, write = self.db.read(txn), self.db.write(txn)
        self.held.reads[0].errback(ValueError("read failed"))
        self.held.writes[0].errback(ValueError("write failed"))
        self.failureResultOf(read, ValueError)
        self.failureResultOf(write, ValueError)
        self.assertEqual((self.db.reads, self.db.writes), (0, 0))

    def test_zero_means_no_cap(self) -> None:
        db = BoundedDatabase(self.held, max_waiting=0)  # type: ignore[arg-type]
        for _ in range(10):
            db.read(txn)
            db.write(txn)
        self.assertEqual((db.reads, db.writes, db.refused), (10, 10, 0))

    def test_other_attributes_come_from_the_database(self) -> None:
        """Everything else (path, close, ...) is the wrapped database's."""
        self.assertEqual(self.db.path, "held.sqlite")
