"""The client core's typing notices: at most one per conversation every few seconds,
only online; received ones expire without a word, stop when the typist's message
arrives or the connection ends; end to end through a real server
(messenger.client.typing)."""

from __future__ import annotations

from twisted.internet import defer, task
from twisted.trial import unittest

from messenger.client.events import IncomingMessage, Observers
from messenger.client.typing import Typing, TypingEvent
from tests.client.test_integration import PASSWORD, ServerTestCase
from tests.client.test_receipts import FakeConnection
from tests.support.server import start_server
from tests.support.twistd_server import wait_for


class TypingUnitTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.observers = Observers()
        self.heard: list[TypingEvent] = []
        self.observers.subscribe("typing", self.heard.append)
        self.typing = Typing(self.observers, self.clock, interval=3.0, expires=7.0)
        self.connection = FakeConnection()

    def test_sent_at_most_every_interval_and_only_online(self):
        """Keystrokes make one notice per conversation per interval; none offline."""
        self.assertFalse(self.typing.typing(to="bob"))
        self.typing.attach(self.connection)  # type: ignore[arg-type]
        sent = [self.typing.typing(to="bob")]
        for _ in range(10):
            self.clock.advance(0.25)
            sent.append(self.typing.typing(to="bob"))
        sent.append(self.typing.typing(group=4))
        self.clock.advance(0.5)
        sent.append(self.typing.typing(to="Bob"))
        self.assertEqual(sent, [True] + [False] * 10 + [True, True])
        self.assertEqual(self.connection.sent, [("typing", {"to": "bob"}),
                                                ("typing", {"group": 4}),
                                                ("typing", {"to": "Bob"})])

    def test_received_typing_expires_unless_renewed(self):
        """A typist shows from the first notice, stays while notices keep coming, and
        is gone the expiry time after the last one: one start and one stop event."""
        self.typing.pushed({"action": "typing", "from": "bob", "to": "me"})
        self.assertEqual(self.typing.typists(with_user="BOB"), ["bob"])
        for _ in range(3):
            self.clock.advance(3)
            self.typing.pushed({"action": "typing", "from": "bob", "to": "me"})
        self.clock.advance(6.9)
        self.assertEqual(self.typing.typists(with_user="bob"), ["bob"])
        self.clock.advance(0.2)
        self.assertEqual(self.typing.typists(with_user="bob"), [])
        self.assertEqual(self.heard, [TypingEvent("bob", None, True),
                                      TypingEvent("bob", None, False)])

    def test_a_message_or_a_lost_connection_ends_it(self):
        """The typist's message in that conversation stops it at once (not one in
        another conversation); a lost connection stops everyone."""
        self.typing.pushed({"action": "typing", "from": "ann", "group": 5})
        self.typing.pushed({"action": "typing", "from": "ben", "group": 5})
        self.typing.arrived([IncomingMessage(1, 0.0, "ann", "me", "direct")])
        self.assertEqual(self.typing.typists(group=5), ["ann", "ben"])
        self.typing.arrived([IncomingMessage(2, 0.0, "ann", None, "done", group=5)])
        self.assertEqual(self.typing.typists(group=5), ["ben"])
        self.typing.detach()
        self.assertEqual(self.typing.typists(group=5), [])
        self.assertEqual(self.heard[-2:], [TypingEvent("ann", 5, False),
                                           TypingEvent("ben", 5, False)])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertRaises(TypeError, self.typing.pushed, {"from": 5, "to": "me"})


class ClientTypingTests(ServerTestCase):
    @defer.inlineCallbacks
    def test_typing_reaches_the_other_client(self):
        """alice types to bob and in a group: bob's client hears that she is typing in
        each conversation, and that she stopped when her message arrives."""
        server = yield start_server(self)
        alice, bob = self.client(server.tcp_port), self.client(server.tcp_port)
        yield alice.register("alice", PASSWORD, "alice@example.org")
        yield bob.register("bob", PASSWORD, "bob@example.org")
        reply = yield alice.group_create("pair", members=["bob"])
        gid = reply["group"]["group_id"]
        heard = []
        bob.subscribe("typing", heard.append)
        self.assertTrue(alice.notify_typing(to="bob"))
        self.assertFalse(alice.notify_typing(to="bob"))
        self.assertTrue(alice.notify_typing(group=gid))
        yield wait_for(lambda: len(heard) == 2, what="two typing events at bob")
        self.assertEqual(sorted(heard, key=str), sorted([TypingEvent("alice", None, True),
                                                          TypingEvent("alice", gid, True)],
                                                         key=str))
        yield alice.send_message("bob", "there")
        yield wait_for(lambda: len(heard) == 3, what="the stop at bob")
        self.assertEqual(heard[2], TypingEvent("alice", None, False))
        self.assertEqual(bob.typing.typists(group=gid), ["alice"])
