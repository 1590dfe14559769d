"""Unit tests of messenger.server.admission: connection rates and caps per host, per
network and in total, the eviction of the oldest pre-login connection, and the open-file
limit, with a `task.Clock` and stand-in connections (over real sockets: test_abuse.py)."""

from __future__ import annotations

import resource
from typing import Any

from twisted.internet import task
from twisted.trial import unittest

from messenger.server import admission
from messenger.server.admission import Admission, raise_open_file_limit, total_cap_for
from messenger.server.config import LimitsConfig
from messenger.wire.errors import TooManyRequests


class Conn:
    def __init__(self, address: str) -> None:
        self.address = address
        self.closed = False

    def close(self) -> None:
        self.closed = True


def limits(**overrides: Any) -> LimitsConfig:
    config = LimitsConfig(connections_per_minute=0, connections_per_minute_network=0,
                          max_connections_per_host=0, max_connections_per_network=0)
    for name, value in overrides.items():
        setattr(config, name, value)
    return config


class AdmissionTests(unittest.TestCase):

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(1000)

    def admit_all(self, gate: Admission, *addresses: str) -> list[Any]:
        """Admit a connection per address; the refusals (None when admitted)."""
        outcomes = []
        for address in addresses:
            conn = Conn(address)
            refusal = gate.admit(conn)
            outcomes.append(refusal)
            if refusal is None:
                self.conns.append(conn)
        return outcomes

    conns: list[Conn]

    def gate(self, total: int = 1000, **overrides: Any) -> Admission:
        self.conns = []
        return Admission(limits(**overrides), self.clock, total)

    def test_rate_per_host(self) -> None:
        """A host gets its connections a minute, then 429 with retry_after; another host of
        the same network is unaffected; the bucket drains with time."""
        gate = self.gate(connections_per_minute=2)
        outcomes = self.admit_all(gate, "10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.2")
        self.assertEqual(outcomes[:2] + outcomes[3:], [None, None, None])
        self.assertIsInstance(outcomes[2], TooManyRequests)
        self.assertEqual(outcomes[2].message, "too many connections from your address")
        self.assertAlmostEqual(outcomes[2].retry_after, 30.0, places=3)
        self.clock.advance(30)
        self.assertEqual(self.admit_all(gate, "10.0.0.1"), [None])

    def test_rate_per_network(self) -> None:
        """A /24 gets its connections a minute whatever host they come from."""
        gate = self.gate(connections_per_minute_network=3)
        outcomes = self.admit_all(gate, "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4",
                                  "10.0.1.1")
        self.assertEqual([o is None for o in outcomes], [True, True, True, False, True])

    def test_open_connections_per_host_and_network(self) -> None:
        """Open connections are capped per host and per network; one that goes makes
        room again."""
        gate = self.gate(max_connections_per_host=2, max_connections_per_network=3)
        outcomes = self.admit_all(gate, "10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.2",
                                  "10.0.0.3")
        self.assertEqual([o.message if o else None for o in outcomes], [
            None, None, "too many open connections from your address", None,
            "too many open connections from your network"])
        self.assertEqual(gate.open, 3)
        gate.gone(self.conns[0])
        self.assertEqual(self.admit_all(gate, "10.0.0.3"), [None])

    def test_ipv6_host_is_its_64(self) -> None:
        """Two addresses of one IPv6 /64 are one host."""
        gate = self.gate(max_connections_per_host=1)
        outcomes = self.admit_all(gate, "2001:db8:0:1::1", "2001:db8:0:1::2",
                                  "2001:db8:0:2::1")
        self.assertEqual([o is None for o in outcomes], [True, False, True])

    def test_oldest_prelogin_connection_is_evicted(self) -> None:
        """When the pre-login share (half the total, at least 8) is full, the oldest
        pre-login connection is closed to make room; logged-in ones never are."""
        gate = self.gate(total=20)
        self.assertEqual(gate.prelogin_cap, 10)
        self.admit_all(gate, *[f"10.0.{n}.1" for n in range(10)])
        gate.logged_in(self.conns[0])
        self.assertEqual(gate.prelogin, 9)
        self.admit_all(gate, "10.1.0.1")
        self.assertEqual(gate.prelogin, 10)
        self.admit_all(gate, "10.1.0.2")
        self.assertFalse(self.conns[0].closed)
        self.assertTrue(self.conns[1].closed)
        self.assertEqual(gate.evicted, 1)
        # The evicted connection's own connectionLost then calls gone().
        gate.gone(self.conns[1])
        self.assertEqual((gate.open, gate.prelogin), (11, 10))

    def test_full_server_with_nobody_to_evict(self) -> None:
        """When every connection is logged in and the total is reached: 429 'full'."""
        gate = self.gate(total=16)
        self.admit_all(gate, *[f"10.0.{n}.1" for n in range(16)])
        for conn in self.conns:
            gate.logged_in(conn)
        refusal = gate.admit(Conn("10.9.9.9"))
        self.assertIsInstance(refusal, TooManyRequests)
        self.assertEqual((refusal.message, refusal.retry_after),
                         ("the server is full; try again later", 30.0))

    def test_gone_forgets_counts(self) -> None:
        """Counts go back to nothing when connections go; an unknown one is ignored."""
        gate = self.gate()
        self.admit_all(gate, "10.0.0.1", "10.0.0.1")
        for conn in self.conns:
            gate.gone(conn)
        gate.gone(Conn("10.0.0.9"))
        self.assertEqual((gate.open, gate.prelogin, gate._per_host, gate._per_net),
                         (0, 0, {}, {}))

    def test_prune(self) -> None:
        """Pruning drops drained rate buckets (and is harmless with rates off)."""
        gate = self.gate(connections_per_minute=5, connections_per_minute_network=5)
        self.admit_all(gate, "10.0.0.1")
        self.clock.advance(3600)
        gate.prune()
        self.assertEqual(len(gate._host_rate), 0)
        self.gate().prune()


class OpenFileLimitTests(unittest.TestCase):

    def patch_limits(self, soft: int, hard: int, fail: bool = False) -> list[Any]:
        calls: list[Any] = []

        def setrlimit(which: int, value: tuple[int, int]) -> None:
            calls.append(value)
            if fail:
                raise ValueError("not allowed")
        self.patch(admission.resource, "getrlimit", lambda which: (soft, hard))
        self.patch(admission.resource, "setrlimit", setrlimit)
        return calls

    def test_raised_to_the_hard_limit(self) -> None:
        calls = self.patch_limits(1024, 4096)
        self.assertEqual(raise_open_file_limit(), 4096)
        self.assertEqual(calls, [(4096, 4096)])

    def test_unlimited_hard_limit(self) -> None:
        calls = self.patch_limits(1024, resource.RLIM_INFINITY)
        self.assertEqual(raise_open_file_limit(), 1 << 20)
        self.assertEqual(calls, [(1 << 20, 1 << 20)])

    def test_refused_keeps_the_soft_limit(self) -> None:
        self.patch_limits(1024, 4096, fail=True)
        self.assertEqual(raise_open_file_limit(), 1024)

    def test_already_at_the_hard_limit(self) -> None:
        calls = self.patch_limits(4096, 4096)
        self.assertEqual(raise_open_file_limit(), 4096)
        self.assertEqual(calls, [])

    def test_total_cap_keeps_a_reserve(self) -> None:
        """A tenth of the descriptors (at least 64) stay free; never fewer than 16."""
        self.assertEqual(total_cap_for(1024), 1024 - 102)
        self.assertEqual(total_cap_for(100), 36)
        self.assertEqual(total_cap_for(50), 16)
        self.assertEqual(total_cap_for(100_000), 90_000)
