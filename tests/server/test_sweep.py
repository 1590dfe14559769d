"""The keepalive sweep in slices (messenger.server.context.ServerContext.sweep): every
connection checked once per sweep, a bounded share per reactor turn, spread over the
sweep interval; closed connections and a sweep that overlaps the last one handled. The
probing itself over real sockets is in test_protocol / test_connection_states."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import task
from twisted.trial import unittest

from messenger.server.context import SWEEP_TICK, ServerContext
from tests.support.keys import rsa_key
from tests.support.server import SECRET, test_config


class Recorded:
    """A connection that records when the sweep checked it."""

    def __init__(self, log: list[tuple[float, int]], number: int) -> None:
        self.log, self.number = log, number

    def check_alive(self, now: float) -> None:
        self.log.append((now, self.number))


class SweepTests(unittest.TestCase):

    def setUp(self) -> None:
        self.clock = task.Clock()
        config = test_config(Path(self.mktemp()), probe_interval=30.0, probe_timeout=15.0)
        self.ctx = ServerContext(config, self.clock, None, SECRET, rsa_key())  # type: ignore
        self.checks: list[tuple[float, int]] = []

    def add(self, n: int) -> list[Recorded]:
        conns = [Recorded(self.checks, i) for i in range(n)]
        self.ctx.connections.update(conns)
        return conns

    def test_every_connection_once_in_bounded_slices(self) -> None:
        """10,000 connections, a 5 s sweep interval: each is checked exactly once, no
        turn checks more than 10,000 / 250 = 40, and the slices span the interval."""
        self.add(10_000)
        self.ctx.sweep()
        self.assertEqual(len(self.checks), 40)            # the first slice, at once
        self.clock.pump([SWEEP_TICK] * 300)
        self.assertEqual(sorted(n for _, n in self.checks), list(range(10_000)))
        per_turn: dict[float, int] = {}
        for when, _ in self.checks:
            per_turn[when] = per_turn.get(when, 0) + 1
        self.assertEqual(max(per_turn.values()), 40)
        self.assertEqual(len(per_turn), 250)
        self.assertAlmostEqual(max(per_turn) - min(per_turn), 249 * SWEEP_TICK, places=6)

    def test_a_new_sweep_restarts_an_unfinished_one(self) -> None:
        """A sweep that starts before the last one finished (it cannot with the loop's
        own timing, but a caller may) takes a fresh snapshot: nothing is checked twice
        in one turn and the old slices stop."""
        self.add(1_000)
        self.ctx.sweep()
        self.clock.advance(SWEEP_TICK)
        self.ctx.sweep()
        first_two = len(self.checks)
        self.clock.pump([SWEEP_TICK] * 300)
        self.assertEqual(len(self.checks) - first_two, 1_000 - 4)  # the second sweep's rest
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_small_set_in_one_turn_and_stop_cancels(self) -> None:
        """Fewer connections than slices: one per turn; stop() leaves no call behind."""
        self.add(3)
        self.ctx.sweep()
        self.assertEqual(len(self.checks), 1)
        self.ctx._sweeper = None
        self.ctx.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
