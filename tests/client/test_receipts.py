"""The client core's receipts: batched per conversation (a clock drives the delay),
waiting while offline, the book of others' receipts behind the ticks, and end to end
against a real server: delivered by itself, read on request, and what an offline sender
missed read after its next login (messenger.client.receipts)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.trial import unittest

from messenger.client.errors import NotConnected
from messenger.client.events import IncomingMessage, Observers
from messenger.client.receipts import DELIVERED, READ, SENT, ReceiptBook, Receipts, ReceiptUpdate
from tests.client.test_integration import PASSWORD, ServerTestCase
from tests.server.people import rows, wait_until
from tests.support.server import start_server
from tests.support.services import OnPostgres
from tests.support.twistd_server import wait_for


class FakeConnection:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.replies: list[defer.Deferred[Any]] = []

    def request(self, action: str, fields: dict[str, Any]) -> defer.Deferred[Any]:
        self.sent.append((action, fields))
        d: defer.Deferred[Any] = defer.Deferred()
        self.replies.append(d)
        return d


def incoming(msg_id: int, sender: str = "bob", group: int | None = None) -> IncomingMessage:
    return IncomingMessage(msg_id, 0.0, sender, None if group else "me", "hi", group=group)


class BatchingTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.observers = Observers()
        self.receipts = Receipts(self.observers, self.clock, delay=1.0)
        self.connection = FakeConnection()
        self.receipts.attach(self.connection)  # type: ignore[arg-type]

    def test_one_receipt_per_conversation_after_the_delay(self):
        """Many messages of two conversations make one delivered receipt each, with the
        highest id, after the delay, not before."""
        self.receipts.delivered([incoming(1), incoming(2), incoming(3, group=7),
                                 incoming(5), incoming(4, "cat", group=7)])
        self.clock.advance(0.9)
        self.assertEqual(self.connection.sent, [])
        self.clock.advance(0.1)
        self.assertEqual(sorted(self.connection.sent, key=str), sorted([
            ("receipt", {"kind": "delivered", "up_to": 5, "with": "bob"}),
            ("receipt", {"kind": "delivered", "up_to": 4, "group": 7})], key=str))

    def test_a_read_replaces_the_delivered_it_covers(self):
        """A read at or above the delivered id goes alone; a read below it goes with the
        delivered one; messages to oneself are not receipted."""
        self.receipts.delivered([incoming(3), incoming(4, "cat")])
        self.receipts.delivered([IncomingMessage(9, 0.0, "me", "me", "note")])
        self.receipts.read(3, with_user="Bob")
        self.receipts.read(2, with_user="cat")
        self.receipts.flush()
        self.assertEqual(sorted(self.connection.sent, key=str), sorted([
            ("receipt", {"kind": "read", "up_to": 3, "with": "bob"}),
            ("receipt", {"kind": "read", "up_to": 2, "with": "cat"}),
            ("receipt", {"kind": "delivered", "up_to": 4, "with": "cat"})], key=str))

    def test_offline_receipts_wait_for_the_next_session(self):
        """Receipts made offline, or lost with the connection, go out after the next
        login; one the server refused is dropped."""
        self.receipts.detach()
        self.receipts.read(8, group_id=2)
        self.clock.advance(5)
        self.assertEqual(self.connection.sent, [])
        self.receipts.attach(self.connection)  # type: ignore[arg-type]
        self.clock.advance(1)
        self.assertEqual(self.connection.sent, [("receipt", {"kind": "read", "up_to": 8,
                                                             "group": 2})])
        self.connection.replies[0].errback(NotConnected("gone"))
        self.clock.advance(1)
        self.assertEqual(len(self.connection.sent), 2)
        from messenger.wire.errors import BadRequest
        self.connection.replies[1].errback(BadRequest("'up_to' is past the end"))
        self.clock.advance(5)
        self.assertEqual(len(self.connection.sent), 2)

    def test_sync_pages_and_events(self):
        """With a receipt observer, a login reads sync_receipts page by page from the
        cursor; each change is one event; a repeat is none."""
        heard: list[ReceiptUpdate] = []
        self.observers.subscribe("receipt", heard.append)
        connection = FakeConnection()
        self.receipts.attach(connection)  # type: ignore[arg-type]
        self.assertEqual(connection.sent, [("sync_receipts", {"since": 0, "limit": 500})])
        connection.replies[0].callback({"response": 202, "more": True, "alert": [
            {"reader": "bob", "delivered_up_to": 5, "read_up_to": 3, "seq": 4}]})
        self.assertEqual(connection.sent[1], ("sync_receipts", {"since": 4, "limit": 500}))
        connection.replies[1].callback({"response": 202, "more": False, "alert": [
            {"reader": "cat", "group": 7, "delivered_up_to": 9, "read_up_to": 0, "seq": 6},
            {"reader": "bob", "delivered_up_to": 5, "read_up_to": 3, "seq": 7},
            {"reader": 5, "seq": 8}]})
        self.assertEqual(heard, [ReceiptUpdate("bob", None, 5, 3),
                                 ReceiptUpdate("cat", 7, 9, 0)])
        self.assertEqual(self.receipts.cursor, 7)
        self.receipts.pushed({"action": "receipt", "reader": "cat", "group": 7,
                              "delivered_up_to": 9, "read_up_to": 9, "seq": 9})
        self.assertEqual(heard[-1], ReceiptUpdate("cat", 7, 9, 9))


class BookTests(unittest.TestCase):
    def test_ticks_and_readers(self):
        """An own message is sent, delivered or read by the highest receipts; in a group
        the readers are named."""
        book = ReceiptBook()
        book.merge(ReceiptUpdate("Bob", None, 10, 5))
        self.assertEqual([book.status(n, to="bob") for n in (4, 5, 8, 11)],
                         [READ, READ, DELIVERED, SENT])
        self.assertFalse(book.merge(ReceiptUpdate("bob", None, 9, 4)))
        book.merge(ReceiptUpdate("ann", 3, 20, 20))
        book.merge(ReceiptUpdate("Cat", 3, 20, 12))
        self.assertEqual(book.readers(3, 15), ["ann"])
        self.assertEqual(book.readers(3, 12), ["ann", "Cat"])
        self.assertEqual(book.delivered_to(3, 15), ["ann", "Cat"])
        self.assertEqual(book.status(25, group=3), SENT)


class ClientReceiptTests(ServerTestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.server = yield start_server(self)
        self.port = self.server.tcp_port

    @defer.inlineCallbacks
    def online(self, name, **kwargs):
        client = self.client(self.port, receipt_delay=0.05, **kwargs)
        yield client.register(name, PASSWORD, f"{name}@example.org")
        return client

    @defer.inlineCallbacks
    def test_ticks_from_sent_to_delivered_to_read(self):
        """Bob's client receipts alice's messages as delivered by itself, and as read
        when asked; alice's client shows each message's tick moving on."""
        alice = yield self.online("alice")
        bob = yield self.online("bob")
        heard = []
        alice.subscribe("receipt", heard.append)
        first = yield alice.send_message("bob", "one")
        second = yield alice.send_message("bob", "two")
        yield wait_for(lambda: alice.receipts.status(second["msg_id"], to="bob") == DELIVERED,
                       what="delivered at alice")
        self.assertEqual(alice.receipts.status(first["msg_id"], to="bob"), DELIVERED)
        bob.receipts.read(first["msg_id"], with_user="alice")
        yield wait_for(lambda: alice.receipts.status(first["msg_id"], to="bob") == READ,
                       what="read at alice")
        self.assertEqual(alice.receipts.status(second["msg_id"], to="bob"), DELIVERED)
        self.assertEqual(heard[-1], ReceiptUpdate("bob", None, second["msg_id"],
                                                  first["msg_id"]))

    @defer.inlineCallbacks
    def test_an_offline_sender_sees_them_after_its_next_start(self):
        """Receipts made while alice's program was closed reach a new program of hers
        after login; read receipts turned off show delivery only."""
        config = self.mktemp()
        alice = yield self.online("alice", config_dir=config)
        bob = yield self.online("bob")
        cat = yield self.online("cat")
        to_bob = yield alice.send_message("bob", "hi bob")
        to_cat = yield alice.send_message("cat", "hi cat")
        yield alice.stop()
        stored = yield cat.set_read_receipts(False)
        self.assertFalse(stored)
        bob.receipts.read(to_bob["msg_id"], with_user="alice")
        cat.receipts.read(to_cat["msg_id"], with_user="alice")
        yield wait_until(lambda: rows(self.server, "SELECT COUNT(*) FROM read_markers"
                                                   " WHERE up_to > 0").addCallback(
            lambda found: found == [(2,)]))
        again = self.client(self.port, config_dir=config)
        again.subscribe("receipt", lambda update: None)
        yield again.start()
        yield wait_for(lambda: again.receipts.status(to_bob["msg_id"], to="bob") == READ,
                       what="bob's read receipt at alice")
        yield wait_for(lambda: again.receipts.status(to_cat["msg_id"], to="cat") == DELIVERED,
                       what="cat's delivery at alice")


class ClientReceiptTestsOnPostgres(OnPostgres, ClientReceiptTests):
    pass
