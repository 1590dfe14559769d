"""The PostgreSQL store against a real PostgreSQL 15: ids committed in order across nodes,
conflicting writes retried, and an outage that gives prompt errors and heals by itself
(messenger.store.postgres, messenger.store.db)."""

from __future__ import annotations

import threading

import psycopg2
from twisted.internet import defer, reactor, task, threads
from twisted.trial import unittest

from messenger.store import db, messages, plain, users
from messenger.store.errors import Unavailable
from messenger.store.groupcommit import GroupCommit
from messenger.store.postgres import PostgresEngine, redact
from tests.support import services


class Node:
    """What one server process holds of the store: its pools and its group commit."""

    def __init__(self, url, **engine_options):
        self.db = db.Database(url, PostgresEngine(url, **engine_options), reactor=reactor)
        self.results = {}
        self.commit = GroupCommit(self.db, messages.insert_batch_txn, self._stored)

    def _stored(self, item, token, result):
        self.results[token] = result

    def send(self, sender, recipient, client_id, now=1.0):
        self.commit.submit((sender, recipient, client_id, "body", now), client_id)


@defer.inlineCallbacks
def two_users(database):
    alice = yield database.write(users.create_txn, "alice", "a@x.org", "h", 1.0)
    bob = yield database.write(users.create_txn, "bob", "b@x.org", "h", 1.0)
    return alice.id, bob.id


def ids_above_txn(txn, floor):
    txn.execute("SELECT id FROM messages WHERE id > ? ORDER BY id", (floor,))
    return [row[0] for row in txn.fetchall()]


class CommitOrderTests(unittest.TestCase):
    """Clients sync "everything above the last id I saw", so ids must become visible in
    increasing order, also when several nodes insert at once."""

    @defer.inlineCallbacks
    def setUp(self):
        self.url = yield services.fresh_database(self)
        self.nodes = [Node(self.url), Node(self.url)]
        for node in self.nodes:
            yield node.db.open()
            self.addCleanup(node.db.close)
        self.alice, self.bob = yield two_users(self.nodes[0].db)

    @defer.inlineCallbacks
    def test_two_nodes_never_fill_a_gap_later(self):
        """Two nodes' group commits insert concurrently while a reader syncs again and
        again as a client does ("everything above the last id I saw"): in the end the
        syncs together returned every message exactly once. (An id that became visible
        after a higher one was synced would be missing: no later sync asks below.)"""
        reader = self.nodes[0].db
        seen: list[int] = []
        done = []

        @defer.inlineCallbacks
        def sync_loop():
            while True:
                finished = bool(done)  # everything was committed before this sync began
                fresh = yield reader.read(ids_above_txn, seen[-1] if seen else 0)
                seen.extend(fresh)
                if finished and not fresh:
                    return

        @defer.inlineCallbacks
        def send_loop(node, prefix):
            for turn in range(40):
                for i in range(10):
                    sender, to = (self.alice, self.bob) if i % 2 else (self.bob, self.alice)
                    node.send(sender, to, f"{prefix}-{turn}-{i}")
                yield task.deferLater(reactor, 0, lambda: None)
            yield node.commit.flush()

        syncing = sync_loop()
        yield defer.gatherResults([send_loop(node, f"n{n}")
                                   for n, node in enumerate(self.nodes)])
        done.append(True)
        yield syncing
        stored = [result[0] for node in self.nodes for result in node.results.values()]
        self.assertEqual(len(stored), 800)
        self.assertEqual(seen, sorted(stored))
        self.assertGreater(min(node.commit.batches for node in self.nodes), 1)

    @defer.inlineCallbacks
    def test_a_later_insert_waits_for_an_earlier_one(self):
        """While one node's insert transaction is open (its id given out, not committed),
        another node's insert waits for it; the reader sees neither until the first
        commits, and then the ids in order."""
        holder = plain.open_plain(self.url)
        self.addCleanup(holder.close)
        raw = holder.raw
        txn = db.ConvertingCursor(raw.cursor(), holder.engine)
        (first,) = messages.insert_batch_txn(txn, [(self.alice, self.bob, "held", "b", 1.0)])
        second = self.nodes[1].db.write(messages.insert_batch_txn,
                                        [(self.bob, self.alice, "waits", "b", 2.0)])
        yield services.wait_until(lambda: self._waiting_for_lock(), what="a lock wait")
        visible = yield self.nodes[0].db.read(ids_above_txn, 0)
        self.assertEqual((visible, second.called), ([], False))
        yield threads.deferToThread(raw.commit)
        (later,) = yield second
        visible = yield self.nodes[0].db.read(ids_above_txn, 0)
        self.assertEqual(visible, [first[0], later[0]])
        self.assertLess(first[0], later[0])

    def _waiting_for_lock(self):
        cluster = services._shared
        connection = cluster.connect(self.url.rsplit("/", 1)[1])
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory'"
                           " AND NOT granted")
            return cursor.fetchone()[0] > 0
        finally:
            connection.close()


class RetryTests(unittest.TestCase):

    @defer.inlineCallbacks
    def setUp(self):
        self.url = yield services.fresh_database(self)
        self.database = db.Database(self.url, reactor=reactor, writers=2)
        yield self.database.open()
        self.addCleanup(self.database.close)
        yield self.database.write(lambda txn: txn.execute(
            "CREATE TABLE counter (n INTEGER NOT NULL); INSERT INTO counter VALUES (0)"))

    @defer.inlineCallbacks
    def test_conflicting_writes_are_retried(self):
        """Two writers that both read a row and then update it: the one that loses the
        conflict is retried with a fresh transaction, so no update is lost."""
        barrier = threading.Barrier(2, timeout=10)
        attempts = []

        def increment_txn(txn, name):
            attempts.append(name)
            txn.execute("SELECT n FROM counter")
            value = txn.fetchone()[0]
            if attempts.count(name) == 1:
                barrier.wait()  # both have read before either writes
            txn.execute("UPDATE counter SET n = ?", (value + 1,))

        yield defer.gatherResults([self.database.write(increment_txn, "a"),
                                   self.database.write(increment_txn, "b")])
        value = yield self.database.read(lambda txn: txn.execute(
            "SELECT n FROM counter").fetchone())
        self.assertEqual((value[0], len(attempts)), (2, 3))


class OutageTests(unittest.TestCase):
    """PostgreSQL goes away and comes back; the node is never restarted."""

    timeout = 90

    @defer.inlineCallbacks
    def setUp(self):
        self.cluster = services.PostgresCluster()
        self.addCleanup(self.cluster.remove)
        yield self.cluster.start()
        self.url = self.cluster.url()

    @defer.inlineCallbacks
    def open(self, **engine_options):
        database = db.Database(self.url, PostgresEngine(self.url, **engine_options),
                               reactor=reactor)
        self.addCleanup(database.close)
        yield database.open()
        return database

    @defer.inlineCallbacks
    def test_down_gives_prompt_errors_and_back_heals(self):
        """With PostgreSQL stopped, reads and writes fail promptly with Unavailable; once
        it runs again, the very next requests succeed on new connections."""
        database = yield self.open()
        yield two_users(database)
        yield self.cluster.stop()
        for call in (database.read(users.count_txn), database.write(users.count_txn)):
            started = reactor.seconds()
            yield self.assertFailure(call, Unavailable)
            self.assertLess(reactor.seconds() - started, 10)
        self.assertIsNotNone(database.unavailable_since)
        yield self.cluster.start()
        count = yield database.read(users.count_txn)
        created = yield database.write(users.create_txn, "carol", "c@x.org", "h", 2.0)
        self.assertEqual((count, created.name), (2, "carol"))
        self.assertIsNone(database.unavailable_since)

    @defer.inlineCallbacks
    def test_crash_and_restart(self):
        """A crashed PostgreSQL (SIGKILL) recovers what was committed when restarted,
        and the node's idle connections are replaced without a failed request."""
        database = yield self.open()
        yield two_users(database)
        yield self.cluster.kill()
        yield self.cluster.start()
        count = yield database.read(users.count_txn)
        self.assertEqual(count, 2)

    @defer.inlineCallbacks
    def test_stuck_database_meets_the_deadline(self):
        """A database that accepts a query but does not answer (here: a lock held by
        someone else) is reported unavailable at the node's deadline, not waited for."""
        database = yield self.open(request_timeout=0.3)
        yield two_users(database)
        holder = psycopg2.connect(self.url)
        self.addCleanup(holder.close)
        holder.cursor().execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        failure = yield self.assertFailure(database.read(users.count_txn), Unavailable)
        self.assertIn("did not answer within 0.3 s", str(failure))
        holder.rollback()
        count = yield database.read(users.count_txn)
        self.assertEqual(count, 2)

    @defer.inlineCallbacks
    def test_statement_timeout(self):
        """A statement that runs past the server-side statement timeout is cancelled by
        PostgreSQL and reported unavailable."""
        database = yield self.open(statement_timeout=0.2)
        yield self.assertFailure(database.read(lambda txn: txn.execute(
            "SELECT pg_sleep(5)")), Unavailable)
        value = yield database.read(lambda txn: txn.execute("SELECT 1").fetchone())
        self.assertEqual(value[0], 1)

    @defer.inlineCallbacks
    def test_not_running_at_start(self):
        """A node started while PostgreSQL is down fails to start with Unavailable (an
        operator's matter, reported without a traceback)."""
        yield self.cluster.stop()
        database = db.Database(self.url, reactor=reactor)
        self.addCleanup(database.close)
        yield self.assertFailure(database.open(), Unavailable)


class UrlTests(unittest.TestCase):

    def test_redact(self):
        """Passwords never reach a log line, in URLs or key=value strings."""
        self.assertEqual(redact("postgresql://u:pw@h:5432/db"), "postgresql://u:***@h:5432/db")
        self.assertEqual(redact("postgresql://u@h/db"), "postgresql://u@h/db")
        self.assertEqual(sorted(redact("host=h password=pw dbname=d").split()),
                         ["dbname=d", "host=h", "password=***"])

    def test_engine_for(self):
        """A postgresql:// value picks PostgreSQL; anything else is a SQLite file."""
        self.assertEqual(db.engine_for("postgresql://u@h/db").name, "postgres")
        self.assertEqual(db.engine_for("postgres://u@h/db").name, "postgres")
        self.assertEqual(db.engine_for("var/messenger.sqlite").name, "sqlite")

    def test_connection_settings(self):
        """Connections get the timeouts that turn an outage into prompt errors, and keep
        options the URL already has."""
        kwargs = PostgresEngine("postgresql://u@h/db?options=-c%20search_path%3Dx",
                                statement_timeout=3).connect_kwargs()
        self.assertEqual(kwargs["connect_timeout"], 5)
        self.assertIn("-c search_path=x", kwargs["options"])
        self.assertIn("-c statement_timeout=3000", kwargs["options"])
        self.assertEqual(kwargs["keepalives_idle"], 5)
