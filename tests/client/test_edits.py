"""The client core's edits, deletions, replies and search against a real server in this
process (real sockets, real SQLite): typed results, ``message_changed`` events live and
caught up after a reconnect, replies through the outbox, search pages with highlights
(messenger.client.edits), and the records' parsing."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from messenger.client.edits import MessageChange, SearchPage, SearchResult
from messenger.client.errors import BadRequest, Forbidden, NotFound
from messenger.client.events import IncomingMessage
from tests.client.test_integration import PASSWORD, ServerTestCase
from tests.support.server import start_server
from tests.support.twistd_server import wait_for


class EditClientTests(ServerTestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.server = yield start_server(self)
        self.port = self.server.tcp_port
        self.alice = yield self.online("alice")
        self.bob = yield self.online("bob")
        self.changes, self.received = [], []
        self.bob.subscribe("message_changed", self.changes.append)
        self.bob.subscribe("message", self.received.append)
        yield wait_for(lambda: self.bob.changes.cursor is not None, what="bob's change cursor")

    @defer.inlineCallbacks
    def online(self, name):
        client = self.client(self.port)
        yield client.register(name, PASSWORD, f"{name}@example.org")
        return client

    @defer.inlineCallbacks
    def test_edit_and_delete_live(self):
        """An edit and a deletion reach the other client as MessageChange events; the
        author gets the change as the result; a stranger's edit fails typed."""
        sent = yield self.alice.send_message("bob", "helo")
        change = yield self.alice.edit_message(sent["msg_id"], "hello")
        self.assertEqual((change.kind, change.text, change.by, change.recipient),
                         ("edited", "hello", "alice", "bob"))
        yield wait_for(lambda: self.changes, what="the edit at bob")
        self.assertEqual((self.changes[0].msg_id, self.changes[0].text,
                          self.changes[0].from_sync), (sent["msg_id"], "hello", False))
        yield self.assertFailure(self.bob.edit_message(sent["msg_id"], "mine"), Forbidden)
        deleted = yield self.alice.delete_message(sent["msg_id"])
        self.assertTrue(deleted.is_deleted)
        yield wait_for(lambda: len(self.changes) == 2, what="the deletion at bob")
        self.assertEqual((self.changes[1].kind, self.changes[1].text), ("deleted", ""))

    @defer.inlineCallbacks
    def test_changes_missed_while_away_arrive_after_login(self):
        """bob's client is stopped; alice edits; when bob's client logs in again, the
        edit arrives as a MessageChange caught up (from_sync)."""
        sent = yield self.alice.send_message("bob", "see you at 5")
        yield wait_for(lambda: self.received, what="the message at bob")
        yield self.bob.stop()
        yield self.alice.edit_message(sent["msg_id"], "see you at 6")
        yield self.bob.start()
        yield wait_for(lambda: self.changes, what="the caught-up edit")
        (change,) = self.changes
        self.assertEqual((change.msg_id, change.text, change.from_sync),
                         (sent["msg_id"], "see you at 6", True))

    @defer.inlineCallbacks
    def test_reply_and_search(self):
        """A reply through the outbox carries reply_to to the other side; search finds
        both sides' messages with highlights; a wordless query fails typed."""
        first = yield self.alice.send_message("bob", "Budget meeting at noon")
        yield self.bob.send_message("alice", "the budget is ready", reply_to=first["msg_id"])
        yield wait_for(lambda: self.received, what="alice's message")
        page = yield self.alice.search_messages("budg")
        self.assertIsInstance(page, SearchPage)
        self.assertEqual([r.message.text for r in page.results],
                         ["the budget is ready", "Budget meeting at noon"])
        self.assertEqual(page.results[0].message.reply_to, first["msg_id"])
        self.assertEqual(page.results[1].highlighted(), "[Budget] meeting at noon")
        self.assertEqual((page.more, page.next_offset), (False, 2))
        one = yield self.alice.search_messages("budget", with_user="bob", limit=1)
        self.assertEqual((len(one.results), one.more, one.next_offset), (1, True, 1))
        yield self.assertFailure(self.alice.search_messages("!!"), BadRequest)
        yield self.assertFailure(self.alice.search_messages("x", with_user="nobody"),
                                 NotFound)


class RecordTests(unittest.TestCase):

    def test_change_from_jim(self):
        """A push becomes a MessageChange; an unknown kind is refused."""
        change = MessageChange.from_jim({"change_id": 3, "msg_id": 9, "kind": "deleted",
                                         "message": "", "from": "a", "group": 4, "by": "o",
                                         "deleted": 5.0, "time": 1.0})
        self.assertEqual((change.group, change.recipient, change.is_deleted), (4, None, True))
        self.assertRaises(ValueError, MessageChange.from_jim,
                          {"change_id": 3, "msg_id": 9, "kind": "eaten", "message": "",
                           "from": "a"})

    def test_message_fields(self):
        """IncomingMessage keeps reply_to, edited and deleted when present and sane."""
        message = IncomingMessage.from_jim({"msg_id": 2, "time": 1.0, "from": "a",
                                            "to": "b", "message": "x", "reply_to": 1,
                                            "edited": 2.5, "deleted": "no"})
        self.assertEqual((message.reply_to, message.edited, message.deleted), (1, 2.5, None))

    def test_highlighted(self):
        """Matches are wrapped in the markers given."""
        result = SearchResult.from_jim({"msg_id": 2, "time": 1.0, "from": "a", "to": "b",
                                        "message": "héllo world", "matches": [[0, 5], [6, 5]]})
        self.assertEqual(result.highlighted("<b>", "</b>"), "<b>héllo</b> <b>world</b>")
