"""Tests for messenger.client.sender: what each reply to a message means for it, on a
fake connection (`tests.client.fakes`) and a task.Clock."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.trial import unittest

from messenger.client.errors import NotConnected, NotFound, TooManyPending
from messenger.client.events import Observers
from messenger.client.outbox import Outbox
from messenger.client.sender import BUSY_RETRY, MessageSender
from messenger.wire.errors import ServerError, TooManyRequests
from tests.client.fakes import FakeProtocol


class Session:
    """A logged-in connection as the sender sees it: request() and drop()."""

    def __init__(self, clock: task.Clock) -> None:
        self.protocol = FakeProtocol(clock)
        self.protocol.establish()
        self.dropped: list[Any] = []

    def request(self, action: str, fields: Any = None, request_id: Any = None) -> Any:
        return self.protocol.request(action, fields, request_id)

    def drop(self, cause: Any) -> None:
        self.dropped.append(cause)


class SenderTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.statuses: list[str] = []
        observers = Observers()
        observers.subscribe("message_status", lambda e: self.statuses.append(e.status))
        self.sender = MessageSender(Outbox(), observers, self.clock)

    def attached(self) -> Session:
        session = Session(self.clock)
        self.sender.attach(session)
        return session

    def test_queued_messages_wait_for_a_session(self):
        """Nothing is sent until attach; then the queue goes out with its ids."""
        entry = self.sender.queue("alice", "bob", "hi")
        session = self.attached()
        self.assertEqual(session.protocol.take("msg").id, entry.request_id)
        self.assertEqual(self.statuses, ["pending"])

    def test_acknowledged_message_is_done(self):
        """The reply's msg_id settles the message and its waiters."""
        session = self.attached()
        entry = self.sender.queue("alice", "bob", "hi")
        d = entry.when_done()
        session.protocol.answer(session.protocol.take("msg"), response=200, msg_id=7, time=1)
        self.assertEqual((entry.status, self.successResultOf(d)["msg_id"]), ("acked", 7))

    def test_a_refusal_fails_it_for_good(self):
        """404: failed, never resent."""
        session = self.attached()
        entry = self.sender.queue("alice", "nobody", "hi")
        session.protocol.refuse(session.protocol.take("msg"), NotFound("no user"))
        self.failureResultOf(entry.when_done(), NotFound)
        self.assertEqual(len(self.sender.outbox), 0)

    def test_rate_limited_is_resent_later_under_a_new_id(self):
        """429: nothing stored; after retry_after, sent again with a fresh id."""
        session = self.attached()
        entry = self.sender.queue("alice", "bob", "hi")
        first = session.protocol.take("msg")
        session.protocol.refuse(first, TooManyRequests("slow", 3.0))
        self.clock.advance(3.0)
        self.assertNotEqual(session.protocol.take("msg").id, first.id)
        self.assertEqual(entry.status, "pending")

    def test_a_server_error_drops_the_connection_to_resend_the_same_id(self):
        """500: unknown whether stored: the session is dropped, the id kept."""
        session = self.attached()
        entry = self.sender.queue("alice", "bob", "hi")
        request_id = entry.request_id
        session.protocol.refuse(session.protocol.take("msg"), ServerError("oops"))
        self.assertEqual(len(session.dropped), 1)
        self.sender.detach()
        again = self.attached()
        self.assertEqual(again.protocol.take("msg").id, request_id)

    def test_too_many_pending_requests_is_retried_soon(self):
        """Refused locally for too many requests waiting: sent again after a moment."""
        session = self.attached()
        real = session.request
        session.request = lambda *a, **k: defer.fail(TooManyPending("busy"))
        entry = self.sender.queue("alice", "bob", "hi")
        session.request = real
        self.clock.advance(BUSY_RETRY)
        self.assertEqual(len(session.protocol.pending("msg")), 1)
        self.assertEqual(entry.status, "pending")

    def test_detach_makes_in_flight_messages_pending_again(self):
        """A lost session: in flight becomes pending; the next one resends them."""
        session = self.attached()
        entry = self.sender.queue("alice", "bob", "hi")
        session.protocol.take("msg")
        self.sender.detach()
        session.protocol.lose()
        self.assertEqual((entry.status, entry.in_flight), ("pending", False))

    def test_fail_all_gives_up_every_message(self):
        """logout: every unacknowledged message fails with the reason."""
        self.attached()
        entry = self.sender.queue("alice", "bob", "hi")
        self.sender.fail_all(NotConnected("logged out"))
        self.failureResultOf(entry.when_done(), NotConnected)
        self.assertEqual(self.statuses, ["pending", "failed"])
