"""Tests for messenger.server.ratelimit: leaky buckets, keyed and per connection."""

from __future__ import annotations

import time

from twisted.internet import task
from twisted.trial import unittest

from messenger.server.ratelimit import Bucket, RateLimiter


class BucketTests(unittest.TestCase):
    def test_burst_then_refused(self) -> None:
        """A quiet bucket allows exactly `burst` actions at once and refuses the next."""
        bucket = Bucket(rate=2.0, burst=3)
        self.assertEqual([bucket.check(10.0) for _ in range(3)], [(True, 0.0)] * 3)
        allowed, retry_after = bucket.check(10.0)
        self.assertFalse(allowed)
        self.assertAlmostEqual(retry_after, 0.5)

    def test_refusal_consumes_nothing(self) -> None:
        """Refused checks leave the level alone, so retrying early never delays the retry."""
        bucket = Bucket(rate=1.0, burst=1)
        bucket.check(0.0)
        for _ in range(100):
            self.assertFalse(bucket.check(0.5)[0])
        self.assertAlmostEqual(bucket.check(0.5)[1], 0.5)
        self.assertEqual(bucket.check(1.0), (True, 0.0))

    def test_drains_at_rate(self) -> None:
        """After 1/rate seconds a full bucket allows exactly one more action."""
        bucket = Bucket(rate=4.0, burst=2)
        bucket.check(0.0)
        bucket.check(0.0)
        self.assertFalse(bucket.check(0.2)[0])
        self.assertTrue(bucket.check(0.25)[0])
        self.assertFalse(bucket.check(0.25)[0])

    def test_retry_after_is_exact(self) -> None:
        """Waiting exactly retry_after seconds makes the refused action allowed."""
        bucket = Bucket(rate=3.0, burst=5)
        for _ in range(5):
            bucket.check(100.0)
        allowed, retry_after = bucket.check(100.1, cost=2.0)
        self.assertFalse(allowed)
        self.assertTrue(bucket.check(100.1 + retry_after, cost=2.0)[0])

    def test_update_false_only_asks(self) -> None:
        """check(update=False) answers without consuming anything."""
        bucket = Bucket(rate=1.0, burst=1)
        for _ in range(5):
            self.assertEqual(bucket.check(0.0, update=False), (True, 0.0))
        self.assertTrue(bucket.check(0.0)[0])
        self.assertFalse(bucket.check(0.0, update=False)[0])

    def test_record_goes_past_burst(self) -> None:
        """record() adds even to a full bucket, so later checks wait for the whole excess."""
        bucket = Bucket(rate=1.0, burst=2)
        for _ in range(5):
            bucket.record(0.0)
        allowed, retry_after = bucket.check(0.0)
        self.assertFalse(allowed)
        self.assertAlmostEqual(retry_after, 4.0)
        self.assertTrue(bucket.check(4.0)[0])

    def test_record_after_drain(self) -> None:
        """record() drains the elapsed time before adding its cost."""
        bucket = Bucket(rate=1.0, burst=2)
        bucket.record(0.0, cost=2.0)
        bucket.record(10.0, cost=1.5)
        self.assertAlmostEqual(bucket.level, 1.5)
        self.assertEqual(bucket.last, 10.0)

    def test_fractional_costs(self) -> None:
        """Costs need not be whole: four quarter-cost actions fill a burst of one."""
        bucket = Bucket(rate=1.0, burst=1)
        self.assertEqual([bucket.check(0.0, 0.25)[0] for _ in range(5)],
                         [True, True, True, True, False])

    def test_clock_stepping_back_does_not_refill(self) -> None:
        """A clock that steps backwards neither refills the bucket nor moves it back."""
        bucket = Bucket(rate=1.0, burst=1)
        bucket.check(1000.0)
        self.assertFalse(bucket.check(10.0)[0])
        self.assertTrue(bucket.check(1001.0)[0])

    def test_sustained_rate(self) -> None:
        """Requests at twice the rate are allowed at the rate, after the burst."""
        bucket = Bucket(rate=10.0, burst=5)
        allowed = sum(bucket.check(i * 0.05)[0] for i in range(200))    # 10 s at 20/s
        self.assertIn(allowed, (104, 105, 106))

    def test_epoch_timestamps_stay_exact(self) -> None:
        """At reactor-sized timestamps (~1.8e9 s) a steady request rate equal to `rate`
        is never refused."""
        bucket = Bucket(rate=50.0, burst=1)
        start = 1_800_000_000.0
        self.assertTrue(all(bucket.check(start + i / 50.0)[0] for i in range(5000)))

    def test_cost_above_burst_is_an_error(self) -> None:
        """An action that could never be allowed is a programming error, not a 429."""
        self.assertRaises(ValueError, Bucket(rate=1.0, burst=2).check, 0.0, 3.0)

    def test_invalid_parameters(self) -> None:
        """Rates and bursts must be positive finite numbers."""
        for rate, burst in [(0, 1), (-1, 1), (1, 0), (float("inf"), 1), (1, float("nan")),
                            ("1", 1)]:
            self.assertRaises(ValueError, Bucket, rate, burst)

    def test_empty_at(self) -> None:
        """empty_at() is when the level will have drained to zero."""
        bucket = Bucket(rate=2.0, burst=10)
        bucket.check(5.0, cost=3.0)
        self.assertAlmostEqual(bucket.empty_at(), 6.5)

    def test_cheap_per_request(self) -> None:
        """A check costs well under the 20 microseconds that 50,000 requests/s allow."""
        bucket = Bucket(rate=1e9, burst=1e9)
        check = bucket.check
        started = time.perf_counter()
        for i in range(100_000):
            check(i * 1e-6)
        elapsed = time.perf_counter() - started
        self.assertLess(elapsed, 2.0)     # 20 us per call; typically under 0.5 us


class RateLimiterTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()

    def test_keys_are_independent(self) -> None:
        """Filling one key's bucket leaves every other key untouched."""
        limiter = RateLimiter(rate=1.0, burst=2, clock=self.clock)
        self.assertTrue(limiter.check("10.0.0.1")[0])
        self.assertTrue(limiter.check("10.0.0.1")[0])
        self.assertFalse(limiter.check("10.0.0.1")[0])
        self.assertEqual(limiter.check("10.0.0.2"), (True, 0.0))
        self.assertEqual(limiter.check(("conn", 7)), (True, 0.0))

    def test_reads_injected_reactor_clock(self) -> None:
        """Advancing the injected IReactorTime refills the bucket; nothing else does."""
        limiter = RateLimiter(rate=0.5, burst=1, clock=self.clock)
        limiter.check("a")
        allowed, retry_after = limiter.check("a")
        self.assertFalse(allowed)
        self.assertAlmostEqual(retry_after, 2.0)
        self.clock.advance(2.0)
        self.assertTrue(limiter.check("a")[0])

    def test_accepts_plain_callable_clock(self) -> None:
        """A callable returning seconds works as the clock too."""
        now = [50.0]
        limiter = RateLimiter(rate=1.0, burst=1, clock=lambda: now[0])
        limiter.check("a")
        self.assertFalse(limiter.check("a")[0])
        now[0] += 1.0
        self.assertTrue(limiter.check("a")[0])

    def test_rejects_non_clock(self) -> None:
        """Something that is neither IReactorTime nor callable is refused at once."""
        self.assertRaises(TypeError, RateLimiter, 1.0, 1.0, 42)

    def test_per_minute(self) -> None:
        """per_minute(60) allows 60 at once, then one per second."""
        limiter = RateLimiter.per_minute(60, self.clock)
        self.assertTrue(all(limiter.check("ip")[0] for _ in range(60)))
        allowed, retry_after = limiter.check("ip")
        self.assertFalse(allowed)
        self.assertAlmostEqual(retry_after, 1.0)
        self.clock.advance(1.0)
        self.assertTrue(limiter.check("ip")[0])
        self.assertFalse(limiter.check("ip")[0])

    def test_asking_creates_no_bucket(self) -> None:
        """check(update=False) on unknown keys is allowed and stores nothing."""
        limiter = RateLimiter(rate=1.0, burst=1, clock=self.clock)
        for i in range(100):
            self.assertEqual(limiter.check(i, update=False), (True, 0.0))
        self.assertEqual(len(limiter), 0)

    def test_refusal_consumes_nothing(self) -> None:
        """A refused keyed check changes nothing (Synapse: a 429 means nothing was done)."""
        limiter = RateLimiter(rate=1.0, burst=1, clock=self.clock)
        limiter.check("a")
        self.clock.advance(0.5)
        for _ in range(10):
            self.assertFalse(limiter.check("a")[0])
        self.clock.advance(0.5)
        self.assertTrue(limiter.check("a")[0])

    def test_record_counts_unconditionally(self) -> None:
        """record() consumes for a key even beyond its burst."""
        limiter = RateLimiter(rate=1.0, burst=3, clock=self.clock)
        for _ in range(6):
            limiter.record("failed-login:10.0.0.1")
        allowed, retry_after = limiter.check("failed-login:10.0.0.1")
        self.assertFalse(allowed)
        self.assertAlmostEqual(retry_after, 4.0)

    def test_reset_forgets_key(self) -> None:
        """reset() gives a key a fresh, empty bucket."""
        limiter = RateLimiter(rate=1.0, burst=1, clock=self.clock)
        limiter.check("a")
        limiter.reset("a")
        limiter.reset("never-seen")
        self.assertTrue(limiter.check("a")[0])

    def test_cost_above_burst_is_an_error(self) -> None:
        """A cost larger than the burst raises, for new and known keys alike."""
        limiter = RateLimiter(rate=1.0, burst=2, clock=self.clock)
        self.assertRaises(ValueError, limiter.check, "new", 3)
        limiter.check("known")
        self.assertRaises(ValueError, limiter.check, "known", 3)

    def test_prune_drops_only_drained_buckets(self) -> None:
        """prune() removes buckets that have drained and keeps those still holding level."""
        limiter = RateLimiter(rate=1.0, burst=10, clock=self.clock)
        limiter.check("light", cost=1)
        limiter.check("heavy", cost=5)
        self.clock.advance(2.0)
        self.assertEqual(limiter.prune(), 1)
        self.assertEqual(len(limiter), 1)
        allowed, retry_after = limiter.check("heavy", cost=8)
        self.assertFalse(allowed)
        self.assertAlmostEqual(retry_after, 1.0)

    def test_memory_bounded_over_time(self) -> None:
        """A stream of ever-new keys never holds many more buckets than are active."""
        limiter = RateLimiter(rate=1.0, burst=1, clock=self.clock)     # drains in 1 s
        most = 0
        for i in range(20_000):
            limiter.check(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
            most = max(most, len(limiter))
            self.clock.advance(0.01)                                   # 100 new keys/s
        self.assertLessEqual(most, 250)

    def test_memory_bounded_by_size(self) -> None:
        """Within one drain time, pruning also runs when the number of buckets doubles."""
        limiter = RateLimiter(rate=1 / 3600, burst=1, clock=self.clock)  # drains in an hour
        for i in range(1000):
            limiter.check(("old", i), cost=1 / 3600)        # each drains after one second
        self.clock.advance(2.0)
        for i in range(1000):
            limiter.check(("new", i), cost=1 / 3600)
        self.assertLess(len(limiter), 1100)
        self.assertFalse(limiter.check(("new", 0), cost=1.0)[0])
