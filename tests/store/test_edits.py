"""Edits, deletions and the change feed in the store, on a real SQLite file and (the
...OnPostgres twins) a real PostgreSQL database: who may change what, the window, the
tombstone, one change row per message with a new id per change, the feed of each user by
the rules of sync (messenger.store.edits)."""

from __future__ import annotations

from messenger.store import edits, groupchanges, groups
from tests.store.test_groups import GroupCase
from tests.support.services import OnPostgres

HOUR = 3600.0


class EditTests(GroupCase):

    def test_author_edits_within_the_window(self):
        """The author's edit replaces the body and is seen by the other side only."""
        msg_id = self.direct("alice", "bob", "helo")
        change = self.write(edits.edit_txn, self.alice, msg_id, "hello", 10.0, HOUR)
        self.assertEqual((change.body, change.kind, change.edited, change.actor,
                          change.audience), ("hello", "edited", 10.0, "alice", (self.bob,)))
        late = self.assertRaises(edits.NotAllowed, self.write, edits.edit_txn, self.alice,
                                 msg_id, "x", msg_id + HOUR + 1.0, HOUR)
        self.assertEqual(str(late), "messages can be edited for 1 hour after they were sent")
        self.write(edits.edit_txn, self.alice, msg_id, "no limit", 10**9, 0.0)

    def test_who_may_see_and_change(self):
        """The recipient may not edit (NotAllowed); anyone else does not see it."""
        msg_id = self.direct("alice", "bob")
        self.assertRaises(edits.NotAllowed, self.write, edits.edit_txn, self.bob, msg_id,
                          "x", 1.0, HOUR)
        self.assertRaises(edits.NoSuchMessage, self.write, edits.edit_txn, self.carol,
                          msg_id, "x", 1.0, HOUR)
        self.assertRaises(edits.NoSuchMessage, self.write, edits.delete_txn, self.carol,
                          msg_id + 5, 1.0, HOUR)

    def test_delete_leaves_a_tombstone(self):
        """A deletion empties the body in the row; a second one changes nothing; an
        edit after it is refused."""
        msg_id = self.direct("alice", "bob", "oops")
        change, new = self.write(edits.delete_txn, self.alice, msg_id, 5.0, HOUR)
        self.assertEqual((change.body, change.kind, change.deleted, new),
                         ("", "deleted", 5.0, True))
        again, new = self.write(edits.delete_txn, self.alice, msg_id, 6.0, HOUR)
        self.assertEqual((again.change_id, again.deleted, new), (change.change_id, 5.0, False))
        self.assertRaises(edits.AlreadyDeleted, self.write, edits.edit_txn, self.alice,
                          msg_id, "x", 7.0, HOUR)
        self.assertEqual(self.sync("bob"), [("", "bob", None)])

    def test_group_managers_delete_anything(self):
        """The owner deletes a member's old message past the author's window; a plain
        member cannot; the change reaches every member whose window holds it."""
        gid = self.create()
        (msg_id, *_), = [self.post("bob", gid, "spam")]
        self.assertRaises(edits.NotAllowed, self.write, edits.delete_txn, self.carol,
                          msg_id, 2.0, HOUR)
        change, _ = self.write(edits.delete_txn, self.alice, msg_id, 10**6, HOUR)
        self.assertEqual((change.actor, change.audience), ("alice", (self.bob, self.carol)))

    def test_change_feed_follows_sync_rules(self):
        """Each user's changes: its direct conversations, its group windows (a member
        added later sees no change of earlier messages), each message once with its
        latest change, in change order."""
        gid = self.create(members=("bob",))
        early = self.post("bob", gid, "early")[0]
        self.write(groupchanges.add_txn, self.alice, gid, "carol", 20.0, groups.Limits())
        late = self.post("bob", gid, "late")[0]
        direct = self.direct("dave", "carol", "hey")
        for msg_id, author in ((early, self.bob), (late, self.bob), (direct, self.dave)):
            self.write(edits.edit_txn, author, msg_id, "v2", 30.0, 0.0)
        self.write(edits.edit_txn, self.bob, early, "v3", 31.0, 0.0)
        carol = [(c.msg_id, c.body) for c in self.read(edits.changes_txn, self.carol, 0, 10)]
        self.assertEqual(carol, [(late, "v2"), (direct, "v2")])
        alice = self.read(edits.changes_txn, self.alice, 0, 10)
        self.assertEqual([(c.msg_id, c.body) for c in alice], [(late, "v2"), (early, "v3")])
        after = self.read(edits.changes_txn, self.alice, alice[0].change_id, 10)
        self.assertEqual([c.msg_id for c in after], [early])
        self.assertEqual(self.read(edits.changes_txn, self.alice, 0, 1)[0].msg_id, late)
        self.assertEqual(self.read(edits.last_change_txn), alice[-1].change_id)


class EditTestsOnPostgres(OnPostgres, EditTests):
    """The same on PostgreSQL."""
