"""Tests for messenger.client.outbox: what is sent when, and what becomes of it."""

from __future__ import annotations

from twisted.trial import unittest

from messenger.client.outbox import ACKED, FAILED, PENDING, Outbox
from messenger.wire.errors import NotFound


def ids(entries):
    return [entry.request_id for entry in entries]


class OutboxTests(unittest.TestCase):
    def setUp(self):
        self.outbox = Outbox(window=4)
        self.counter = 0

    def add(self, to="bob", text=None):
        self.counter += 1
        return self.outbox.add(to, text or f"m{self.counter}", f"{self.counter:032x}", 0.0)

    def test_first_message_to_a_recipient_travels_alone(self):
        """Until one message to a recipient is acknowledged on a connection, only one is in
        flight to it, so the server resolves the name once and stores them in order."""
        first, second, third = self.add(), self.add(), self.add()
        self.assertEqual(self.outbox.due(0), [first])
        self.assertEqual(self.outbox.due(0), [])
        self.outbox.acked(first, 1, 1.0)
        self.assertEqual(self.outbox.due(0), [second, third])

    def test_other_recipients_are_not_held_up(self):
        """A cold recipient's queue blocks only that recipient."""
        to_bob, to_bob_2, to_carol = self.add("bob"), self.add("bob"), self.add("carol")
        self.assertEqual(self.outbox.due(0), [to_bob, to_carol])
        self.assertFalse(to_bob_2.in_flight)

    def test_recipient_names_compare_without_case(self):
        """'Bob' and 'bob' are one recipient for ordering."""
        first, second = self.add("Bob"), self.add("bob")
        self.assertEqual(self.outbox.due(0), [first])
        self.outbox.acked(first, 1, 1.0)
        self.assertEqual(self.outbox.due(0), [second])

    def test_window_limits_messages_in_flight(self):
        """No more than ``window`` messages are in flight at once."""
        warm = self.add()
        self.outbox.due(0)
        self.outbox.acked(warm, 1, 1.0)
        entries = [self.add() for _ in range(6)]
        self.assertEqual(self.outbox.due(0), entries[:4])
        self.assertEqual(self.outbox.in_flight, 4)
        self.outbox.acked(entries[0], 2, 1.0)
        self.assertEqual(self.outbox.due(0), [entries[4]])

    def test_lost_connection_resends_everything_with_original_ids(self):
        """After a lost connection every unacknowledged message is due again, oldest first,
        with the request id it was written with."""
        entries = [self.add() for _ in range(3)]
        first_ids = ids(entries)
        self.outbox.due(0)
        self.outbox.acked(entries[0], 1, 1.0)
        self.outbox.due(0)
        self.outbox.connection_lost()
        resent = self.outbox.due(0)
        self.assertEqual(ids(resent), first_ids[1:2])   # cold again: one at a time
        self.assertEqual(resent[0].attempts, 2)
        self.assertEqual(ids(self.outbox.pending()), first_ids[1:])

    def test_acked_sets_the_server_id_and_leaves_the_outbox(self):
        """An acknowledged message records msg_id and time and is no longer pending."""
        entry = self.add()
        self.outbox.due(0)
        self.outbox.acked(entry, 42, 12.5)
        self.assertEqual((entry.status, entry.msg_id, entry.time), (ACKED, 42, 12.5))
        self.assertEqual(len(self.outbox), 0)
        self.assertEqual(self.outbox.in_flight, 0)

    def test_failed_is_final(self):
        """A refused message is failed, carries the error, and is never resent."""
        entry = self.add("nobody")
        self.outbox.due(0)
        error = NotFound("no user named 'nobody'")
        self.outbox.failed(entry, error)
        self.outbox.connection_lost()
        self.assertEqual((entry.status, entry.error), (FAILED, error))
        self.assertEqual(self.outbox.due(0), [])

    def test_retry_later_with_a_new_id_keeps_the_place(self):
        """A 429'd message waits until not_before, under a new id, still before the later
        messages to the same recipient."""
        first, second = self.add(), self.add()
        self.outbox.due(0)
        self.outbox.retry(first, not_before=5.0, new_request_id="f" * 32)
        self.assertEqual(first.request_id, "f" * 32)
        self.assertEqual(self.outbox.due(1.0), [])
        self.assertEqual(self.outbox.next_wakeup(), 5.0)
        self.assertEqual(self.outbox.due(5.0), [first])
        self.assertEqual(ids(self.outbox.pending()), ["f" * 32, second.request_id])

    def test_when_done_fires_with_the_acknowledgement(self):
        """when_done fires with the server's reply once acknowledged, at once afterwards."""
        entry = self.add()
        waiter = entry.when_done()
        self.assertNoResult(waiter)
        self.outbox.due(0)
        self.outbox.acked(entry, 7, 3.0)
        entry.notify({"response": 200, "msg_id": 7, "time": 3.0})
        self.assertEqual(self.successResultOf(waiter)["msg_id"], 7)
        self.assertEqual(self.successResultOf(entry.when_done())["msg_id"], 7)

    def test_when_done_fails_with_the_refusal(self):
        """when_done fails with the server's error for a refused message."""
        entry = self.add()
        waiter = entry.when_done()
        self.outbox.failed(entry, NotFound("gone"))
        entry.notify()
        self.failureResultOf(waiter, NotFound)
        self.failureResultOf(entry.when_done(), NotFound)

    def test_drain_empties_the_outbox(self):
        """drain returns every pending message and leaves nothing to send."""
        entries = [self.add() for _ in range(3)]
        self.outbox.due(0)
        self.assertEqual(self.outbox.drain(), entries)
        self.assertEqual((len(self.outbox), self.outbox.in_flight), (0, 0))
        self.assertTrue(all(entry.status == PENDING for entry in entries))

    def test_duplicate_request_id_is_refused(self):
        """Two messages cannot share a request id."""
        self.outbox.add("bob", "x", "a" * 32, 0.0)
        self.assertRaises(ValueError, self.outbox.add, "bob", "y", "a" * 32, 0.0)

    def test_window_must_be_positive(self):
        """A window of zero would never send anything."""
        self.assertRaises(ValueError, Outbox, 0)
