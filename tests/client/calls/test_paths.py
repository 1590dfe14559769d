"""The parts of path discovery: back-off steps and our own candidate addresses."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from messenger.client.calls.paths import Backoff, local_endpoints


class BackoffTests(SynchronousTestCase):

    def test_doubling_up_to_the_cap(self) -> None:
        """Fires at once, then after 0.05, 0.1, 0.2 and every 0.25 s; never early."""
        backoff = Backoff(0.05, 0.25, now=10.0)
        fired = [t for t in (10.0, 10.01, 10.05, 10.1, 10.15, 10.35, 10.55, 10.6, 10.8,
                             11.05) if backoff.fire(t)]
        self.assertEqual(fired, [10.0, 10.05, 10.15, 10.35, 10.6, 11.05])
        self.assertEqual(backoff.sent, 6)


class LocalEndpointTests(SynchronousTestCase):

    def test_local_endpoints(self) -> None:
        """A wildcard socket announces the address that routes to the relay; a bound one
        itself; a name (never looked up here) or another family nothing."""
        self.assertEqual(local_endpoints("0.0.0.0", 5000, "127.0.0.1"),
                         (("127.0.0.1", 5000),))
        self.assertEqual(local_endpoints("10.0.0.2", 5000, "127.0.0.1"),
                         (("10.0.0.2", 5000),))
        self.assertEqual(local_endpoints("localhost", 5000, "127.0.0.1"), ())
        self.assertEqual(local_endpoints("::", 5000, "127.0.0.1"), ())
