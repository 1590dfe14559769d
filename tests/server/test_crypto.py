"""Unit tests of messenger.server.crypto: lanes in order, served round robin by a bounded
number of threads, urgent jobs first, closed lanes dropped. The thread pool is replaced by
one that runs a job when the test says so, and the reactor by one that calls back at once:
every interleaving is chosen by the test."""

from __future__ import annotations

from typing import Any

from twisted.python.failure import Failure
from twisted.trial import unittest

from messenger.server.crypto import CryptoPool, InlineCryptoPool, InlineLane


class SteppedThreads:
    """A stand-in for ThreadPool: jobs wait until `run_next` runs the oldest."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Any, Any, tuple[Any, ...], dict[str, Any]]] = []
        self.started = self.stopped = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def callInThreadWithCallback(self, on_result: Any, fn: Any, *args: Any,
                                 **kwargs: Any) -> None:
        self.jobs.append((on_result, fn, args, kwargs))

    def run_next(self) -> None:
        on_result, fn, args, kwargs = self.jobs.pop(0)
        try:
            result = fn(*args, **kwargs)
        except Exception:
            on_result(False, Failure())
        else:
            on_result(True, result)


class ImmediateReactor:
    def callFromThread(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        fn(*args, **kwargs)


def stepped_pool(threads: int = 1) -> tuple[CryptoPool, SteppedThreads]:
    pool = CryptoPool(ImmediateReactor(), threads_max=threads)
    stepped = SteppedThreads()
    pool._threads = stepped  # type: ignore[assignment]
    return pool, stepped


class CryptoPoolTests(unittest.TestCase):

    def setUp(self) -> None:
        self.pool, self.threads = stepped_pool()
        self.log: list[str] = []

    def job(self, name: str) -> Any:
        def run() -> str:
            self.log.append(name)
            return name
        return run

    def drain(self) -> None:
        while self.threads.jobs:
            self.threads.run_next()

    def test_start_and_stop(self) -> None:
        """start starts the threads; stop stops them and forgets the lanes waiting."""
        self.pool.start()
        self.assertTrue(self.threads.started)
        a, b = self.pool.lane(), self.pool.lane()
        a.submit(self.job("a1"))
        b.submit(self.job("b1"))
        self.assertEqual(self.pool.backlog, 1)
        self.pool.stop()
        self.assertTrue(self.threads.stopped)
        self.assertEqual(self.pool.backlog, 0)

    def test_a_lane_runs_its_jobs_in_order_one_at_a_time(self) -> None:
        """A lane's jobs run in submission order, never two at once, with their results."""
        pool, threads = stepped_pool(threads=2)
        lane = pool.lane()
        results: list[str] = []
        for name in ("one", "two", "three"):
            lane.submit(self.job(name)).addCallback(results.append)
        self.assertEqual((len(threads.jobs), lane.queued, lane.busy), (1, 3, True))
        while threads.jobs:
            threads.run_next()
        self.assertEqual(results, ["one", "two", "three"])
        self.assertEqual((lane.queued, lane.busy, pool.jobs_done), (0, False, 3))

    def test_lanes_are_served_round_robin(self) -> None:
        """A lane with many jobs waits behind the others after each of its own: one big
        client does not go before everyone else."""
        greedy, polite = self.pool.lane(), self.pool.lane()
        for n in range(3):
            greedy.submit(self.job(f"g{n}"))
        polite.submit(self.job("p0"))
        polite.submit(self.job("p1"))
        self.drain()
        self.assertEqual(self.log, ["g0", "p0", "g1", "p1", "g2"])

    def test_at_most_threads_max_jobs_run(self) -> None:
        """With two threads, two lanes' jobs run at once and a third lane waits."""
        pool, threads = stepped_pool(threads=2)
        lanes = [pool.lane() for _ in range(3)]
        for n, lane in enumerate(lanes):
            lane.submit(self.job(f"l{n}"))
        self.assertEqual((len(threads.jobs), pool.backlog), (2, 1))
        threads.run_next()
        self.assertEqual((len(threads.jobs), pool.backlog), (2, 0))

    def test_urgent_job_goes_first(self) -> None:
        """An urgent job of an idle lane (a key exchange) runs before lanes that wait."""
        busy, other, login = self.pool.lane(), self.pool.lane(), self.pool.lane()
        busy.submit(self.job("page0"))
        busy.submit(self.job("page1"))
        other.submit(self.job("page2"))
        login.submit(self.job("keyx"), urgent=True)
        self.drain()
        self.assertEqual(self.log, ["page0", "keyx", "page2", "page1"])

    def test_failure_is_passed_on(self) -> None:
        """A job that raises fails its Deferred; the lane goes on with the next job."""
        lane = self.pool.lane()

        def broken() -> None:
            raise ValueError("bad frame")
        failed = lane.submit(broken)
        after = lane.submit(self.job("next"))
        self.drain()
        self.failureResultOf(failed, ValueError)
        self.assertEqual(self.successResultOf(after), "next")

    def test_closed_lane_drops_its_jobs(self) -> None:
        """Closing a lane drops its queued jobs unrun; the running job's outcome, even a
        failure, is dropped; later submissions never run or fire."""
        lane, other = self.pool.lane(), self.pool.lane()

        def broken() -> None:
            raise ValueError("nobody hears this")
        running = lane.submit(broken)
        queued = lane.submit(self.job("never"))
        other.submit(self.job("other"))
        lane.close()
        self.assertEqual(lane.queued, 1)   # the running one
        late = lane.submit(self.job("late"))
        self.drain()
        self.assertEqual(self.log, ["other"])
        for d in (running, queued, late):
            self.assertNoResult(d)

    def test_closed_lane_waiting_is_skipped(self) -> None:
        """A lane closed while it waits for a thread is passed over."""
        first, second, third = self.pool.lane(), self.pool.lane(), self.pool.lane()
        first.submit(self.job("first"))
        second.submit(self.job("second"))
        third.submit(self.job("third"))
        second.close()
        self.drain()
        self.assertEqual(self.log, ["first", "third"])


class InlineCryptoPoolTests(unittest.TestCase):

    def test_runs_at_once(self) -> None:
        """The inline pool runs each job synchronously (unit tests on a StringTransport)."""
        pool = InlineCryptoPool()
        pool.start()
        lane = pool.lane()
        self.assertIsInstance(lane, InlineLane)
        self.assertEqual(self.successResultOf(lane.submit(lambda x: x * 2, 21)), 42)
        self.assertEqual(self.successResultOf(lane.submit(lambda: 1, urgent=True)), 1)
        self.assertEqual((lane.queued, lane.busy, pool.backlog, pool.jobs_done),
                         (0, False, 0, 0))
        pool.stop()

    def test_closed_inline_lane_never_fires(self) -> None:
        lane = InlineLane()
        lane.close()
        self.assertNoResult(lane.submit(lambda: 1))

    def test_failure_is_passed_on(self) -> None:
        lane = InlineLane()
        self.failureResultOf(lane.submit(lambda: 1 / 0), ZeroDivisionError)
