"""The search index written in the background (messenger.server.searchindex).

Scheduling, with a task.Clock over a real SQLite database: one pass per interval after
commits however many there are, none without them, at once after a full batch, another
after commits made during a pass, a failed pass retried, nothing after stop.

Over a real server on loopback (and the ...OnPostgres twins, where each message is still
indexed as it is stored): a message is found the moment its send is acknowledged, and
indexed in the background without any search; edits, deletions, a deleted account and
the retention purge before and after indexing leave nothing to find that should not be;
messages left waiting by a server that stopped are indexed by the next one.
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from messenger.server.searchindex import SearchIndexer
from messenger.store import db, messages, searchindex, users
from tests.server.people import login, server_with
from tests.support import services
from tests.support.server import start_server
from tests.support.services import OnPostgres


class FailingOnce:
    """A database whose first write fails."""

    postgres = False

    def __init__(self, real):
        self.real = real
        self.failed = False

    def write(self, fn, *args):
        if not self.failed:
            self.failed = True
            return defer.fail(RuntimeError("disk on fire"))
        return self.real.write(fn, *args)


class SchedulingTests(unittest.TestCase):
    """The indexer's timing, on a task.Clock; its passes run on a real SQLite file."""

    @defer.inlineCallbacks
    def setUp(self):
        self.db = db.Database(Path(self.mktemp()) / "store.sqlite", reactor=reactor)
        yield self.db.open()
        self.addCleanup(self.db.close)
        self.clock = task.Clock()
        self.sent = 0
        for name in ("ann", "ben"):
            yield self.db.write(users.create_txn, name, f"{name}@x.org", "h", 1.0, None)

    def indexer(self, database=None, **kwargs):
        indexer = SearchIndexer(database or self.db, self.clock, interval=0.5, **kwargs)
        self.addCleanup(indexer.stop)
        return indexer

    def store(self, count):
        items = []
        for _ in range(count):
            self.sent += 1
            items.append((1, 2, f"c{self.sent}", f"note number{self.sent}", 1.0))
        return self.db.write(messages.insert_batch_txn, items)

    def pending(self):
        return self.db.read(searchindex.pending_txn)

    @defer.inlineCallbacks
    def test_one_pass_per_interval_after_commits(self):
        """Many commits within the interval make one pass, INTERVAL after the first;
        with no commits nothing is scheduled at all."""
        indexer = self.indexer()
        indexer.start()
        passed = indexer.when_passed()
        self.clock.advance(0)                           # the pass at start: nothing yet
        self.assertEqual((yield passed), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        for _ in range(3):
            yield self.store(2)
            indexer.nudge(2)
            self.clock.advance(0.1)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.assertEqual((yield self.pending()), 6)
        self.assertEqual(indexer.waiting, 6)
        passed = indexer.when_passed()
        self.clock.advance(0.2)                         # 0.5 s after the first nudge
        self.assertEqual((yield passed), 6)
        self.assertEqual((yield self.pending()), 0)
        self.assertEqual(indexer.waiting, 0)
        self.assertEqual((indexer.passes, indexer.indexed), (2, 6))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    @defer.inlineCallbacks
    def test_full_batch_goes_on_at_once(self):
        """A pass that fills its batch is followed at once by the next one, until the
        messages waiting are all indexed."""
        yield self.store(5)
        indexer = self.indexer(batch=2)
        indexer.start()
        counts, waiting = [], []
        for _ in range(3):
            passed = indexer.when_passed()
            self.assertEqual([call.getTime() for call in self.clock.getDelayedCalls()],
                             [self.clock.seconds()])
            self.clock.advance(0)
            counts.append((yield passed))
            waiting.append(indexer.waiting)
        self.assertEqual(counts, [2, 2, 1])
        self.assertEqual(waiting, [3, 1, 0])            # what each pass left, counted
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual((yield self.pending()), 0)

    @defer.inlineCallbacks
    def test_commits_during_a_pass_get_another(self):
        """Messages committed while a pass runs are indexed by another pass, INTERVAL
        later."""
        indexer = self.indexer()
        indexer.start()
        self.clock.advance(0)
        indexer.nudge()                             # the start pass is running now
        passed = indexer.when_passed()
        yield passed
        (call,) = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime(), 0.5)

    @defer.inlineCallbacks
    def test_a_failed_pass_is_retried(self):
        """A pass that fails is logged and tried again INTERVAL later."""
        yield self.store(3)
        indexer = self.indexer(FailingOnce(self.db))
        indexer.start()
        passed = indexer.when_passed()
        self.clock.advance(0)
        self.assertEqual((yield passed), 0)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        passed = indexer.when_passed()
        self.clock.advance(0.5)
        self.assertEqual((yield passed), 3)

    @defer.inlineCallbacks
    def test_stop(self):
        """Stop cancels the scheduled pass, waits for a running one, and later commits
        schedule nothing."""
        yield self.store(3)
        indexer = self.indexer()
        indexer.start()
        self.clock.advance(0)                       # running
        yield indexer.stop()
        self.assertEqual((yield self.pending()), 0)
        indexer.nudge()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        indexer = self.indexer()
        indexer.start()
        yield indexer.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    @defer.inlineCallbacks
    def test_after_batch_nudges_then_counts(self):
        """The group commit's batch callback nudges the indexer and still calls the
        metrics' own."""
        indexer = self.indexer()
        indexer.start()
        passed = indexer.when_passed()
        self.clock.advance(0)
        yield passed
        counted = []
        indexer.after_batch(lambda rows, seconds: counted.append(rows))(7, 0.01)
        self.assertEqual(counted, [7])
        self.assertEqual([call.getTime() for call in self.clock.getDelayedCalls()], [0.5])


class OnPostgresTests(unittest.TestCase):
    """On PostgreSQL each message is indexed as it is stored: the indexer never runs."""

    store_engine = "postgres"

    @defer.inlineCallbacks
    def test_no_passes(self):
        """No pass at start or after commits; the batch callback is the metrics' own."""
        location = yield services.database_for(self)
        database = db.Database(location, reactor=reactor)
        yield database.open()
        self.addCleanup(database.close)
        clock = task.Clock()
        indexer = SearchIndexer(database, clock)
        indexer.start()
        indexer.nudge()
        self.assertEqual(clock.getDelayedCalls(), [])

        def count(rows, seconds):
            return None
        self.assertIs(indexer.after_batch(count), count)
        self.assertEqual((yield database.read(searchindex.pending_txn)), 0)


def texts(reply):
    return [item["message"] for item in reply["alert"]]


class BackgroundTests(unittest.TestCase):
    """Search over a real server while the index follows in the background."""

    @defer.inlineCallbacks
    def setUp(self):
        self.server, (self.root, self.alice, self.bob, self.carol) = yield server_with(
            self, "root", "alice", "bob", "carol", retention_days=1e-12)
        self.indexer = self.server.ctx.search_index
        self.indexer.interval = 3600.0          # no pass unless a test asks for one

    @property
    def batched(self):
        return getattr(self, "store_engine", "sqlite") == "sqlite"

    def pending(self):
        return self.server.db.read(searchindex.pending_txn)

    @defer.inlineCallbacks
    def send(self, client, to, body):
        reply = yield client.request("msg", to=to, message=body)
        self.assertEqual(reply["response"], 200, reply)
        return reply["msg_id"]

    @defer.inlineCallbacks
    def find(self, client, query):
        reply = yield client.request("search_messages", query=query)
        self.assertEqual(reply["response"], 202, reply)
        return texts(reply)

    @defer.inlineCallbacks
    def test_found_at_once_and_indexed_in_the_background(self):
        """A message is found as soon as its send is acknowledged, before any pass;
        a pass INTERVAL after the commit indexes it without any search."""
        yield self.send(self.alice, "bob", "lunch at noon?")
        self.assertEqual((yield self.find(self.bob, "lunch")), ["lunch at noon?"])
        self.assertEqual((yield self.pending()), 1 if self.batched else 0)
        self.indexer.interval = 0.05
        yield self.indexer.index_now()          # instead of the pass an hour away
        self.assertEqual((yield self.pending()), 0)
        yield self.send(self.bob, "alice", "lunch is fine")
        yield self.send(self.bob, "alice", "see you at lunch")
        yield self.indexer.idle()               # the commits nudged it; no search made
        self.assertEqual((yield self.pending()), 0)
        self.assertEqual(len((yield self.find(self.alice, "lunch"))), 3)

    @defer.inlineCallbacks
    def test_edits_and_deletions_before_and_after_indexing(self):
        """Edited and deleted messages are found by their present words only, whether
        the change came before the message was indexed or after."""
        first = yield self.send(self.alice, "bob", "alpha draft")
        second = yield self.send(self.alice, "bob", "beta plan")
        yield self.alice.request("edit_msg", msg_id=first, message="alpha final")
        yield self.alice.request("delete_msg", msg_id=second)
        self.assertEqual((yield self.find(self.bob, "draft")), [])
        self.assertEqual((yield self.find(self.bob, "final")), ["alpha final"])
        self.assertEqual((yield self.find(self.bob, "plan")), [])
        yield self.indexer.index_now()
        self.assertEqual((yield self.pending()), 0)
        self.assertEqual((yield self.find(self.bob, "draft")), [])
        self.assertEqual((yield self.find(self.bob, "alpha")), ["alpha final"])
        self.assertEqual((yield self.find(self.bob, "beta")), [])
        yield self.alice.request("edit_msg", msg_id=first, message="alpha revised")
        self.assertEqual((yield self.find(self.bob, "final")), [])
        self.assertEqual((yield self.find(self.bob, "revised")), ["alpha revised"])
        yield self.alice.request("delete_msg", msg_id=first)
        self.assertEqual((yield self.find(self.bob, "alpha")), [])

    @defer.inlineCallbacks
    def test_purges_before_and_after_indexing(self):
        """A deleted account's messages and those past the retention period, indexed or
        not yet, are found no more; what follows is found and indexed as usual."""
        yield self.send(self.carol, "bob", "carol indexed")
        yield self.indexer.index_now()
        yield self.send(self.carol, "bob", "carol waiting")
        reply = yield self.root.request("admin_delete_user", user_id="carol")
        self.assertEqual(reply["response"], 200, reply)
        self.assertEqual((yield self.find(self.bob, "carol")), [])
        yield self.send(self.alice, "bob", "alice indexed")
        yield self.indexer.index_now()
        yield self.send(self.alice, "bob", "alice waiting")
        yield self.server.ctx.maintenance.run()     # a retention of 86 ns: everything
        self.assertEqual((yield self.find(self.bob, "alice")), [])
        yield self.indexer.index_now()
        yield self.send(self.alice, "bob", "alice fresh")
        self.assertEqual((yield self.find(self.bob, "alice")), ["alice fresh"])
        yield self.indexer.index_now()
        self.assertEqual((yield self.find(self.bob, "alice")), ["alice fresh"])
        if self.batched:
            yield self.server.db.write(lambda txn: txn.execute(
                "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 0)"))


class RestartTests(unittest.TestCase):
    """Messages a stopped server left waiting are indexed by the next one."""

    @defer.inlineCallbacks
    def test_indexed_after_restart(self):
        """Stored while no pass ran, still waiting after the stop, indexed by the next
        server's first pass, and found once."""
        if getattr(self, "store_engine", "sqlite") == "postgres":
            location = yield services.fresh_database(self)
        else:
            location = str(Path(self.mktemp()) / "store.sqlite")
        server, (alice, bob) = yield server_with(self, "alice", "bob", database=location)
        server.ctx.search_index.interval = 3600.0
        for n in range(3):
            reply = yield alice.request("msg", to="bob", message=f"before restart {n}")
            self.assertEqual(reply["response"], 200)
        waiting = yield server.db.read(searchindex.pending_txn)
        yield server.stop()
        batched = not server.config.database.startswith("postgres")
        self.assertEqual(waiting, 3 if batched else 0)
        server = yield start_server(self, database=location)
        yield server.ctx.search_index.idle()
        self.assertEqual((yield server.db.read(searchindex.pending_txn)), 0)
        bob = yield login(self, server, "bob")
        reply = yield bob.request("search_messages", query="restart")
        self.assertEqual(sorted(texts(reply)), [f"before restart {n}" for n in range(3)])


class BackgroundTestsOnPostgres(OnPostgres, BackgroundTests):
    """The same on PostgreSQL."""


class RestartTestsOnPostgres(OnPostgres, RestartTests):
    """The same on PostgreSQL."""
