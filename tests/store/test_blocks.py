"""messenger.store.blocks on a real SQLite file and a real PostgreSQL database (the
``...OnPostgres`` twin): block, unblock, pages, gone users."""

from __future__ import annotations

from messenger.store import blocks, users
from messenger.store.errors import Duplicate, Missing
from tests.store.test_queries import StoreCase
from tests.support.services import OnPostgres


class BlocksStoreTests(StoreCase):

    def prepare(self):
        self.alice, self.bob, self.carol = (self.user(n).id for n in ("alice", "Bob", "carol"))

    def test_block_list_and_unblock(self):
        """Pairs go one way; the list is by name, after a name, with the time blocked."""
        self.write(blocks.block_txn, self.alice, self.carol, 5.0)
        self.write(blocks.block_txn, self.alice, self.bob, 6.0)
        self.write(blocks.block_txn, self.bob, self.alice, 7.0)
        self.assertEqual(self.read(blocks.list_page_txn, self.alice, "", 10),
                         [("Bob", 6.0), ("carol", 5.0)])
        self.assertEqual(self.read(blocks.list_page_txn, self.alice, "bob", 10),
                         [("carol", 5.0)])
        self.assertEqual(self.read(blocks.count_txn, self.alice), 2)
        self.assertEqual(sorted(self.read(blocks.all_pairs_txn)),
                         sorted([(self.alice, self.carol), (self.alice, self.bob),
                                 (self.bob, self.alice)]))
        self.assertTrue(self.write(blocks.unblock_txn, self.alice, self.bob))
        self.assertFalse(self.write(blocks.unblock_txn, self.alice, self.bob))
        self.assertEqual(self.read(blocks.count_txn, self.alice), 1)

    def test_duplicate_and_missing(self):
        """Blocking twice is `Duplicate`; blocking a user id that does not exist `Missing`."""
        self.write(blocks.block_txn, self.alice, self.bob, 1.0)
        with self.assertRaises(Duplicate):
            self.write(blocks.block_txn, self.alice, self.bob, 2.0)
        with self.assertRaises(Missing):
            self.write(blocks.block_txn, self.alice, 999, 2.0)

    def test_deleted_user_takes_their_pairs(self):
        """Deleting an account deletes the blocks it made and those made against it."""
        self.write(blocks.block_txn, self.alice, self.bob, 1.0)
        self.write(blocks.block_txn, self.bob, self.carol, 1.0)
        self.write(users.delete_txn, self.bob)
        self.assertEqual(self.read(blocks.all_pairs_txn), [])


class BlocksStoreTestsOnPostgres(OnPostgres, BlocksStoreTests):
    pass
