"""Password hashing (messenger.server.passwords): the stored form, verification, the cost
read back for re-hashing, and the bounded queues in front of the threads (order, caps,
dropped jobs), driven with controllable Deferreds instead of threads."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.trial import unittest

from messenger.server import passwords
from messenger.server.passwords import PasswordHasher, QueueFull


class HashFormatTests(unittest.TestCase):

    def test_round_trip_and_cost(self) -> None:
        """A stored hash verifies its password only, and says its cost."""
        stored = passwords.hash_password_sync("correct horse", 16)
        self.assertTrue(stored.startswith("scrypt$16$8$1$"))
        self.assertTrue(passwords.verify_password_sync("correct horse", stored))
        self.assertFalse(passwords.verify_password_sync("wrong horse", stored))
        self.assertEqual(passwords.cost_of(stored), 16)

    def test_bad_records(self) -> None:
        """A record that is not an scrypt hash never verifies and has no cost."""
        for stored in ("", "plain", "bcrypt$1$2$3$4$5", "scrypt$x$8$1$AA==$AA=="):
            self.assertFalse(passwords.verify_password_sync("x", stored))
        self.assertEqual(passwords.cost_of("md5$whatever"), 0)
        self.assertEqual(passwords.cost_of("scrypt$nope"), 0)

    def test_needs_rehash(self) -> None:
        """A hash of lower cost than configured needs re-hashing; equal or higher not."""
        hasher = PasswordHasher(32, reactor)
        self.assertTrue(hasher.needs_rehash(passwords.hash_password_sync("p", 16)))
        self.assertFalse(hasher.needs_rehash(passwords.hash_password_sync("p", 32)))
        self.assertFalse(hasher.needs_rehash("garbage"))


class QueueTests(unittest.TestCase):
    """Two threads, queues of two: jobs handed to 'threads' are held until released."""

    def setUp(self) -> None:
        self.running: list[tuple[Any, tuple[Any, ...], defer.Deferred[Any]]] = []

        def fake_defer_to_thread_pool(reactor: Any, pool: Any, fn: Any,
                                      *args: Any) -> defer.Deferred[Any]:
            d: defer.Deferred[Any] = defer.Deferred()
            self.running.append((fn, args, d))
            return d
        self.patch(passwords.threads, "deferToThreadPool", fake_defer_to_thread_pool)
        self.hasher = PasswordHasher(16, reactor, threads_max=2, capacity=2,
                                     decoy_capacity=1)

    def finish(self, index: int = 0) -> None:
        fn, args, d = self.running.pop(index)
        d.callback(fn(*args))

    def test_existing_accounts_go_first(self) -> None:
        """With both threads busy, a waiting check of an existing account runs before a
        waiting registration, which runs before a waiting decoy."""
        stored = passwords.hash_password_sync("pw", 16)
        busy = [self.hasher.verify("pw", stored), self.hasher.verify("pw", stored)]
        decoy = self.hasher.verify("guess", None)
        new = self.hasher.hash("new password")
        urgent = self.hasher.verify("pw", stored)
        self.assertEqual(len(self.running), 2)
        self.assertEqual(self.hasher.waiting, 3)
        order = []
        for d, name in ((urgent, "urgent"), (new, "new"), (decoy, "decoy")):
            d.addCallback(lambda _, name=name: order.append(name))
        for _ in range(5):
            self.finish()
        self.assertEqual(order, ["urgent", "new", "decoy"])
        self.assertEqual([self.successResultOf(d) for d in busy], [True, True])

    def test_full_queue_refuses_at_once(self) -> None:
        """Past its cap a queue refuses with QueueFull and a retry_after, nothing runs."""
        stored = passwords.hash_password_sync("pw", 16)
        for _ in range(2 + 2):
            self.hasher.verify("pw", stored)
        refused = self.failureResultOf(self.hasher.verify("pw", stored), QueueFull)
        self.assertGreater(refused.value.retry_after, 0)
        self.hasher.verify("x", None)
        self.failureResultOf(self.hasher.verify("y", None), QueueFull)
        self.assertEqual(self.hasher.refused, 2)

    def test_jobs_of_gone_connections_are_dropped(self) -> None:
        """A waiting job whose connection went is dropped unrun (CancelledError)."""
        stored = passwords.hash_password_sync("pw", 16)
        self.hasher.verify("pw", stored)
        self.hasher.verify("pw", stored)
        gone = self.hasher.verify("pw", stored, wanted=lambda: False)
        kept = self.hasher.verify("pw", stored)
        self.finish()
        self.failureResultOf(gone, defer.CancelledError)
        self.assertEqual(self.hasher.dropped, 1)
        self.assertEqual(len(self.running), 2)
        self.finish(1)
        self.assertTrue(self.successResultOf(kept))

    def test_decoy_is_false(self) -> None:
        """A decoy check fires False whatever the password."""
        d = self.hasher.verify("anything", None)
        self.finish()
        self.assertIs(self.successResultOf(d), False)
