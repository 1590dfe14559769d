"""Tests for messenger.client.requests: each request settled by the reply of its id."""

from __future__ import annotations

from twisted.trial import unittest

from messenger.client.errors import (
    AccountLocked,
    NotConnected,
    NotFound,
    TooManyPending,
)
from messenger.client.requests import PendingRequests, new_request_id


class PendingRequestsTests(unittest.TestCase):
    def test_ids_are_128_random_bits_in_hex(self):
        """A new id is 32 lowercase hex digits, different each time."""
        ids = {new_request_id() for _ in range(100)}
        self.assertEqual(len(ids), 100)
        self.assertTrue(all(len(i) == 32 and int(i, 16) >= 0 and i == i.lower()
                            for i in ids))

    def test_success_reply_fires_its_request(self):
        """A reply below 400 fires the Deferred of its id with the reply."""
        pending = PendingRequests()
        request_id, d = pending.add("get_contacts")
        other_id, other = pending.add("history")
        self.assertTrue(pending.settle({"response": 202, "id": request_id, "alert": []}))
        self.assertEqual(self.successResultOf(d)["alert"], [])
        self.assertNoResult(other)
        self.assertEqual(len(pending), 1)

    def test_error_reply_fails_with_the_typed_error_of_its_action(self):
        """The error class comes from the code and the action that was asked."""
        pending = PendingRequests()
        request_id, d = pending.add("add_contact")
        pending.settle({"response": 404, "id": request_id, "error": "no user named 'x'"})
        self.assertEqual(self.failureResultOf(d, NotFound).value.message,
                         "no user named 'x'")
        request_id, d = pending.add("authenticate")
        pending.settle({"response": 403, "id": request_id, "error": "account locked",
                        "locked_until": None})
        self.failureResultOf(d, AccountLocked)

    def test_unknown_ids_are_not_settled(self):
        """A reply to no waiting request (or without a string id) settles nothing."""
        pending = PendingRequests()
        pending.add("get_contacts")
        self.assertFalse(pending.settle({"response": 200, "id": "f" * 32}))
        self.assertFalse(pending.settle({"response": 200, "id": 7}))
        self.assertEqual(len(pending), 1)

    def test_a_given_id_is_kept_and_not_reused_while_waiting(self):
        """A resend keeps its id; a second request with the same id is refused."""
        pending = PendingRequests()
        request_id, _ = pending.add("msg", "ab" * 16)
        self.assertEqual(request_id, "ab" * 16)
        self.assertRaises(ValueError, pending.add, "msg", "ab" * 16)

    def test_the_number_waiting_is_bounded(self):
        """Past the limit a new request is refused at once; a settled one frees a place."""
        pending = PendingRequests(limit=2)
        first, _ = pending.add("a")
        pending.add("b")
        self.assertRaises(TooManyPending, pending.add, "c")
        pending.settle({"response": 200, "id": first})
        pending.add("c")
        self.assertEqual(len(pending), 2)

    def test_fail_all_when_the_connection_ends(self):
        """Every waiting request fails with NotConnected and the table empties."""
        pending = PendingRequests()
        waiting = [pending.add("x")[1] for _ in range(3)]
        pending.fail_all("lost")
        for d in waiting:
            self.assertEqual(self.failureResultOf(d, NotConnected).value.message, "lost")
        self.assertEqual(len(pending), 0)

    def test_forget_drops_a_request_that_was_not_sent(self):
        """A request refused before sending leaves no entry behind."""
        pending = PendingRequests()
        request_id, _ = pending.add("x")
        pending.forget(request_id)
        self.assertEqual(len(pending), 0)
