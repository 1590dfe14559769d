"""The search index written in batches after the messages (messenger.store.searchindex,
schema 016), on a real SQLite file and (the ...OnPostgres twins, where each message is
still indexed as it is stored) a real PostgreSQL database: a message is found before
and after it is indexed; edits, deletions, retention purges and deleted accounts before
and after indexing leave the index exactly as the messages are (checked term by term
against FTS5's own vocabulary); the indexer takes messages in id order, a limited
number per pass; an upgraded database has every old message indexed once."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from messenger.store import (
    adminops,
    db,
    edits,
    groupchanges,
    messages,
    plain,
    search,
    searchindex,
)
from tests.store.test_groups import LIMITS, GroupCase
from tests.support import services
from tests.support.services import OnPostgres

INSTANCES = "SELECT term, doc FROM temp.search_vocab WHERE col = 'body' ORDER BY doc, term"


def index_contents(connection) -> list[tuple[str, int]]:
    """(word, message id) of every word the SQLite index holds for a body, sorted."""
    connection.raw.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.search_vocab USING"
                           " fts5vocab(main, messages_fts, instance)")
    return [tuple(row) for row in connection.raw.execute(INSTANCES).fetchall()]


def stale_vectors_txn(txn) -> int:
    """PostgreSQL: the messages whose ``search`` vector is not their body's."""
    txn.execute("SELECT COUNT(*) FROM messages WHERE search IS DISTINCT FROM"
                " messages_search_vector(body, sender_id, recipient_id, group_id)")
    return txn.fetchone()[0]


class IndexCase(GroupCase):
    """Helpers: search, run the indexer, and check the index holds exactly the messages."""

    def find(self, name, query, group=None):
        rows = self.read(search.find_txn, getattr(self, name), None, group,
                         search.query_words(query), 0, 50)
        return [row[5] for row in rows]

    def index(self, limit=searchindex.BATCH):
        return self.write(searchindex.index_pending_txn, limit)

    def pending(self):
        return self.read(searchindex.pending_txn)

    @property
    def batched(self):
        return not self.connection.is_postgres

    def assert_index_exact(self):
        """The index holds each indexed message's words once, as its body is now, and
        nothing of a message not indexed yet or gone (words here are plain ASCII, so
        ``lower().split()`` is the tokenizer's answer)."""
        if not self.batched:
            self.assertEqual(self.read(stale_vectors_txn), 0)
            return
        last = self.read(searchindex.progress_txn)
        rows = self.read(lambda txn: txn.execute(
            "SELECT id, body FROM messages WHERE id <= ?", (last,)).fetchall())
        expected = sorted(((word, msg_id) for msg_id, body in rows
                           for word in body.lower().split()), key=lambda item: item[::-1])
        self.assertEqual(index_contents(self.connection), expected)
        self.write(lambda txn: txn.execute(
            "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 0)"))


class IndexerTests(IndexCase):

    def test_found_before_and_after_indexing(self):
        """A stored message is found at once, before the indexer took it in, and after;
        the indexer takes the waiting messages oldest first, at most ``limit`` a pass,
        then has nothing to do."""
        ids = [self.direct("alice", "bob", f"report part{n}") for n in range(5)]
        self.assertEqual(self.pending(), 5 if self.batched else 0)
        self.assertEqual(len(self.find("bob", "report")), 5)
        self.assertEqual(self.index(2), 2 if self.batched else 0)
        if self.batched:
            self.assertEqual(self.read(searchindex.progress_txn), ids[1])
            self.assertEqual(self.pending(), 3)
        self.assertEqual(self.find("alice", "part3"), ["report part3"])
        self.assertEqual(len(self.find("bob", "report")), 5)
        self.assertEqual(self.index(), 3 if self.batched else 0)
        self.assertEqual((self.index(), self.pending()), (0, 0))
        self.assertEqual(sorted(self.find("alice", "report")),
                         [f"report part{n}" for n in range(5)])
        self.assertEqual(self.find("carol", "report"), [])
        self.assert_index_exact()

    def test_edit_before_and_after_indexing(self):
        """A message edited before it is indexed is indexed with its new words only; one
        edited after is kept in step by the trigger."""
        early = self.direct("alice", "bob", "first draft")
        self.write(edits.edit_txn, self.alice, early, "second version", 5.0, 0.0)
        self.assertEqual(self.find("bob", "draft"), [])
        self.assertEqual(self.find("bob", "version"), ["second version"])
        self.index()
        self.assert_index_exact()
        self.assertEqual(self.find("bob", "draft"), [])
        self.assertEqual(self.find("bob", "second"), ["second version"])
        self.write(edits.edit_txn, self.alice, early, "third wording", 6.0, 0.0)
        self.assertEqual(self.find("bob", "second"), [])
        self.assertEqual(self.find("bob", "wording"), ["third wording"])
        self.assert_index_exact()

    def test_delete_before_and_after_indexing(self):
        """A message deleted before it is indexed is never found, nor indexed with its
        words; one deleted after loses its words from the index."""
        gone = self.direct("alice", "bob", "secret plan")
        later = self.direct("alice", "bob", "public plan")
        self.write(edits.delete_txn, self.alice, gone, 5.0, 0.0)
        self.assertEqual(self.find("bob", "plan"), ["public plan"])
        self.index()
        self.assert_index_exact()
        self.assertEqual(self.find("bob", "secret"), [])
        self.write(edits.delete_txn, self.alice, later, 6.0, 0.0)
        self.assertEqual(self.find("bob", "plan"), [])
        self.assert_index_exact()

    def test_purges_before_and_after_indexing(self):
        """Messages removed by retention or with a deleted account, before they were
        indexed or after, leave nothing behind; the indexer carries on past them."""
        self.direct("carol", "bob", "carol indexed")
        self.direct("alice", "bob", "alice indexed")
        self.index()
        self.direct("carol", "bob", "carol waiting")
        self.direct("alice", "bob", "alice waiting")
        self.write(adminops.delete_user_txn, "root", "carol", 7.0)
        self.assertEqual(self.find("bob", "carol"), [])
        self.assert_index_exact()
        self.index()
        self.assert_index_exact()
        self.assertEqual(self.find("bob", "alice"), ["alice waiting", "alice indexed"])
        self.direct("alice", "bob", "alice newest")
        self.write(messages.purge_older_than_txn, 10**9, 100)    # every message, both kinds
        self.assertEqual(self.find("bob", "alice"), [])
        self.assertEqual(self.pending(), 0)
        self.assert_index_exact()
        self.assertEqual(self.index(), 0)
        self.direct("alice", "bob", "alice after the purge")
        self.index()
        self.assertEqual(self.find("bob", "alice"), ["alice after the purge"])
        self.assert_index_exact()

    def test_group_messages_in_their_windows(self):
        """Group messages not indexed yet are found by members within their windows
        only, as indexed ones are."""
        gid = self.create(members=("bob",))
        self.post("alice", gid, "before carol")
        self.index()
        self.write(groupchanges.add_txn, self.alice, gid, "carol", self.now, LIMITS)
        self.post("bob", gid, "after carol joined")
        self.assertEqual(self.find("carol", "carol", group=gid), ["after carol joined"])
        self.assertEqual(self.find("bob", "carol"), ["before carol", "after carol joined"])
        self.index()
        self.assertEqual(self.find("carol", "carol", group=gid), ["after carol joined"])
        self.assert_index_exact()


class IndexerTestsOnPostgres(OnPostgres, IndexerTests):
    """The same on PostgreSQL, where every message is indexed as it is stored."""


class UpgradeTests(unittest.TestCase):
    """A database with messages, upgraded to schema 016: every old message is indexed
    once, none is waiting, and new ones wait for the indexer."""

    store_engine = "sqlite"

    @defer.inlineCallbacks
    def upgraded(self, before):
        location = yield services.database_for(self, migrated=False)
        connection = plain.open_plain(location)
        self.addCleanup(connection.close)
        db.migrate_plain(connection, [m for m in db.migrations() if m[0] < before], 1.0)

        def fill(txn):
            for name in ("ann", "ben"):
                txn.execute("INSERT INTO users (name, name_lower, email, email_lower,"
                            " password_hash, created, password_changed)"
                            " VALUES (?, ?, ?, ?, 'h', 1.0, 1.0)",
                            (name, name, f"{name}@x.org", f"{name}@x.org"))
            for n in range(3):
                txn.execute("INSERT INTO messages (sender_id, recipient_id, client_id, body,"
                            " created) VALUES (1, 2, ?, ?, 1.0)", (f"c{n}", f"old words{n}"))
        connection.write(fill)
        db.migrate_plain(connection, None, 2.0)
        return connection

    def check(self, connection):
        def find(word):
            rows = connection.read(search.find_txn, 2, None, None, [word], 0, 10)
            return [row[5] for row in rows]
        self.assertEqual(connection.read(searchindex.pending_txn), 0)
        self.assertEqual(connection.write(searchindex.index_pending_txn, 100), 0)
        self.assertEqual(find("old"), ["old words2", "old words1", "old words0"])
        if not connection.is_postgres:
            self.assertEqual(connection.read(searchindex.progress_txn), 3)
            self.assertEqual(index_contents(connection),
                             [(w, n) for n in (1, 2, 3) for w in ("old", f"words{n - 1}")])
        connection.write(messages.insert_batch_txn, [(1, 2, "c9", "new words", 3.0)])
        self.assertEqual(connection.read(searchindex.pending_txn),
                         0 if connection.is_postgres else 1)
        self.assertEqual(find("words"), ["new words", "old words2", "old words1",
                                         "old words0"])

    @defer.inlineCallbacks
    def test_from_the_indexing_trigger(self):
        """Messages stored by a server of schema 015 (indexed by 013's trigger) are
        neither indexed again nor lost."""
        connection = yield self.upgraded(16)
        self.check(connection)

    @defer.inlineCallbacks
    def test_from_before_search(self):
        """Messages stored before search existed (schema 012) are indexed by 013 on the
        way and found once."""
        connection = yield self.upgraded(13)
        self.check(connection)


class UpgradeTestsOnPostgres(OnPostgres, UpgradeTests):
    """The same on PostgreSQL (schema 016 changes nothing there)."""
