"""Tests for messenger.server.relay: the call table and the UDP relay."""

from __future__ import annotations

import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, inlineCallbacks
from twisted.internet.protocol import DatagramProtocol
from twisted.trial.unittest import SynchronousTestCase, TestCase

from messenger.server.relay import CallEnded, CallTable, MemberEndpoints, RelayProtocol
from messenger.wire import media
from messenger.wire import media_payloads as payloads
from messenger.wire.media import AUDIO, BYE, PROBE, CallCipher
from tests.support.netsim import sleep, wait_until

CALL_ID = bytes.fromhex("a1a2a3a4a5a6a7a8")
KEY = bytes(range(32))
TOKENS = (bytes(range(32, 64)), bytes(range(64, 96)))
ALICE = ("198.51.100.1", 40001)
BOB = ("203.0.113.2", 50002)
MALLORY = ("192.0.2.66", 6666)


class FakeUDPTransport:
    """Records what a DatagramProtocol writes."""

    def __init__(self) -> None:
        self.written: list[tuple[bytes, tuple[str, int]]] = []
        self.fail = False

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.fail:
            raise OSError("boom")
        self.written.append((data, addr))


def make_relay(on_endpoint: Any = None) -> tuple[CallTable, RelayProtocol, FakeUDPTransport]:
    table = CallTable()
    table.add_call(CALL_ID, KEY, ("alice", "bob"), TOKENS, on_endpoint)
    relay = RelayProtocol(table)
    transport = FakeUDPTransport()
    relay.makeConnection(transport)
    return table, relay, transport


def hello(member: int, counter: int = 1, endpoints: tuple = (), token: bytes | None = None,
          call_id: bytes = CALL_ID) -> bytes:
    return media.encode_hello(call_id, member, counter,
                              TOKENS[member] if token is None else token, endpoints)


def join_both(relay: RelayProtocol, transport: FakeUDPTransport) -> None:
    relay.datagramReceived(hello(0), ALICE)
    relay.datagramReceived(hello(1), BOB)
    transport.written.clear()


class CallTableTests(SynchronousTestCase):
    """The in-memory table signalling drives."""

    def test_add_and_remove(self) -> None:
        """A call is there after add_call and gone after remove_call."""
        table = CallTable()
        table.add_call(CALL_ID, KEY, ("alice", "bob"), TOKENS)
        self.assertIn(CALL_ID, table)
        self.assertEqual(len(table), 1)
        self.assertEqual(table.endpoints(CALL_ID), (None, None))
        self.assertTrue(table.remove_call(CALL_ID))
        self.assertFalse(table.remove_call(CALL_ID))
        self.assertNotIn(CALL_ID, table)

    def test_add_refuses(self) -> None:
        """Duplicate ids, bad sizes and shared tokens are refused."""
        table = CallTable()
        table.add_call(CALL_ID, KEY, ("a", "b"), TOKENS)
        bad = [(CALL_ID, KEY, TOKENS), (b"short", KEY, TOKENS),
               (b"x" * 8, bytes(16), TOKENS), (b"y" * 8, KEY, (TOKENS[0], b"short")),
               (b"z" * 8, KEY, (TOKENS[0], TOKENS[0]))]
        for call_id, key, tokens in bad:
            self.assertRaises(ValueError, table.add_call, call_id, key, ("a", "b"), tokens)
        self.assertEqual(len(table), 1)

    def test_unknown_call(self) -> None:
        """Asking about an unknown call is a KeyError."""
        table = CallTable()
        self.assertRaises(KeyError, table.endpoints, CALL_ID)
        self.assertRaises(KeyError, table.wait_ready, CALL_ID)

    def test_wait_ready(self) -> None:
        """wait_ready fires with both members' endpoints after both HELLOs."""
        table, relay, _ = make_relay()
        waiting = table.wait_ready(CALL_ID)
        relay.datagramReceived(hello(0, endpoints=(("10.0.0.1", 4000),)), ALICE)
        self.assertNoResult(waiting)
        relay.datagramReceived(hello(1), BOB)
        first, second = self.successResultOf(waiting)
        self.assertEqual(first, MemberEndpoints(ALICE, (("10.0.0.1", 4000),)))
        self.assertEqual(second, MemberEndpoints(BOB, ()))
        self.assertEqual(first.all(), (ALICE, ("10.0.0.1", 4000)))
        self.assertEqual(self.successResultOf(table.wait_ready(CALL_ID)), (first, second))

    def test_wait_ready_fails_on_removal(self) -> None:
        """Removing the call before both HELLOs fails the wait with CallEnded."""
        table, relay, _ = make_relay()
        waiting = table.wait_ready(CALL_ID)
        table.remove_call(CALL_ID)
        self.failureResultOf(waiting, CallEnded)

    def test_wait_ready_cancel(self) -> None:
        """A cancelled wait is forgotten (signalling's own timeout)."""
        table, relay, _ = make_relay()
        waiting = table.wait_ready(CALL_ID)
        waiting.cancel()
        self.failureResultOf(waiting, CancelledError)
        self.assertEqual(table.get(CALL_ID).waiters, [])

    def test_on_endpoint(self) -> None:
        """on_endpoint hears each learned or changed endpoint, not repeats."""
        seen: list[tuple[bytes, int, MemberEndpoints]] = []
        _, relay, _ = make_relay(lambda *args: seen.append(args))
        relay.datagramReceived(hello(0, 1), ALICE)
        relay.datagramReceived(hello(0, 2), ALICE)
        relay.datagramReceived(hello(0, 3), ("198.51.100.1", 40999))
        self.assertEqual(seen, [(CALL_ID, 0, MemberEndpoints(ALICE)),
                                (CALL_ID, 0, MemberEndpoints(("198.51.100.1", 40999)))])

    def test_on_endpoint_failure_contained(self) -> None:
        """A failing callback is logged; the HELLO is still answered."""
        def broken(*args: Any) -> None:
            raise RuntimeError("signalling bug")
        _, relay, transport = make_relay(broken)
        relay.datagramReceived(hello(0), ALICE)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(len(transport.written), 1)


class RelayHelloTests(SynchronousTestCase):
    """HELLO in, HELLO_ACK out."""

    def test_ack(self) -> None:
        """A good HELLO is answered at its source with the observed endpoint."""
        _, relay, transport = make_relay()
        relay.datagramReceived(hello(0, 5), ALICE)
        [(packet, addr)] = transport.written
        self.assertEqual(addr, ALICE)
        self.assertTrue(media.verify_signed(packet, TOKENS[0]))
        ack = media.parse_hello_ack(packet)
        self.assertEqual((ack.member, ack.counter, ack.observed, ack.peer_present),
                         (0, 5, ALICE, False))
        self.assertEqual(relay.hellos, 1)

    def test_second_member_updates_first(self) -> None:
        """Bob's HELLO is answered with Alice's endpoints, and Alice is told about Bob."""
        _, relay, transport = make_relay()
        relay.datagramReceived(hello(0, endpoints=(("10.0.0.1", 4000),)), ALICE)
        transport.written.clear()
        relay.datagramReceived(hello(1, endpoints=(("10.1.0.2", 5000),)), BOB)
        by_addr = {addr: media.parse_hello_ack(packet) for packet, addr in transport.written}
        self.assertEqual(set(by_addr), {ALICE, BOB})
        self.assertEqual(by_addr[BOB].peer_endpoints, (ALICE, ("10.0.0.1", 4000)))
        self.assertTrue(by_addr[BOB].peer_present)
        self.assertEqual(by_addr[ALICE].peer_endpoints, (BOB, ("10.1.0.2", 5000)))
        self.assertTrue(media.verify_signed(
            next(p for p, a in transport.written if a == ALICE), TOKENS[0]))

    def test_wrong_token(self) -> None:
        """A HELLO signed with the other member's token is dropped unanswered."""
        table, relay, transport = make_relay()
        relay.datagramReceived(hello(0, token=TOKENS[1]), MALLORY)
        self.assertEqual((relay.dropped_auth, transport.written), (1, []))
        self.assertEqual(table.endpoints(CALL_ID), (None, None))

    def test_unknown_call(self) -> None:
        """A HELLO for a call id the relay does not serve is dropped unanswered."""
        _, relay, transport = make_relay()
        relay.datagramReceived(hello(0, call_id=b"\x00" * 8), ALICE)
        self.assertEqual((relay.dropped_unknown_call, transport.written), (1, []))

    def test_replayed_hello_cannot_move_endpoint(self) -> None:
        """An old HELLO replayed from another address is refused; the endpoint stays."""
        table, relay, _ = make_relay()
        captured = hello(0, 3)
        relay.datagramReceived(captured, ALICE)
        relay.datagramReceived(captured, MALLORY)
        self.assertEqual(relay.dropped_replay, 1)
        self.assertEqual(table.endpoints(CALL_ID)[0].public, ALICE)

    def test_rebinding(self) -> None:
        """A newer HELLO from a new address (NAT rebinding) moves the endpoint."""
        table, relay, _ = make_relay()
        relay.datagramReceived(hello(0, 3), ALICE)
        relay.datagramReceived(hello(0, 4), ("198.51.100.1", 41000))
        self.assertEqual(table.endpoints(CALL_ID)[0].public, ("198.51.100.1", 41000))

    def test_malformed_hello(self) -> None:
        """A truncated HELLO is counted malformed."""
        _, relay, transport = make_relay()
        relay.datagramReceived(hello(0)[:20], ALICE)
        self.assertEqual((relay.dropped_malformed, transport.written), (1, []))


class RelayForwardTests(SynchronousTestCase):
    """Sealed packets: forwarded only between members, only when authentic."""

    def setUp(self) -> None:
        self.table, self.relay, self.transport = make_relay()
        join_both(self.relay, self.transport)
        self.cipher = CallCipher(KEY)

    def audio(self, sender: int, seq: int, cipher: CallCipher | None = None,
              call_id: bytes = CALL_ID) -> bytes:
        return (cipher or self.cipher).seal(AUDIO, sender, call_id, seq, seq * 320, b"pcm")

    def test_forwarded_both_ways(self) -> None:
        """Audio from each member reaches the other, byte for byte."""
        a = self.audio(0, 0)
        b = self.audio(1, 0)
        self.relay.datagramReceived(a, ALICE)
        self.relay.datagramReceived(b, BOB)
        self.assertEqual(self.transport.written, [(a, BOB), (b, ALICE)])
        self.assertEqual(self.relay.relayed, 2)
        self.assertEqual(self.table.get(CALL_ID).relayed, 2)

    def test_probe_and_bye_forwarded(self) -> None:
        """PROBE and BYE are relayed like audio."""
        for ptype in (PROBE, BYE):
            self.relay.datagramReceived(self.cipher.seal(ptype, 0, CALL_ID, 0), ALICE)
        self.assertEqual([addr for _, addr in self.transport.written], [BOB, BOB])

    def test_wrong_key(self) -> None:
        """A packet from Alice's endpoint under another key is dropped, not relayed."""
        self.relay.datagramReceived(self.audio(0, 0, CallCipher(bytes(32))), ALICE)
        self.assertEqual((self.relay.dropped_auth, self.transport.written), (1, []))

    def test_non_member(self) -> None:
        """A valid packet from an address that is not the member's is dropped."""
        self.relay.datagramReceived(self.audio(0, 0), MALLORY)
        self.relay.datagramReceived(self.audio(1, 0), ALICE)  # Alice posing as Bob
        self.assertEqual((self.relay.dropped_auth, self.transport.written), (2, []))

    def test_unknown_call(self) -> None:
        """Nothing is forwarded for an unknown call id."""
        self.relay.datagramReceived(self.audio(0, 0, call_id=b"\x09" * 8), ALICE)
        self.assertEqual((self.relay.dropped_unknown_call, self.transport.written), (1, []))

    def test_removed_call(self) -> None:
        """After remove_call the relay forwards nothing for that call."""
        self.table.remove_call(CALL_ID)
        self.relay.datagramReceived(self.audio(0, 0), ALICE)
        self.assertEqual((self.relay.dropped_unknown_call, self.transport.written), (1, []))

    def test_replay(self) -> None:
        """A repeated packet is relayed once."""
        packet = self.audio(0, 7)
        self.relay.datagramReceived(packet, ALICE)
        self.relay.datagramReceived(packet, ALICE)
        self.assertEqual((self.relay.relayed, self.relay.dropped_replay), (1, 1))

    def test_forged_packet_does_not_move_window(self) -> None:
        """A forged packet with a high seq does not make later genuine ones 'old'."""
        self.relay.datagramReceived(self.audio(0, 100000, CallCipher(bytes(32))), ALICE)
        self.relay.datagramReceived(self.audio(0, 1), ALICE)
        self.assertEqual(self.relay.relayed, 1)

    def test_peer_unknown(self) -> None:
        """Before the peer said HELLO there is nowhere to relay to."""
        table, relay, transport = make_relay()
        relay.datagramReceived(hello(0), ALICE)
        transport.written.clear()
        relay.datagramReceived(self.audio(0, 0), ALICE)
        self.assertEqual((relay.dropped_no_peer, transport.written), (1, []))

    def test_garbage(self) -> None:
        """Empty, short, foreign-version and bad-sender datagrams are counted malformed."""
        good = self.audio(0, 0)
        for data in (b"", b"\x15" + bytes(10), b"GET / HTTP/1.0\r\n", b"\x12" + bytes(40),
                     good[:1] + b"\x05" + good[2:]):
            self.relay.datagramReceived(data, ALICE)
        self.assertEqual(self.relay.dropped_malformed, 5)
        self.assertEqual(self.transport.written, [])

    def test_no_exception_escapes(self) -> None:
        """An unexpected error (here the socket) is logged and counted, never raised."""
        self.transport.fail = True
        self.relay.datagramReceived(self.audio(0, 0), ALICE)
        self.assertEqual(self.relay.dropped_error, 1)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_stats(self) -> None:
        """stats() reports every counter."""
        self.relay.datagramReceived(self.audio(0, 0), ALICE)
        stats = self.relay.stats()
        self.assertEqual((stats["calls"], stats["relayed"], stats["hellos"]), (1, 1, 2))
        self.assertEqual(set(stats), {"calls", "relayed", "hellos", "dropped_malformed",
                                      "dropped_auth", "dropped_unknown_call",
                                      "dropped_replay", "dropped_no_peer", "dropped_rate",
                                      "dropped_error"})

    def test_lean_enough(self) -> None:
        """20,000 authenticated audio packets go through in well under a second of CPU."""
        packets = [self.audio(0, seq) for seq in range(20000)]
        self.transport.written = _Discard()
        started = time.process_time()
        for packet in packets:
            self.relay.datagramReceived(packet, ALICE)
        elapsed = time.process_time() - started
        self.assertEqual(self.relay.relayed, 20000)
        self.assertLess(elapsed, 2.0)


class _Discard(list):
    def append(self, item: Any) -> None:
        pass


class Recorder(DatagramProtocol):
    """A raw UDP client: sends what the test says, records what arrives."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    def datagramReceived(self, data: bytes, addr: Any) -> None:  # noqa: N802
        self.received.append(data)

    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.transport.getHost().port)


class RelayLoopbackTests(TestCase):
    """The relay on a real UDP socket, clients on real sockets."""

    def setUp(self) -> None:
        self.table = CallTable()
        self.table.add_call(CALL_ID, KEY, ("alice", "bob"), TOKENS)
        self.relay = RelayProtocol(self.table)
        port = reactor.listenUDP(0, self.relay, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.relay_addr = ("127.0.0.1", port.getHost().port)
        self.alice, self.bob, self.mallory = Recorder(), Recorder(), Recorder()
        for client in (self.alice, self.bob, self.mallory):
            self.addCleanup(reactor.listenUDP(0, client, interface="127.0.0.1").stopListening)
        self.cipher = CallCipher(KEY)

    @inlineCallbacks
    def join(self) -> Any:
        self.alice.transport.write(hello(0), self.relay_addr)
        self.bob.transport.write(hello(1), self.relay_addr)
        yield wait_until(lambda: self.table.get(CALL_ID).ready() and self.bob.received)
        yield wait_until(lambda: len(self.alice.received) >= 2)
        self.alice.received.clear()
        self.bob.received.clear()

    @inlineCallbacks
    def test_relays_between_members(self) -> None:
        """HELLO teaches the relay both endpoints; audio then flows both ways."""
        yield self.join()
        acks = self.table.endpoints(CALL_ID)
        self.assertEqual(acks[0].public, self.alice.address())
        for seq in range(10):
            self.alice.transport.write(
                self.cipher.seal(AUDIO, 0, CALL_ID, seq, 0, b"a"), self.relay_addr)
            self.bob.transport.write(
                self.cipher.seal(AUDIO, 1, CALL_ID, seq, 0, b"b"), self.relay_addr)
        yield wait_until(lambda: len(self.alice.received) == 10 == len(self.bob.received))
        self.assertEqual(self.cipher.open(self.bob.received[0]), b"a")
        self.assertEqual(self.relay.relayed, 20)

    @inlineCallbacks
    def test_drops_forgeries(self) -> None:
        """Wrong key, a non-member, an unknown call: counted, and Bob receives nothing."""
        yield self.join()
        wrong = CallCipher(bytes(32)).seal(AUDIO, 0, CALL_ID, 0, 0, b"x")
        self.alice.transport.write(wrong, self.relay_addr)
        genuine = self.cipher.seal(AUDIO, 0, CALL_ID, 1, 0, b"x")
        self.mallory.transport.write(genuine, self.relay_addr)
        unknown = self.cipher.seal(AUDIO, 0, b"\x07" * 8, 2, 0, b"x")
        self.alice.transport.write(unknown, self.relay_addr)
        self.mallory.transport.write(b"\x00garbage", self.relay_addr)
        yield wait_until(lambda: self.relay.dropped_auth == 2
                         and self.relay.dropped_unknown_call == 1
                         and self.relay.dropped_malformed == 1)
        yield sleep(0.1)
        self.assertEqual(self.bob.received, [])
        self.assertEqual(self.mallory.received, [])
        self.assertEqual(self.relay.relayed, 0)


class RelayAbuseTests(SynchronousTestCase):
    """No amplification, HELLOs limited per address, garbage cheap (issues 23 and 24)."""

    def test_never_answers_with_more_than_received(self) -> None:
        """An unpadded HELLO (32 bytes) is too small for any HELLO_ACK: it gets nothing;
        a client's padded HELLO gets an ack no longer than itself, even with five peer
        endpoints to tell."""
        _, relay, transport = make_relay()
        body = media.SIGNED.pack(media.type_byte(media.HELLO), 0, 0, 0, CALL_ID, 1)
        short = body + media.hmac.digest(TOKENS[0], body, media.sha256)[:16]
        relay.datagramReceived(short, ALICE)
        self.assertEqual(transport.written, [])
        many = tuple((f"2001:db8::{n}", 4000 + n) for n in range(1, 5))
        relay.datagramReceived(hello(1, endpoints=many), ("2001:db8::99", 5000))
        transport.written.clear()
        padded = hello(0, counter=2)
        relay.datagramReceived(padded, ALICE)
        [(ack, addr)] = [(p, a) for p, a in transport.written if a == ALICE]
        self.assertLessEqual(len(ack), len(padded))
        self.assertTrue(media.parse_hello_ack(ack).peer_present)

    def test_hellos_limited_per_address(self) -> None:
        """A flood of (even valid) HELLOs from one address is cut at the burst and
        counted; another address is not affected."""
        _, relay, transport = make_relay()
        for counter in range(1, 101):
            relay.datagramReceived(hello(0, counter), ALICE)
        self.assertEqual(relay.hellos, 40)
        self.assertEqual(relay.dropped_rate, 60)
        relay.datagramReceived(hello(1), BOB)
        self.assertEqual(relay.hellos, 41)

    def test_garbage_is_dropped_and_counted(self) -> None:
        """Random datagrams and unknown calls cost a counter, never an answer."""
        _, relay, transport = make_relay()
        for n in range(1000):
            relay.datagramReceived(bytes([n % 256]) * (n % 60 + 1), MALLORY)
        stats = relay.stats()
        self.assertEqual(transport.written, [])
        self.assertEqual(stats["dropped_malformed"] + stats["dropped_unknown_call"]
                         + stats["dropped_auth"], 1000)
        self.assertEqual(stats["dropped_error"], 0)

    def test_report_forwarded(self) -> None:
        """REPORT packets travel between the members like audio."""
        _, relay, transport = make_relay()
        join_both(relay, transport)
        report = CallCipher(KEY).seal(media.REPORT, 0, CALL_ID, 0, 0,
                                      payloads.encode_report(payloads.Report(1, 2, 3, 4, 5, 1)))
        relay.datagramReceived(report, ALICE)
        self.assertEqual(transport.written, [(report, BOB)])

    def test_dual_stack_addresses(self) -> None:
        """On a dual-stack socket an IPv4 member arrives as ::ffff:a.b.c.d: the relay
        binds and announces the plain address and writes to the mapped one."""
        table, relay, transport = make_relay()
        relay.dual_stack = True
        relay.datagramReceived(hello(0), ("::ffff:" + ALICE[0], ALICE[1]))
        [(ack, addr)] = transport.written
        self.assertEqual(addr, ("::ffff:" + ALICE[0], ALICE[1]))
        self.assertEqual(media.parse_hello_ack(ack).observed, ALICE)
        self.assertEqual(table.endpoints(CALL_ID)[0].public, ALICE)


class RelayStreamTests(TestCase):
    """The relay over TCP: a cap on connections per address."""

    @inlineCallbacks
    def test_connections_per_address_capped(self) -> Any:
        """Past the per-address cap a new TCP connection is closed at once."""
        from twisted.internet.protocol import ClientCreator, Protocol

        from messenger.server.relay_tcp import RelayStreamFactory
        table = CallTable()
        relay = RelayProtocol(table, reactor)
        factory = RelayStreamFactory(relay, per_address=2)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        creator = ClientCreator(reactor, Protocol)
        clients = []
        for _ in range(3):
            client = yield creator.connectTCP("127.0.0.1", port.getHost().port)
            clients.append(client)
            self.addCleanup(client.transport.loseConnection)
        yield wait_until(lambda: factory.refused == 1)
        self.assertEqual(factory.total, 2)
        for client in clients:
            client.transport.loseConnection()
        yield wait_until(lambda: factory.total == 0)
