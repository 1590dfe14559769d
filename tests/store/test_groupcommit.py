"""Group commit over a real database: many concurrent submits go into few transactions,
results come back in submission order, failures reach every row of their batch
(messenger.store.groupcommit). On SQLite and on PostgreSQL (``...OnPostgres``)."""

from __future__ import annotations

import threading

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from messenger.store import db
from messenger.store.groupcommit import GroupCommit
from tests.support import services
from tests.support.services import OnPostgres

TABLE = (1, "log", "CREATE TABLE log (\n    id AUTO_ID,\n    value TEXT NOT NULL UNIQUE\n);\n")


class Recorder:
    """A batch function that inserts each value and records the batch sizes."""

    def __init__(self):
        self.sizes = []
        self.threads = set()
        self.gate = None

    def __call__(self, txn, items):
        self.threads.add(threading.get_ident())
        if self.gate is not None:
            self.gate.wait(5)
        self.sizes.append(len(items))
        results = []
        for value in items:
            if value == "boom":
                raise RuntimeError("the whole batch fails")
            txn.execute("INSERT INTO log (value) VALUES (?) RETURNING id", (value,))
            results.append(txn.fetchone()[0])
        return results


class GroupCommitTests(unittest.TestCase):
    store_engine = "sqlite"

    @defer.inlineCallbacks
    def setUp(self):
        self.patch(db, "migrations", lambda: [TABLE])
        location = yield services.database_for(self, migrated=False)
        self.database = db.Database(location, reactor=reactor)
        yield self.database.open()
        self.addCleanup(self.database.close)
        self.recorder = Recorder()
        self.commit = GroupCommit(self.database, self.recorder,
                                  lambda item, done, result: done(result), max_batch=100)

    def submit_all(self, values):
        results = []
        done = defer.Deferred()
        remaining = [len(values)]

        def collect(value, result):
            results.append((value, result))
            remaining[0] -= 1
            if remaining[0] == 0:
                done.callback(results)
        for value in values:
            self.commit.submit(value, lambda result, value=value: collect(value, result))
        return done

    @defer.inlineCallbacks
    def stored(self):
        found = yield self.database.read(lambda txn: txn.execute(
            "SELECT id, value FROM log ORDER BY id").fetchall())
        return [tuple(row) for row in found]

    @defer.inlineCallbacks
    def test_many_submits_few_transactions_in_order(self):
        """250 rows submitted at once are written in a handful of transactions (at most
        max_batch each), not 250; callbacks and ids follow the submission order."""
        values = [f"v{i}" for i in range(250)]
        results = yield self.submit_all(values)
        self.assertEqual([value for value, _ in results], values)
        ids = [result for _, result in results]
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(self.recorder.sizes, [1, 100, 100, 49])
        self.assertEqual((self.commit.batches, self.commit.rows), (4, 250))
        stored = yield self.stored()
        self.assertEqual(stored, list(zip(ids, values, strict=True)))
        self.assertNotIn(threading.get_ident(), self.recorder.threads)

    @defer.inlineCallbacks
    def test_submits_during_a_transaction_join_the_next(self):
        """Rows submitted from many connections while a transaction is in flight all go
        into the next transaction together."""
        self.recorder.gate = threading.Event()
        first = self.submit_all(["first"])
        later = []
        for turn in range(30):
            yield task.deferLater(reactor, 0, lambda: None)
            later.append(self.submit_all([f"c{turn}"]))
        self.assertEqual(self.commit.pending, 30)
        self.recorder.gate.set()
        yield first
        yield defer.gatherResults(later)
        self.assertEqual(self.recorder.sizes, [1, 30])
        stored = yield self.stored()
        self.assertEqual([value for _, value in stored], ["first"] + [f"c{i}" for i in range(30)])

    @defer.inlineCallbacks
    def test_settling_context_wraps_each_batchs_callbacks(self):
        """The ``settling`` context is held around all the callbacks of a batch, once per
        batch (the server corks its writes there), also for a failed batch."""
        seen = []

        class Settling:
            depth = 0

            def __enter__(self):
                Settling.depth += 1
                seen.append("enter")

            def __exit__(self, *exc):
                Settling.depth -= 1
                seen.append("exit")

        self.commit = GroupCommit(
            self.database, self.recorder,
            lambda item, done, result: (seen.append(Settling.depth), done(result)),
            settling=Settling())
        self.recorder.gate = threading.Event()
        self.submit_all(["x"])
        self.submit_all(["y", "z"])      # these three form the second batch, which fails
        self.submit_all(["boom"])
        self.recorder.gate.set()
        yield self.commit.flush()
        self.assertEqual(seen, ["enter", 1, "exit", "enter", 1, 1, 1, "exit"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    @defer.inlineCallbacks
    def test_failed_batch_reports_to_every_row_and_goes_on(self):
        """When a batch's transaction fails, each of its rows gets the exception, nothing
        of it is stored, and the next batch is written normally."""
        self.recorder.gate = threading.Event()
        self.submit_all(["alone"])
        failing = self.submit_all(["a", "boom", "b"])
        self.recorder.gate.set()
        results = yield failing
        self.assertEqual([value for value, _ in results], ["a", "boom", "b"])
        self.assertTrue(all(isinstance(result, RuntimeError) for _, result in results))
        after = yield self.submit_all(["after"])
        self.assertIsInstance(after[0][1], int)
        stored = yield self.stored()
        self.assertEqual([value for _, value in stored], ["alone", "after"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    @defer.inlineCallbacks
    def test_callback_error_does_not_stop_the_others(self):
        """A done callback that raises is logged; the other rows still get their results."""
        got = []

        def bad(result):
            raise ValueError("callback bug")
        self.commit.submit("x", bad)
        self.commit.submit("y", got.append)
        self.commit.submit("z", got.append)
        yield self.commit.flush()
        self.assertEqual(len(got), 2)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    @defer.inlineCallbacks
    def test_flush(self):
        """flush fires once every queued row is written and its callback has run."""
        got = []
        for value in ("p", "q", "r"):
            self.commit.submit(value, got.append)
        yield self.commit.flush()
        self.assertEqual(len(got), 3)
        idle = self.commit.flush()
        self.assertTrue(idle.called)


    @defer.inlineCallbacks
    def test_window_gathers_rows_arriving_apart(self):
        """With a collection window, rows submitted one after another while the writer
        is idle share one transaction instead of one each, and all are stored."""
        commit = GroupCommit(self.database, self.recorder,
                             lambda item, done, result: done(result), window=0.05,
                             clock=reactor)
        got = []
        for value in ("w1", "w2", "w3"):
            commit.submit(value, got.append)
        self.assertEqual(self.recorder.sizes, [])   # waiting for company
        yield commit.flush()
        self.assertEqual(self.recorder.sizes, [3])
        self.assertEqual([value for _, value in (yield self.stored())], ["w1", "w2", "w3"])
        self.assertEqual(len(got), 3)


class GroupCommitTestsOnPostgres(OnPostgres, GroupCommitTests):
    pass


class ControlledWrites:
    """A Database double whose ``write`` answers when the test says: the batches it was
    given, and one Deferred per batch."""

    def __init__(self):
        self.batches = []
        self.pending = []

    def write(self, batch_txn, items):
        self.batches.append(list(items))
        d = defer.Deferred()
        self.pending.append(d)
        return d

    def commit_next(self):
        d = self.pending.pop(0)
        d.callback(list(self.batches[len(self.batches) - len(self.pending) - 1]))


class WindowTests(unittest.TestCase):
    """The collection window on a task.Clock: when a transaction starts, never how long
    anything takes."""

    def setUp(self):
        self.clock = task.Clock()
        self.db = ControlledWrites()
        self.results = []
        self.commit = GroupCommit(self.db, None, self.record, window=0.002, clock=self.clock,
                                  max_batch=4)

    def record(self, item, token, result):
        self.results.append((token, result))

    def test_lone_row_waits_the_window_then_commits(self):
        """A row at an idle writer starts a transaction only when the window is over (its
        own timer), and its callback follows that transaction's commit."""
        self.commit.submit("a", "ta")
        self.clock.advance(0.0019)
        self.assertEqual(self.db.batches, [])
        self.clock.advance(0.0001)
        self.assertEqual(self.db.batches, [["a"]])
        self.db.commit_next()
        self.assertEqual(self.results, [("ta", "a")])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_rows_within_the_window_share_a_transaction(self):
        """Rows that arrive while the oldest waits go into its transaction; a row that
        comes after the window has passed starts it at once, without the timer."""
        self.commit.submit("a", "ta")
        self.clock.advance(0.001)
        self.commit.submit("b", "tb")
        self.assertEqual(self.db.batches, [])
        self.clock.advance(0.0015)     # the timer fired: a and b together
        self.assertEqual(self.db.batches, [["a", "b"]])
        self.db.commit_next()
        self.commit.submit("c", "tc")
        self.clock.advance(0.002)
        self.assertEqual(self.db.batches, [["a", "b"], ["c"]])
        self.assertEqual([token for token, _ in self.results], ["ta", "tb"])

    def test_a_full_batch_does_not_wait(self):
        """max_batch rows start at once, whatever the window."""
        for value in "abcd":
            self.commit.submit(value, "t" + value)
        self.assertEqual(self.db.batches, [list("abcd")])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_rows_queued_during_a_transaction_wait_only_what_is_left(self):
        """Rows queued while a transaction runs start the next one as soon as it commits
        if the oldest has already waited the window, and otherwise when it has."""
        self.commit.submit("a", "ta")
        self.clock.advance(0.002)
        self.commit.submit("b", "tb")          # during a's transaction
        self.clock.advance(0.003)
        self.db.commit_next()                  # b waited 3 ms: starts now
        self.assertEqual(self.db.batches, [["a"], ["b"]])
        self.commit.submit("c", "tc")          # during b's transaction
        self.clock.advance(0.0005)
        self.db.commit_next()                  # c waited 0.5 ms: 1.5 ms more
        self.assertEqual(self.db.batches, [["a"], ["b"]])
        self.clock.advance(0.0014)
        self.assertEqual(self.db.batches, [["a"], ["b"]])
        self.clock.advance(0.0002)
        self.assertEqual(self.db.batches, [["a"], ["b"], ["c"]])

    def test_flush_does_not_wait_for_the_window(self):
        """flush starts the waiting rows at once (a shutdown waits for no company)."""
        self.commit.submit("a", "ta")
        done = self.commit.flush()
        self.assertEqual(self.db.batches, [["a"]])
        self.assertFalse(done.called)
        self.db.commit_next()
        self.assertTrue(done.called)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_no_window_starts_at_once(self):
        """A window of 0 keeps the old behaviour: a row at an idle writer starts its
        transaction immediately."""
        commit = GroupCommit(self.db, None, self.record, window=0.0, clock=self.clock)
        commit.submit("a", "ta")
        self.assertEqual(self.db.batches, [["a"]])
