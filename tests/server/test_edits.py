"""Edit and delete for everyone over a real server on loopback: the other side sees the
change pushed live, or in ``sync_changes`` after being offline, and in ``history`` and
``sync``; a deleted body is gone from the database; the author's window; group admins
delete any message of their group; refusals change nothing
(messenger.server.handlers.edits)."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from messenger.server.tap import Options
from tests.server.people import barrier, login, quit_, rows, server_with
from tests.server.test_groups import class_of_five, error, no_push
from tests.support.services import OnPostgres


@defer.inlineCallbacks
def changes_all(client, since):
    """Every change above ``since``, following ``more``."""
    out = []
    while True:
        reply = yield client.request("sync_changes", since=since, limit=2)
        assert reply["response"] == 202, reply
        out.extend(reply["alert"])
        if not reply["more"]:
            return out
        since = reply["alert"][-1]["change_id"]


class DirectEditTests(unittest.TestCase):

    @defer.inlineCallbacks
    def setUp(self):
        self.server, (self.alice, self.bob, self.carol) = yield server_with(
            self, "alice", "bob", "carol")
        reply = yield self.alice.request("msg", to="bob", message="see you at 5")
        self.msg_id = reply["msg_id"]
        yield self.bob.wait_push("msg")

    @defer.inlineCallbacks
    def test_edit_is_pushed_stored_and_in_history(self):
        """The author's edit is answered with the change, pushed at once to the other
        side (not back to the author), stored, and shown by history with ``edited``."""
        reply = yield self.alice.request("edit_msg", msg_id=self.msg_id, message="see you at 6")
        self.assertEqual((reply["response"], reply["kind"], reply["message"], reply["by"]),
                         (200, "edited", "see you at 6", "alice"))
        push = yield self.bob.wait_push("msg_changed")
        self.assertEqual({k: push[k] for k in ("msg_id", "from", "to", "kind", "message")},
                         {"msg_id": self.msg_id, "from": "alice", "to": "bob",
                          "kind": "edited", "message": "see you at 6"})
        self.assertEqual(push["change_id"], reply["change_id"])
        self.assertEqual(push["edited"], reply["edited"])
        yield no_push(self, self.alice, "msg_changed")
        stored = yield rows(self.server, "SELECT body, edited FROM messages WHERE id = ?",
                            self.msg_id)
        self.assertEqual(stored, [("see you at 6", reply["edited"])])
        history = yield self.bob.request("history", **{"with": "alice"})
        (item,) = history["alert"]
        self.assertEqual((item["message"], item["edited"]), ("see you at 6", reply["edited"]))
        self.assertNotIn("deleted", item)

    @defer.inlineCallbacks
    def test_delete_removes_the_body_from_the_database(self):
        """A deletion empties the stored body (and the search index), pushes ``deleted``
        to the other side, and history shows the tombstone."""
        reply = yield self.alice.request("delete_msg", msg_id=self.msg_id)
        self.assertEqual((reply["response"], reply["kind"], reply["message"]),
                         (200, "deleted", ""))
        push = yield self.bob.wait_push("msg_changed")
        self.assertEqual((push["kind"], push["message"], push["deleted"]),
                         ("deleted", "", reply["deleted"]))
        stored = yield rows(self.server, "SELECT body, deleted FROM messages")
        self.assertEqual(stored, [("", reply["deleted"])])
        found = yield self.bob.request("search_messages", query="see")
        self.assertEqual(found["alert"], [])
        history = yield self.bob.request("history", **{"with": "alice"})
        self.assertEqual([(m["message"], m["deleted"]) for m in history["alert"]],
                         [("", reply["deleted"])])
        again = yield self.alice.request("delete_msg", msg_id=self.msg_id)
        self.assertEqual((again["response"], again["change_id"]), (200, reply["change_id"]))
        edit = yield self.alice.request("edit_msg", msg_id=self.msg_id, message="back")
        self.assertEqual(error(edit), (409, f"message {self.msg_id} was deleted: there is"
                                            " nothing to edit"))

    @defer.inlineCallbacks
    def test_offline_side_catches_up_with_sync_changes(self):
        """A recipient that was offline gets the edit and the deletion from
        ``sync_changes`` after logging in (each message once, as it is now), and the
        newest message's current state from ``sync``."""
        start = yield self.bob.request("sync_changes")
        self.assertEqual((start["response"], start["alert"]), (202, []))
        cursor = start["last_change"]
        second = yield self.alice.request("msg", to="bob", message="and bring cake")
        yield quit_(self.bob)
        yield self.alice.request("edit_msg", msg_id=self.msg_id, message="see you at 7")
        yield self.alice.request("edit_msg", msg_id=self.msg_id, message="see you at 8")
        yield self.alice.request("delete_msg", msg_id=second["msg_id"])
        third = yield self.alice.request("msg", to="bob", message="typo")
        yield self.alice.request("edit_msg", msg_id=third["msg_id"], message="fixed")
        self.bob = yield login(self, self.server, "bob")
        changes = yield changes_all(self.bob, cursor)
        self.assertEqual([(c["msg_id"], c["kind"], c["message"]) for c in changes],
                         [(self.msg_id, "edited", "see you at 8"),
                          (second["msg_id"], "deleted", ""),
                          (third["msg_id"], "edited", "fixed")])
        self.assertEqual(changes, sorted(changes, key=lambda c: c["change_id"]))
        synced = yield self.bob.request("sync", since=self.msg_id)
        self.assertEqual([(m["message"], "deleted" in m, "edited" in m)
                          for m in synced["alert"]],
                         [("", True, False), ("fixed", False, True)])
        none_left = yield self.bob.request("sync_changes", since=changes[-1]["change_id"])
        self.assertEqual(none_left["alert"], [])

    @defer.inlineCallbacks
    def test_refusals_change_nothing(self):
        """The recipient cannot edit or delete the sender's message (403), a third user
        learns nothing of it (404), and nothing is stored or pushed."""
        before = yield rows(self.server, "SELECT id, body, edited, deleted FROM messages")
        reply = yield self.bob.request("edit_msg", msg_id=self.msg_id, message="mine now")
        self.assertEqual(error(reply), (403, "you may only edit your own messages"))
        reply = yield self.bob.request("delete_msg", msg_id=self.msg_id)
        self.assertEqual(reply["response"], 403)
        self.assertIn("you may only delete your own messages", reply["error"])
        for action, fields in (("edit_msg", {"message": "x"}), ("delete_msg", {})):
            reply = yield self.carol.request(action, msg_id=self.msg_id, **fields)
            self.assertEqual(error(reply), (404, f"no message {self.msg_id} that you can see"))
            reply = yield self.alice.request(action, msg_id=self.msg_id + 100, **fields)
            self.assertEqual(reply["response"], 404)
        after = yield rows(self.server, "SELECT id, body, edited, deleted FROM messages")
        self.assertEqual(after, before)
        changes = yield rows(self.server, "SELECT COUNT(*) FROM message_changes")
        self.assertEqual(changes, [(0,)])
        yield no_push(self, self.alice, "msg_changed")
        yield no_push(self, self.bob, "msg_changed")

    @defer.inlineCallbacks
    def test_oversized_edit_is_refused(self):
        """An edit past the server's body limit is refused like such a message."""
        reply = yield self.alice.request("edit_msg", msg_id=self.msg_id, message="x" * 17000)
        self.assertEqual(error(reply), (400, "'message' is larger than 16384 bytes"))


class WindowTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_author_window(self):
        """Past the server's edit window the author may neither edit nor delete (403,
        saying how long the window is); nothing changes."""
        server, (alice, bob) = yield server_with(self, "alice", "bob", edit_window=1e-6)
        sent = yield alice.request("msg", to="bob", message="too late")
        yield barrier(alice)
        reply = yield alice.request("edit_msg", msg_id=sent["msg_id"], message="oops")
        self.assertEqual(reply["response"], 403)
        self.assertTrue(reply["error"].startswith("messages can be edited for "), reply)
        reply = yield alice.request("delete_msg", msg_id=sent["msg_id"])
        self.assertEqual(reply["response"], 403)
        stored = yield rows(server, "SELECT body, edited, deleted FROM messages")
        self.assertEqual(stored, [("too late", None, None)])

    def test_option(self):
        """--edit-window is in hours, 48 by default; 0 means no limit."""
        options = Options()
        options.parseOptions([])
        self.assertEqual(options.config.edit_window, 48 * 3600)
        options = Options()
        options.parseOptions(["--edit-window", "0.5"])
        self.assertEqual(options.config.edit_window, 1800)


class GroupEditTests(unittest.TestCase):

    @defer.inlineCallbacks
    def setUp(self):
        (self.server, (self.root, self.teacher, self.ann, self.ben, self.cat),
         self.gid) = yield class_of_five(self)
        reply = yield self.ann.request("msg", group=self.gid, message="answer is 42")
        self.msg_id = reply["msg_id"]
        for client in (self.teacher, self.ben, self.cat):
            yield client.wait_push("msg")

    @defer.inlineCallbacks
    def test_author_edit_reaches_every_member(self):
        """A member's edit of its group message is pushed to the other members."""
        reply = yield self.ann.request("edit_msg", msg_id=self.msg_id, message="answer is 41")
        self.assertEqual(reply["group"], self.gid)
        for client in (self.teacher, self.ben, self.cat):
            push = yield client.wait_push("msg_changed")
            self.assertEqual((push["group"], push["message"], push["by"]),
                             (self.gid, "answer is 41", "ann"))
        yield no_push(self, self.root, "msg_changed")

    @defer.inlineCallbacks
    def test_admin_deletes_any_message(self):
        """The group's owner deletes a student's message: the author and the others are
        told it was deleted by the teacher; a plain member cannot delete another's."""
        reply = yield self.ben.request("delete_msg", msg_id=self.msg_id)
        self.assertEqual(reply["response"], 403)
        reply = yield self.teacher.request("delete_msg", msg_id=self.msg_id)
        self.assertEqual((reply["response"], reply["by"]), (200, "teacher"))
        for client in (self.ann, self.ben, self.cat):
            push = yield client.wait_push("msg_changed")
            self.assertEqual((push["kind"], push["by"]), ("deleted", "teacher"))
        stored = yield rows(self.server, "SELECT body FROM messages WHERE id = ?", self.msg_id)
        self.assertEqual(stored, [("",)])

    @defer.inlineCallbacks
    def test_outsiders_and_late_joiners_learn_nothing(self):
        """The server admin, not a member, gets 404; a member added after the message
        neither gets the change pushed nor finds it in sync_changes."""
        reply = yield self.root.request("delete_msg", msg_id=self.msg_id)
        self.assertEqual(reply["response"], 404)
        yield self.teacher.request("group_add", group=self.gid, user_id="root")
        yield self.root.wait_push("group_member_added")
        yield self.ann.request("edit_msg", msg_id=self.msg_id, message="secret answer")
        yield self.ben.wait_push("msg_changed")
        yield no_push(self, self.root, "msg_changed")
        changes = yield self.root.request("sync_changes", since=0)
        self.assertEqual(changes["alert"], [])
        changes = yield self.ben.request("sync_changes", since=0)
        self.assertEqual([c["message"] for c in changes["alert"]], ["secret answer"])


class DirectEditTestsOnPostgres(OnPostgres, DirectEditTests):
    """The same on a PostgreSQL store."""


class GroupEditTestsOnPostgres(OnPostgres, GroupEditTests):
    """The same on a PostgreSQL store."""
