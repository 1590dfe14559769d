"""Replies in the store, on a real SQLite file and (the ...OnPostgres twins) a real
PostgreSQL database: a quote is checked in the batch that stores the reply, in batch
order with the other rows, and read back by history and sync (messenger.store.replies)."""

from __future__ import annotations

from messenger.store import groupmsgs, messages, replies
from tests.store.test_groups import GroupCase
from tests.support.services import OnPostgres


class ReplyStoreTests(GroupCase):

    def test_direct_replies_in_a_mixed_batch(self):
        """In one batch: a reply in either direction is stored with its quote, one into
        another conversation is refused, and ids still follow the batch's order."""
        first = self.direct("alice", "bob", "q")
        results = self.write(messages.insert_batch_txn, [
            (self.bob, self.alice, "r1", "a", 1.0, first),
            (self.alice, self.bob, "r2", "plain", 2.0),
            (self.carol, self.bob, "r3", "b", 3.0, first),
            (self.alice, self.bob, "r4", "c", 4.0, first)])
        self.assertEqual(results[2], replies.REPLY_ELSEWHERE)
        ids = [results[k][0] for k in (0, 1, 3)]
        self.assertEqual(ids, sorted(ids))
        history = self.read(messages.history_txn, self.alice, self.bob, None, 10)
        self.assertEqual([(row[4], row[5]) for row in history],
                         [("q", None), ("a", first), ("plain", None), ("c", first)])
        again = self.write(messages.insert_batch_txn,
                           [(self.bob, self.alice, "r1", "a", 1.0, first)])
        self.assertEqual(again, [(ids[0], 1.0, False)])

    def test_group_replies_respect_windows(self):
        """A member quotes a message of its group from its own windows; a group message
        cannot quote a direct one, nor one of another group."""
        gid = self.create()
        other = self.create(owner="dave", members=("bob",))
        question = self.post("alice", gid, "q")[0]
        elsewhere = self.post("dave", other, "x")[0]
        direct = self.direct("bob", "alice")
        item = (self.bob, gid, "g1", "a", 1.0, (), question)
        (stored,) = self.write(groupmsgs.insert_batch_txn, [item])
        self.assertTrue(stored[2])
        for n, quoted in enumerate((elsewhere, direct, question + 100)):
            (refused,) = self.write(groupmsgs.insert_batch_txn,
                                    [(self.bob, gid, f"g{n + 2}", "b", 1.0, (), quoted)])
            self.assertEqual(refused, replies.REPLY_ELSEWHERE)
        rows = self.read(groupmsgs.history_txn, self.carol, gid, None, 10)
        self.assertEqual([row[6] for row in rows], [None, question])


class ReplyStoreTestsOnPostgres(OnPostgres, ReplyStoreTests):
    """The same on PostgreSQL."""
