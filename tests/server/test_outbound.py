"""Unit tests of messenger.server.outbound: the bounded write side of a connection and the
gate that stops reading, on a `StringTransport` (the same over real sockets is in
test_buffers.py)."""

from __future__ import annotations

from twisted.internet.interfaces import IPushProducer
from twisted.internet.testing import StringTransport
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from messenger.server.outbound import HOLD_READING_AT, Outbound, ReadGate


class Switch:
    """Records pause/resume calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")


class ReadGateTests(unittest.TestCase):

    def setUp(self) -> None:
        self.switch = Switch()
        self.gate = ReadGate(self.switch.pause, self.switch.resume)

    def test_first_hold_pauses_last_release_resumes(self) -> None:
        """Reading pauses at the first reason and resumes only when no reason is left."""
        self.gate.hold("writes")
        self.gate.hold("crypto")
        self.assertEqual(self.switch.calls, ["pause"])
        self.gate.release("writes")
        self.assertEqual(self.switch.calls, ["pause"])
        self.assertEqual(self.gate.held, frozenset({"crypto"}))
        self.gate.release("crypto")
        self.assertEqual(self.switch.calls, ["pause", "resume"])
        self.assertEqual(self.gate.held, frozenset())

    def test_holding_twice_is_one_reason(self) -> None:
        """The same reason held twice is released by one release."""
        self.gate.hold("requests")
        self.gate.hold("requests")
        self.gate.release("requests")
        self.assertEqual(self.switch.calls, ["pause", "resume"])

    def test_releasing_what_is_not_held_does_nothing(self) -> None:
        """A release without a hold neither resumes nor fails."""
        self.gate.release("writes")
        self.gate.hold("writes")
        self.gate.release("other")
        self.assertEqual(self.switch.calls, ["pause"])


class OutboundTests(unittest.TestCase):

    def setUp(self) -> None:
        self.transport = StringTransport()
        self.switch = Switch()
        self.gate = ReadGate(self.switch.pause, self.switch.resume)
        self.overflows: list[int] = []
        self.out = Outbound(self.transport, 1000, self.gate, self.overflows.append)

    def test_is_a_push_producer(self) -> None:
        """The transport can pause and resume it (Twisted's producer/consumer)."""
        self.assertTrue(verifyObject(IPushProducer, self.out))

    def test_writes_through_while_not_paused(self) -> None:
        """Unpaused, any amount is handed to the transport and nothing is counted."""
        self.out.write(b"x" * 5000)
        self.assertEqual(len(self.transport.value()), 5000)
        self.assertEqual((self.out.queued, self.overflows), (0, []))

    def test_counts_while_paused_and_drops_past_the_limit(self) -> None:
        """Paused, writes are counted; the push that passes the limit is not written and
        the connection is dropped once, with the count."""
        self.out.pauseProducing()
        self.out.write(b"a" * 600)
        self.out.write(b"b" * 400)
        self.assertEqual(self.out.queued, 1000)
        self.assertEqual(self.overflows, [])
        self.out.write(b"c")
        self.assertEqual(self.overflows, [1001])
        self.assertTrue(self.out.overflowed)
        self.assertNotIn(b"c", self.transport.value())
        self.out.write(b"d" * 10)
        self.assertEqual(self.overflows, [1001])   # reported once

    def test_replies_are_never_dropped(self) -> None:
        """A reply past the limit is written and counted: replies are bounded by the
        requests in flight, and reading stops meanwhile."""
        self.out.pauseProducing()
        self.out.write(b"r" * 1500, reply=True)
        self.assertEqual(self.overflows, [])
        self.assertEqual(len(self.transport.value()), 1500)
        self.out.write(b"p")
        self.assertEqual(self.overflows, [1501])

    def test_reading_stops_past_the_mark_and_resumes_when_drained(self) -> None:
        """Reading is held once more than HOLD_READING_AT bytes wait, not at the first
        pause (a TLS handshake pauses its producer too); resuming releases it and starts
        the count again."""
        out = Outbound(self.transport, 10 * HOLD_READING_AT, self.gate, self.overflows.append)
        out.pauseProducing()
        out.write(b"x" * HOLD_READING_AT)
        self.assertEqual(self.switch.calls, [])
        out.write(b"x")
        self.assertEqual(self.switch.calls, ["pause"])
        self.assertEqual(self.gate.held, frozenset({"writes"}))
        out.resumeProducing()
        self.assertEqual(self.switch.calls, ["pause", "resume"])
        self.assertEqual((out.queued, out.paused), (0, False))

    def test_reserved_bytes_count(self) -> None:
        """Bytes waiting to be sealed count against the limit, paused or not; a reserve
        that passes it drops the connection (a reply's never does)."""
        self.assertTrue(self.out.reserve(900))
        self.assertEqual(self.out.pending, 900)
        self.out.pauseProducing()
        self.out.write(b"x" * 100)
        self.assertEqual(self.overflows, [])
        self.assertTrue(self.out.reserve(5000, reply=True))
        self.assertEqual(self.overflows, [])
        self.out.unreserve(5000)
        self.assertFalse(self.out.reserve(1))
        self.assertEqual(self.overflows, [1001])
        self.out.unreserve(901)
        self.assertEqual(self.out.pending, 0)

    def test_stop_producing_counts_from_then_on(self) -> None:
        """After stopProducing (the connection is going) writes are counted as held."""
        self.out.stopProducing()
        self.assertTrue(self.out.paused)
        self.out.write(b"x" * 10)
        self.assertEqual(self.out.queued, 10)
