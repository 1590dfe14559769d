"""Blocking over a real server on loopback (messenger.server.handlers.blocks and the
checks on the message and call paths, messenger.server.blocks)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from messenger.server.blocks import Blocks
from tests.server.people import barrier, count, login, quit_, server_with
from tests.support.services import OnPostgres

REFUSED = "'alice' has blocked you: your messages and calls to them are refused"


class BlockActionsTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_block_list_and_unblock(self) -> Any:
        """Blocking by any case of a name lists the user (as registered, with the time);
        unblocking removes it; the list is the caller's own."""
        server, (alice, _, _) = yield server_with(self, "alice", "Bob", "carol")
        reply = yield alice.request("block_user", user_id="BOB")
        self.assertEqual((reply["response"], reply["blocked"]),
                         (201, {"account_name": "Bob"}))
        yield alice.request("block_user", user_id="carol")
        reply = yield alice.request("get_blocked")
        self.assertEqual(reply["response"], 202)
        self.assertEqual([b["account_name"] for b in reply["alert"]], ["Bob", "carol"])
        self.assertTrue(all(isinstance(b["since"], float) for b in reply["alert"]))
        self.assertFalse(reply["more"])
        page = yield alice.request("get_blocked", limit=1)
        self.assertEqual(([b["account_name"] for b in page["alert"]], page["more"]),
                         (["Bob"], True))
        page = yield alice.request("get_blocked", after="bob", limit=1)
        self.assertEqual([b["account_name"] for b in page["alert"]], ["carol"])
        reply = yield alice.request("unblock_user", user_id="bob")
        self.assertEqual(reply["response"], 200)
        reply = yield alice.request("get_blocked")
        self.assertEqual([b["account_name"] for b in reply["alert"]], ["carol"])
        stored = yield count(server, "blocks")
        self.assertEqual(stored, 1)

    @defer.inlineCallbacks
    def test_errors(self) -> Any:
        """Unknown name 404, yourself 400, twice 409, unblocking someone not blocked 404."""
        server, (alice, _) = yield server_with(self, "alice", "bob")
        reply = yield alice.request("block_user", user_id="nobody")
        self.assertEqual((reply["response"], reply["error"]), (404, "no user named 'nobody'"))
        reply = yield alice.request("block_user", user_id="Alice")
        self.assertEqual((reply["response"], reply["error"]),
                         (400, "you cannot block yourself"))
        yield alice.request("block_user", user_id="bob")
        reply = yield alice.request("block_user", user_id="bob")
        self.assertEqual((reply["response"], reply["error"]), (409, "'bob' is already blocked"))
        yield alice.request("unblock_user", user_id="bob")
        reply = yield alice.request("unblock_user", user_id="bob")
        self.assertEqual((reply["response"], reply["error"]), (404, "'bob' is not blocked"))
        reply = yield alice.request("unblock_user", user_id="nobody")
        self.assertEqual(reply["response"], 404)


class BlockedMessagesTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_blocked_sender_is_refused_and_nothing_is_stored(self) -> Any:
        """After alice blocks bob, bob's message to her gets 403 with the documented
        sentence, is not stored and not pushed; alice can still write to bob; after the
        unblock bob's messages go through again."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        yield alice.request("block_user", user_id="bob")
        reply = yield bob.request("msg", to="alice", message="hello?")
        self.assertEqual((reply["response"], reply["error"]), (403, REFUSED))
        stored = yield count(server, "messages")
        self.assertEqual(stored, 0)
        reply = yield alice.request("msg", to="bob", message="I blocked you")
        self.assertEqual(reply["response"], 200)
        push = yield bob.wait_push("msg")
        self.assertEqual(push["message"], "I blocked you")
        yield barrier(alice)
        self.assertFalse([m for m in alice.pushes if m.get("action") == "msg"])
        yield alice.request("unblock_user", user_id="bob")
        reply = yield bob.request("msg", to="alice", message="again")
        self.assertEqual(reply["response"], 200)
        push = yield alice.wait_push("msg")
        self.assertEqual(push["message"], "again")

    @defer.inlineCallbacks
    def test_block_survives_a_server_restart(self) -> Any:
        """The pairs are read from the database at start: after a restart bob is still
        refused."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        yield alice.request("block_user", user_id="bob")
        yield quit_(bob)
        yield server.stop()
        yield server.start()
        bob = yield login(self, server, "bob")
        reply = yield bob.request("msg", to="alice", message="after the restart")
        self.assertEqual((reply["response"], reply["error"]), (403, REFUSED))

    @defer.inlineCallbacks
    def test_blocked_caller_is_refused(self) -> Any:
        """bob, a contact of alice's, cannot ring her once she blocked him; nothing rings."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        for client, other in ((alice, "bob"), (bob, "alice")):
            yield client.request("add_contact", user_id=other)
        yield alice.request("block_user", user_id="bob")
        reply = yield bob.request("call_dial", user_id="alice")
        self.assertEqual((reply["response"], reply["error"]), (403, REFUSED))
        yield barrier(alice)
        self.assertFalse([m for m in alice.pushes if m.get("action") == "call_ring"])


class BlockActionsTestsOnPostgres(OnPostgres, BlockActionsTests):
    pass


class BlockedMessagesTestsOnPostgres(OnPostgres, BlockedMessagesTests):
    pass


class BlocksComponentTests(unittest.TestCase):

    def test_check_is_one_direction(self) -> None:
        """A pair refuses only the blocked user's messages to the owner, until removed."""
        blocks = Blocks(db=None)
        blocks.added(1, 2)
        with self.assertRaises(Exception) as caught:
            blocks.check(1, 2, "alice")
        self.assertEqual(caught.exception.code, 403)
        blocks.check(2, 1, "bob")                   # the other way is allowed
        self.assertTrue(blocks.blocked(1, 2))
        blocks.removed(1, 2)
        blocks.check(1, 2, "alice")
        self.assertFalse(blocks.blocked(1, 2))
