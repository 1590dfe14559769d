"""Housekeeping (messenger.server.maintenance) over a real SQLite database: expired resume
tokens go, messages and broadcasts older than the retention period go in batches, newer
ones and everything else stay; the rounds follow the clock."""

from __future__ import annotations

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from messenger.server import maintenance
from messenger.server.maintenance import DAY, Maintenance
from messenger.store import db, messages, tokens, users
from tests.support import services
from tests.support.services import OnPostgres

NOW = 1_800_000_000.0


def _seed_txn(txn: object) -> None:
    alice = users.create_txn(txn, "alice", "a@example.org", "h", NOW - 100 * DAY)
    bob = users.create_txn(txn, "bob", "b@example.org", "h", NOW - 100 * DAY)
    rows = [(alice.id, bob.id, f"{n:032x}", f"old {n}", NOW - 40 * DAY + n)
            for n in range(12)]
    rows += [(bob.id, alice.id, f"{n + 100:032x}", f"new {n}", NOW - 2 * DAY + n)
             for n in range(3)]
    messages.insert_batch_txn(txn, rows)
    for n, created in enumerate((NOW - 40 * DAY, NOW - 1 * DAY)):
        txn.execute("INSERT INTO broadcasts (sender_id, sender_name, client_id, body,"
                    " created) VALUES (?, ?, ?, ?, ?)", (alice.id, "alice", f"b{n}",
                                                         f"broadcast {n}", created))
    tokens.create_txn(txn, alice.id, "expired", NOW - 10 * DAY, NOW - 1)
    tokens.create_txn(txn, bob.id, "valid", NOW - 10 * DAY, NOW + DAY)


def _bodies_txn(txn: object) -> tuple[list[str], list[str], list[str]]:
    txn.execute("SELECT body FROM messages ORDER BY id")  # type: ignore[attr-defined]
    bodies = [row[0] for row in txn.fetchall()]  # type: ignore[attr-defined]
    txn.execute("SELECT body FROM broadcasts ORDER BY id")  # type: ignore[attr-defined]
    feed = [row[0] for row in txn.fetchall()]  # type: ignore[attr-defined]
    txn.execute("SELECT token_hash FROM resume_tokens")  # type: ignore[attr-defined]
    left = [row[0] for row in txn.fetchall()]  # type: ignore[attr-defined]
    return bodies, feed, left


class MaintenanceTests(unittest.TestCase):

    @defer.inlineCallbacks
    def setUp(self) -> object:
        location = yield services.database_for(self)
        self.database = db.Database(location, reactor=reactor)
        yield self.database.open()
        self.addCleanup(self.database.close)
        yield self.database.write(_seed_txn)
        self.clock = task.Clock()
        self.clock.advance(NOW)

    @defer.inlineCallbacks
    def test_retention_purges_old_rows_in_batches(self) -> object:
        """With a 30-day retention, the twelve old messages go in batches of five (three
        transactions), the old broadcast and the expired token go; newer rows stay."""
        self.patch(maintenance, "BATCH", 5)
        writes = []
        real_write = self.database.write

        def counting_write(fn: object, *args: object) -> defer.Deferred[object]:
            writes.append(getattr(fn, "__name__", "?"))
            return real_write(fn, *args)
        self.patch(self.database, "write", counting_write)
        yield Maintenance(self.database, self.clock, retention_days=30).run()
        bodies, feed, left = yield self.database.read(_bodies_txn)
        self.assertEqual(bodies, ["new 0", "new 1", "new 2"])
        self.assertEqual(feed, ["broadcast 1"])
        self.assertEqual(left, ["valid"])
        self.assertEqual(writes.count("purge_older_than_txn"), 3 + 1)

    @defer.inlineCallbacks
    def test_without_retention_only_tokens_go(self) -> object:
        """No retention configured: every message stays; expired tokens still go."""
        yield Maintenance(self.database, self.clock).run()
        bodies, feed, left = yield self.database.read(_bodies_txn)
        self.assertEqual(len(bodies), 15)
        self.assertEqual(len(feed), 2)
        self.assertEqual(left, ["valid"])

    def test_rounds_follow_the_clock(self) -> None:
        """The first round comes a minute after start, then one an hour; stop ends it."""
        rounds: list[float] = []
        keeper = Maintenance(self.database, self.clock)
        self.patch(keeper, "run", lambda: rounds.append(self.clock.seconds()))
        keeper.start()
        self.clock.advance(maintenance.FIRST_RUN - 1)
        self.assertEqual(rounds, [])
        self.clock.advance(1)
        self.clock.advance(maintenance.INTERVAL)
        self.assertEqual(rounds, [NOW + maintenance.FIRST_RUN,
                                  NOW + maintenance.FIRST_RUN + maintenance.INTERVAL])
        keeper.stop()
        self.clock.advance(10 * maintenance.INTERVAL)
        self.assertEqual(len(rounds), 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    @defer.inlineCallbacks
    def test_a_failed_round_is_logged_and_the_next_goes_on(self) -> object:
        """A database error in one round does not stop later rounds."""
        keeper = Maintenance(self.database, self.clock)
        real_write = self.database.write
        calls = []

        def failing_once(fn: object, *args: object) -> defer.Deferred[object]:
            calls.append(fn)
            if len(calls) == 1:
                return defer.fail(RuntimeError("disk on fire"))
            return real_write(fn, *args)
        self.patch(self.database, "write", failing_once)
        yield keeper.run()
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        yield keeper.run()
        _, _, left = yield self.database.read(_bodies_txn)
        self.assertEqual(left, ["valid"])


class MaintenanceTestsOnPostgres(OnPostgres, MaintenanceTests):
    """The same on a PostgreSQL store."""
