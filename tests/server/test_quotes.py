"""Replies over a real server on loopback: a message quoting an earlier one of the same
conversation carries ``reply_to`` in the push, history and sync; a quote from another
conversation (or from before a member joined its group) is refused with nothing stored;
a resent reply is stored once (messenger.store.replies, handlers.messages)."""

from __future__ import annotations

import os
import time

from twisted.internet import defer
from twisted.trial import unittest

from tests.server.people import login, quit_, rows, server_with
from tests.server.test_groups import class_of_five, error, no_push
from tests.support.services import OnPostgres

ELSEWHERE = "'reply_to': no message {} in this conversation (a reply quotes an earlier" \
            " message of the same conversation)"


class DirectReplyTests(unittest.TestCase):

    @defer.inlineCallbacks
    def setUp(self):
        self.server, (self.alice, self.bob, self.carol) = yield server_with(
            self, "alice", "bob", "carol")
        reply = yield self.alice.request("msg", to="bob", message="lunch?")
        self.first = reply["msg_id"]
        yield self.bob.wait_push("msg")

    @defer.inlineCallbacks
    def test_reply_in_push_history_and_sync(self):
        """bob's reply quoting alice's message is pushed with ``reply_to``, stored with
        it, and history and sync (after alice was offline) show it."""
        reply = yield self.bob.request("msg", to="alice", message="yes!", reply_to=self.first)
        self.assertEqual(reply["response"], 200)
        push = yield self.alice.wait_push("msg")
        self.assertEqual((push["message"], push["reply_to"]), ("yes!", self.first))
        history = yield self.alice.request("history", **{"with": "bob"})
        self.assertEqual([m.get("reply_to") for m in history["alert"]], [None, self.first])
        yield quit_(self.alice)
        again = yield self.bob.request("msg", to="alice", message="12:30",
                                       reply_to=reply["msg_id"])
        self.alice = yield login(self, self.server, "alice")
        synced = yield self.alice.request("sync", since=reply["msg_id"])
        self.assertEqual([(m["msg_id"], m["reply_to"]) for m in synced["alert"]],
                         [(again["msg_id"], reply["msg_id"])])

    @defer.inlineCallbacks
    def test_reply_to_another_conversation_is_refused(self):
        """Quoting a message of alice and bob in a message to carol, or a message id that
        does not exist, is 404 and stores and pushes nothing."""
        before = yield rows(self.server, "SELECT COUNT(*) FROM messages")
        for quoted in (self.first, self.first + 50):
            reply = yield self.alice.request("msg", to="carol", message="fwd",
                                             reply_to=quoted)
            self.assertEqual(error(reply), (404, ELSEWHERE.format(quoted)))
        reply = yield self.carol.request("msg", to="bob", message="hi", reply_to=self.first)
        self.assertEqual(reply["response"], 404)
        after = yield rows(self.server, "SELECT COUNT(*) FROM messages")
        self.assertEqual(after, before)
        yield no_push(self, self.carol, "msg")
        yield no_push(self, self.bob, "msg")

    @defer.inlineCallbacks
    def test_resent_reply_is_stored_once(self):
        """A reply resent with the same request id on a new connection is acknowledged
        with the first copy."""
        request_id = os.urandom(16).hex()
        fields = {"action": "msg", "id": request_id, "to": "alice", "message": "sure",
                  "reply_to": self.first}
        first = yield self._send(self.bob, fields)
        yield quit_(self.bob)
        self.bob = yield login(self, self.server, "bob")
        second = yield self._send(self.bob, fields)
        self.assertEqual(second["msg_id"], first["msg_id"])
        stored = yield rows(self.server, "SELECT COUNT(*) FROM messages WHERE reply_to = ?",
                            self.first)
        self.assertEqual(stored, [(1,)])

    def _send(self, client, fields):
        """Send a request with a chosen id; fires with its reply."""
        d = defer.Deferred()
        client.pending[fields["id"]] = d
        client.send_raw({**fields, "time": time.time()})
        return d


class GroupReplyTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_group_reply_and_windows(self):
        """A member's reply to a group message is pushed with ``reply_to``; a member added
        later cannot quote a message from before it joined, nor can anyone quote a
        direct message in the group."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        question = yield teacher.request("msg", group=gid, message="who knows?")
        answer = yield ann.request("msg", group=gid, message="me", reply_to=question["msg_id"])
        self.assertEqual(answer["response"], 200)
        push = yield ben.wait_push("msg")
        push = yield ben.wait_push("msg")
        self.assertEqual((push["message"], push["reply_to"]), ("me", question["msg_id"]))
        history = yield cat.request("history", group=gid)
        self.assertEqual([m.get("reply_to") for m in history["alert"]],
                         [None, question["msg_id"]])
        yield teacher.request("group_add", group=gid, user_id="root")
        reply = yield root.request("msg", group=gid, message="late", reply_to=question["msg_id"])
        self.assertEqual(error(reply), (404, ELSEWHERE.format(question["msg_id"])))
        direct = yield ann.request("msg", to="ben", message="psst")
        reply = yield ann.request("msg", group=gid, message="x", reply_to=direct["msg_id"])
        self.assertEqual(reply["response"], 404)
        stored = yield rows(server, "SELECT COUNT(*) FROM messages WHERE group_id = ?", gid)
        self.assertEqual(stored, [(2,)])


class DirectReplyTestsOnPostgres(OnPostgres, DirectReplyTests):
    """The same on a PostgreSQL store."""


class GroupReplyTestsOnPostgres(OnPostgres, GroupReplyTests):
    """The same on a PostgreSQL store."""
