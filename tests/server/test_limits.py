"""The server's limits (messenger.server.limits) on a task.Clock: logins per host and per
network (IPv6 per /64), the storage quota per account, the per-connection buckets, and
limits of 0 that turn a limiter off."""

from __future__ import annotations

from twisted.internet import task
from twisted.trial import unittest

from messenger.server.config import LimitsConfig
from messenger.server.limits import DAY, Limits, lockout_policy


class LimitsTests(unittest.TestCase):

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(1000)

    def test_logins_per_host_and_network(self) -> None:
        """Two logins a minute per host, three per network: the third host of one /24 is
        refused once the network's three are used; a refusal consumes nothing."""
        limits = Limits(LimitsConfig(logins_per_minute=2, logins_per_minute_network=3),
                        self.clock)
        self.assertTrue(limits.allow_login("192.0.2.1")[0])
        self.assertTrue(limits.allow_login("192.0.2.1")[0])
        allowed, retry = limits.allow_login("192.0.2.1")
        self.assertEqual((allowed, retry > 0), (False, True))
        self.assertTrue(limits.allow_login("192.0.2.2")[0])
        self.assertFalse(limits.allow_login("192.0.2.3")[0])
        self.assertTrue(limits.allow_login("198.51.100.1")[0])   # another network

    def test_ipv6_host_is_a_slash_64(self) -> None:
        """Any address of one IPv6 /64 counts as one host."""
        limits = Limits(LimitsConfig(logins_per_minute=2, logins_per_minute_network=0),
                        self.clock)
        self.assertTrue(limits.allow_login("2001:db8:1:2::1")[0])
        self.assertTrue(limits.allow_login("2001:db8:1:2:ffff::9")[0])
        self.assertFalse(limits.allow_login("2001:db8:1:2:abcd::77")[0])
        self.assertTrue(limits.allow_login("2001:db8:1:3::1")[0])

    def test_storage_quota(self) -> None:
        """A day's quota in bytes per account; it refills over the day; a deleted account
        starts over."""
        limits = Limits(LimitsConfig(stored_bytes_per_day=1000), self.clock)
        self.assertTrue(limits.allow_storing(7, 600)[0])
        allowed, retry = limits.allow_storing(7, 600)
        self.assertFalse(allowed)
        self.assertAlmostEqual(retry, 200 / 1000 * DAY, delta=1)
        self.assertTrue(limits.allow_storing(8, 600)[0])
        self.clock.advance(DAY / 2)
        self.assertTrue(limits.allow_storing(7, 600)[0])
        limits.forget_account(8)
        self.assertTrue(limits.allow_storing(8, 1000)[0])

    def test_zero_turns_limits_off(self) -> None:
        """A limit of 0 builds no limiter: everything is allowed, no bucket is made."""
        limits = Limits(LimitsConfig(logins_per_minute=0, logins_per_minute_network=0,
                                     requests_per_second=0, crypto_ops_per_second=0,
                                     bad_requests_per_second=0, stored_bytes_per_day=0),
                        self.clock)
        for _ in range(100):
            self.assertEqual(limits.allow_login("192.0.2.1"), (True, 0.0))
        self.assertEqual(limits.allow_storing(1, 10**9), (True, 0.0))
        self.assertIsNone(limits.request_bucket())
        self.assertIsNone(limits.crypto_bucket())
        self.assertIsNone(limits.bad_request_bucket())

    def test_buckets_and_policy(self) -> None:
        """Per-connection buckets carry the configured rates; the lockout policy its
        three numbers."""
        config = LimitsConfig(requests_per_second=5, request_burst=7, crypto_ops_per_second=9,
                              crypto_burst=11, bad_requests_per_second=0.5,
                              bad_request_burst=3, lockout_failures=4, lockout_window=60,
                              lockout_duration=90)
        limits = Limits(config, self.clock)
        request, crypto, bad = (limits.request_bucket(), limits.crypto_bucket(),
                                limits.bad_request_bucket())
        self.assertEqual((request.rate, request.burst), (5, 7))
        self.assertEqual((crypto.rate, crypto.burst), (9, 11))
        self.assertEqual((bad.rate, bad.burst), (0.5, 3))
        self.assertEqual(lockout_policy(config), (4, 60.0, 90.0))
        limits.prune()
