"""The router (messenger.server.router): one live session per user, pushes encoded once
per fan-out, sessions ended with a notice; with recording fakes for sessions."""

from __future__ import annotations

from typing import Any

from twisted.internet import task
from twisted.trial import unittest

from messenger.server.router import Router
from messenger.wire import jim


class FakeSession:
    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.closed = False

    def push_encoded(self, payload: bytes) -> None:
        self.payloads.append(payload)

    def push(self, message: dict[str, Any]) -> None:
        self.push_encoded(jim.encode(message))

    def close(self) -> None:
        self.closed = True


class RouterTests(unittest.TestCase):

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(100)
        self.router = Router(self.clock)
        self.alice, self.bob = FakeSession(), FakeSession()
        self.assertTrue(self.router.attach(1, self.alice))
        self.assertTrue(self.router.attach(2, self.bob))

    def test_one_live_session_per_user(self) -> None:
        """A second session for a user is refused; detaching another's session does
        nothing; after its own detach the user is offline."""
        intruder = FakeSession()
        self.assertFalse(self.router.attach(1, intruder))
        self.assertTrue(self.router.attach(1, self.alice))       # the same one again
        self.router.detach(1, intruder)
        self.assertIs(self.router.session(1), self.alice)
        self.router.detach(1, self.alice)
        self.assertFalse(self.router.is_online(1))
        self.assertEqual((self.router.online_count(), self.router.user_ids()), (1, [2]))

    def test_pushes(self) -> None:
        """push and push_encoded reach online users only and say whether they did."""
        self.assertTrue(self.router.push(1, {"action": "x"}))
        self.assertTrue(self.router.push_encoded(2, b'{"action":"y"}'))
        self.assertFalse(self.router.push(3, {"action": "z"}))
        self.assertFalse(self.router.push_encoded(3, b"{}"))
        self.assertEqual(self.alice.payloads, [b'{"action":"x"}'])
        self.assertEqual(self.bob.payloads, [b'{"action":"y"}'])

    def test_fan_out_encodes_once(self) -> None:
        """push_many hands the same bytes object to every online recipient; push_all
        skips the excepted user; offline ids are skipped."""
        self.assertEqual(self.router.push_many([1, 2, 3], {"action": "presence"}), 2)
        self.assertIs(self.alice.payloads[0], self.bob.payloads[0])
        self.assertEqual(self.router.push_all({"action": "broadcast"}, except_id=1), 1)
        self.assertEqual(len(self.alice.payloads), 1)
        self.assertEqual(len(self.bob.payloads), 2)

    def test_end_session(self) -> None:
        """end_session tells the user why (an important notice) and closes; an offline
        user is a no-op."""
        self.assertTrue(self.router.end_session(2, "locked"))
        (notice,) = [jim.decode(p) for p in self.bob.payloads]
        self.assertEqual(notice, {"action": "notice", "level": 101, "message": "locked",
                                  "time": 100.0})
        self.assertTrue(self.bob.closed)
        self.assertFalse(self.router.end_session(9, "nobody"))
        self.assertEqual(len(self.router.sessions()), 2)
