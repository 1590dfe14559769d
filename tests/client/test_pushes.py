"""Tests for messenger.client.pushes: pushes to event records, by a table."""

from __future__ import annotations

from typing import Any

from twisted.trial import unittest

from messenger.client.events import Observers
from messenger.client.pushes import PushDispatcher


class PushDispatcherTests(unittest.TestCase):
    def setUp(self) -> None:
        self.observers = Observers()
        self.seen: dict[str, list[Any]] = {}
        for kind in ("presence", "broadcast", "account", "notice", "call", "push"):
            self.observers.subscribe(kind, self.seen.setdefault(kind, []).append)
        self.messages: list[Any] = []
        self.accounts: list[Any] = []
        self.dispatch = PushDispatcher(self.observers, self.messages.append,
                                       self.accounts.append)

    def test_each_action_becomes_its_record(self):
        """presence, broadcast, account, notice, call pushes; msg goes to its handler."""
        self.dispatch({"action": "presence", "account_name": "bob", "status": "away",
                       "time": 1})
        self.dispatch({"action": "broadcast", "broadcast_id": 2, "time": 1, "from": "c",
                       "message": "hi all"})
        self.dispatch({"action": "account", "user": {"account_name": "alice",
                                                     "admin": True}})
        self.dispatch({"action": "notice", "message": "hello"})
        self.dispatch({"action": "call_end", "call_id": "c"})
        self.dispatch({"action": "msg", "msg_id": 1})
        self.assertEqual(self.seen["presence"][0].status, "away")
        self.assertEqual(self.seen["broadcast"][0].text, "hi all")
        self.assertTrue(self.seen["account"][0].admin and self.accounts[0].admin)
        self.assertEqual((self.seen["notice"][0].level, self.seen["notice"][0].message),
                         (100, "hello"))
        self.assertEqual(self.seen["call"][0].kind, "call_end")
        self.assertEqual(self.messages, [{"action": "msg", "msg_id": 1}])
        self.assertEqual(len(self.seen["push"]), 6)

    def test_contact_deleted_is_a_last_presence(self):
        """contact_deleted becomes a presence change to "deleted"; without a name it is
        dropped."""
        self.dispatch({"action": "contact_deleted", "account_name": "bob", "time": 5})
        self.dispatch({"action": "contact_deleted"})
        self.assertEqual([(c.account_name, c.status, c.time) for c in self.seen["presence"]],
                         [("bob", "deleted", 5)])

    def test_malformed_and_unknown_pushes_harm_nothing(self):
        """A push missing fields is dropped; an unknown action only reaches 'push'."""
        self.dispatch({"action": "broadcast", "message": "no id"})
        self.dispatch({"action": "from_the_future", "x": 1})
        self.assertEqual(self.seen["broadcast"], [])
        self.assertEqual([p["action"] for p in self.seen["push"]],
                         ["broadcast", "from_the_future"])

    def test_an_orphan_error_reply_is_a_notice(self):
        """The server's id-less error before it closes becomes a notice; successes not."""
        self.dispatch.orphan_reply({"response": 401, "error": "login timed out"})
        self.dispatch.orphan_reply({"response": 200})
        self.assertEqual([(n.level, n.message) for n in self.seen["notice"]],
                         [(401, "login timed out")])
