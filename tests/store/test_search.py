"""Full-text search in the store, on a real SQLite file (FTS5) and (the ...OnPostgres
twins) a real PostgreSQL database (tsvector + GIN): the caller's scope only, ranking,
prefixes, the index kept in step by the triggers through inserts, edits, deletions,
purges and deleted accounts, and rows stored before the upgrade indexed by the
migration (messenger.store.search)."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from messenger.store import adminops, db, edits, messages, plain, search
from tests.store.test_groups import GroupCase
from tests.support import services
from tests.support.services import OnPostgres


class SearchStoreTests(GroupCase):

    def find(self, name, query, other=None, group=None, offset=0, limit=20):
        other_id = getattr(self, other) if other else None
        rows = self.read(search.find_txn, getattr(self, name), other_id, group,
                         search.query_words(query), offset, limit)
        return [row[5] for row in rows]

    def test_scope_and_ranking(self):
        """Direct messages sent or received, groups of the caller; best match first;
        ties to the newer message; prefixes from two letters; every word must match."""
        self.direct("alice", "bob", "the budget meeting")
        self.direct("bob", "alice", "budget budget budget")
        self.direct("carol", "dave", "budget of carol")
        gid = self.create(members=("bob",))
        self.post("bob", gid, "group budget")
        self.assertEqual(self.find("alice", "budget"),
                         ["budget budget budget", "group budget", "the budget meeting"])
        self.assertEqual(self.find("carol", "bud"), ["budget of carol"])
        self.assertEqual(self.find("alice", "budget meet"), ["the budget meeting"])
        self.assertEqual(self.find("alice", "b"), [])
        self.assertEqual(self.find("alice", "budget", other="bob", limit=1),
                         ["budget budget budget"])
        self.assertEqual(self.find("alice", "budget", other="bob", offset=1),
                         ["the budget meeting"])
        self.assertEqual(self.find("bob", "budget", group=gid), ["group budget"])

    def test_rank_window(self):
        """Only the newest RANK_WINDOW matches are ranked; paging deeper widens it."""
        self.patch(search, "RANK_WINDOW", 2)
        self.direct("alice", "bob", "tea tea tea")
        self.direct("alice", "bob", "tea")
        self.direct("alice", "bob", "tea and cake")
        self.assertEqual(self.find("bob", "tea", limit=2), ["tea", "tea and cake"])
        self.assertEqual(self.find("bob", "tea", offset=2, limit=1), ["tea and cake"])
        self.assertEqual(self.find("bob", "tea", offset=0, limit=3),
                         ["tea tea tea", "tea", "tea and cake"])

    def test_accents_and_case(self):
        """Case never matters; SQLite also folds accents."""
        self.direct("alice", "bob", "Crème BRÛLÉE")
        self.assertEqual(self.find("bob", "brûlée"), ["Crème BRÛLÉE"])
        self.assertEqual(self.find("bob", "CRÈ"), ["Crème BRÛLÉE"])

    def test_index_in_step(self):
        """Edits, deletions, purges and a deleted account leave no stale match."""
        first = self.direct("alice", "bob", "alpha one")
        self.direct("carol", "bob", "alpha two")
        self.write(edits.edit_txn, self.alice, first, "beta one", 5.0, 0.0)
        self.assertEqual(self.find("bob", "alpha"), ["alpha two"])
        self.assertEqual(self.find("bob", "beta"), ["beta one"])
        self.write(edits.delete_txn, self.alice, first, 6.0, 0.0)
        self.assertEqual(self.find("bob", "one"), [])
        self.write(adminops.delete_user_txn, "root", "carol", 7.0)
        self.assertEqual(self.find("bob", "alpha"), [])
        self.direct("alice", "bob", "gamma")
        self.write(messages.purge_older_than_txn, 10**9, 100)
        self.assertEqual(self.find("bob", "gamma"), [])
        if not self.connection.is_postgres:
            self.write(lambda txn: txn.execute(
                "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 0)"))

    def test_query_words(self):
        """Words are runs of letters and digits, folded, each once; none, too many or
        too long is refused."""
        self.assertEqual(search.query_words("Hello, hello WORLD_42 l'été"),
                         ["Hello", "WORLD", "42", "l", "été"])
        for query in ("", "--", " ".join(["w"] * 3) + " " + " ".join(
                f"w{n}" for n in range(16)), "z" * 65):
            self.assertRaises(search.BadQuery, search.query_words, query)

    def test_match_spans(self):
        """Spans are (start, length) in code points of every word a query word starts."""
        self.assertEqual(search.match_spans("Hé, héllo HELP h", ["he", "h"]),
                         [(0, 2), (4, 5), (10, 4), (15, 1)])


class SearchStoreTestsOnPostgres(OnPostgres, SearchStoreTests):
    """The same on PostgreSQL."""

    def test_accents_and_case(self):
        """Case does not matter as far as the database's LC_CTYPE folds it (a 'C' one,
        as here, folds ASCII only); accents matter ('simple' keeps them)."""
        self.direct("alice", "bob", "Crème BRÛLÉE")
        self.assertEqual(self.find("bob", "CRème"), ["Crème BRÛLÉE"])
        self.assertEqual(self.find("bob", "BRÛLÉE"), ["Crème BRÛLÉE"])
        self.assertEqual(self.find("bob", "creme"), [])


class UpgradeTests(unittest.TestCase):
    """Messages stored before schema 013/014 are found after the upgrade."""

    store_engine = "sqlite"

    @defer.inlineCallbacks
    def test_old_messages_indexed(self):
        """A database at schema 11 with messages, migrated to the latest, finds them."""
        location = yield services.database_for(self, migrated=False)
        connection = plain.open_plain(location)
        self.addCleanup(connection.close)
        older = [entry for entry in db.migrations() if entry[0] < 12]
        db.migrate_plain(connection, older, 1.0)

        def fill(txn):
            for name in ("ann", "ben"):
                txn.execute("INSERT INTO users (name, name_lower, email, email_lower,"
                            " password_hash, created, password_changed)"
                            " VALUES (?, ?, ?, ?, 'h', 1.0, 1.0)",
                            (name, name, f"{name}@x.org", f"{name}@x.org"))
            txn.execute("INSERT INTO messages (sender_id, recipient_id, client_id, body,"
                        " created) VALUES (1, 2, 'c1', 'stored before the upgrade', 1.0)")
        connection.write(fill)
        db.migrate_plain(connection, None, 2.0)
        rows = connection.read(search.find_txn, 2, None, None, ["upgrade"], 0, 10)
        self.assertEqual([row[5] for row in rows], ["stored before the upgrade"])


class UpgradeTestsOnPostgres(OnPostgres, UpgradeTests):
    """The same on PostgreSQL."""
