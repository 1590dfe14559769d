"""Tests for messenger.client.calls.media: HELLO, probing, path choice, sealed audio."""

from __future__ import annotations

import base64
from typing import Any

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from messenger.client.calls import media as session_module
from messenger.client.calls.media import (
    CONNECTING,
    DIRECT,
    RELAY,
    CallParams,
    MediaSession,
    ReceivedAudio,
    SessionTiming,
    call_params_from_jim,
)
from messenger.server.relay import CallTable, RelayProtocol
from messenger.wire import media
from messenger.wire import media_payloads as payloads
from messenger.wire.media import AUDIO, BYE, HELLO, PROBE, PROBE_ACK, CallCipher
from tests.support.netsim import Switch, blocking_session_factory, relay_only, wait_until

CALL_ID = bytes.fromhex("1122334455667788")
KEY = bytes(range(32))
TOKENS = (bytes(range(32, 64)), bytes(range(64, 96)))
RELAY_ADDR = ("192.0.2.1", 7777)
ME = ("10.0.0.2", 5000)
PEER_PUBLIC = ("198.51.100.7", 40000)
PEER_LOCAL = ("10.1.0.7", 5000)
STRANGER = ("203.0.113.99", 9999)


class FakeUDPTransport:
    """A UDP port that records writes."""

    def __init__(self, host: tuple[str, int] = ME) -> None:
        self.host = host
        self.written: list[tuple[bytes, tuple[str, int]]] = []
        self.stopped = False

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.written.append((data, addr))

    def getHost(self) -> IPv4Address:  # noqa: N802
        return IPv4Address("UDP", *self.host)

    def stopListening(self) -> None:  # noqa: N802
        self.stopped = True

    def sent(self, ptype: int | None = None, to: tuple[str, int] | None = None) -> list[bytes]:
        return [data for data, addr in self.written
                if (ptype is None or media.packet_type(data) == ptype)
                and (to is None or addr == to)]


def make_session(clock: Clock, member: int = 0, candidates: tuple = (),
                 **kwargs: Any) -> tuple[MediaSession, FakeUDPTransport]:
    params = CallParams(CALL_ID, member, KEY, TOKENS[member], RELAY_ADDR, candidates, "pcm")
    session = MediaSession(params, clock, **kwargs)
    transport = FakeUDPTransport()
    session.makeConnection(transport)
    return session, transport


def hello_ack(member: int = 0, peers: tuple = (PEER_PUBLIC, PEER_LOCAL),
              token: bytes | None = None, present: bool = True) -> bytes:
    return media.encode_hello_ack(CALL_ID, member, 1,
                                  TOKENS[member] if token is None else token,
                                  ("203.0.113.5", 61000), present, peers)


class Peer:
    """Seals packets as member 1 would."""

    def __init__(self, key: bytes = KEY, sender: int = 1, call_id: bytes = CALL_ID) -> None:
        self.cipher = CallCipher(key)
        self.sender = sender
        self.call_id = call_id
        self.seq = 0

    def seal(self, ptype: int, stamp: int = 0, payload: bytes = b"", seq: int | None = None,
             codec: int = 0) -> bytes:
        if seq is None:
            seq = self.seq
            self.seq += 1
        return self.cipher.seal(ptype, self.sender, self.call_id, seq, stamp, payload, codec)

    def ack_for(self, probe: bytes) -> bytes:
        """The PROBE_ACK answering ``probe`` (one of the session's)."""
        header = media.parse_header(probe)
        return self.seal(PROBE_ACK, header.seq, CallCipher(KEY).open(probe))


class HelloTests(SynchronousTestCase):
    """Introducing ourselves to the relay."""

    def test_hello_at_start(self) -> None:
        """The first packet is a HELLO to the relay announcing our local endpoint."""
        clock = Clock()
        _, transport = make_session(clock)
        [packet] = transport.sent(HELLO, RELAY_ADDR)
        self.assertTrue(media.verify_signed(packet, TOKENS[0]))
        self.assertEqual(media.parse_hello(packet), media.Hello(CALL_ID, 0, 1, (ME,)))

    def test_no_local_endpoint_when_asked(self) -> None:
        """advertise_local=False keeps our local address to ourselves."""
        _, transport = make_session(Clock(), advertise_local=False)
        self.assertEqual(media.parse_hello(transport.sent(HELLO)[0]).endpoints, ())

    def test_retries_back_off(self) -> None:
        """Unanswered, HELLO is retried 50 ms, 100 ms, 200 ms ... apart, never more than
        1 s apart, and given up after 30 s."""
        clock = Clock()
        _, transport = make_session(clock)
        times = []
        for _ in range(int(40 / 0.025)):
            before = len(transport.sent(HELLO))
            clock.advance(0.025)
            if len(transport.sent(HELLO)) > before:
                times.append(round(clock.seconds(), 3))
        gaps = [round(b - a, 3) for a, b in zip([0.0] + times, times)]
        self.assertEqual(gaps[:5], [0.05, 0.1, 0.2, 0.4, 0.8])
        self.assertTrue(all(gap <= 1.0 + 1e-6 for gap in gaps), gaps)
        self.assertLessEqual(times[-1], 30.0)
        self.assertGreater(times[-1], 29.0)

    def test_kick_restarts_the_back_off(self) -> None:
        """kick() (the peer went quiet) says HELLO again at once and backs off anew,
        even after the relay had answered."""
        clock = Clock()
        session, transport = make_session(clock)
        session.datagramReceived(hello_ack(), RELAY_ADDR)
        clock.pump([0.05] * 20)
        sent = len(transport.sent(HELLO))
        session.kick()
        clock.pump([0.025] * 8)
        self.assertEqual(len(transport.sent(HELLO)) - sent, 3)   # 0, 50, 150 ms

    def test_ack_stops_retries(self) -> None:
        """After a HELLO_ACK the next HELLO is the keepalive 15 s later."""
        clock = Clock()
        session, transport = make_session(clock)
        session.datagramReceived(hello_ack(), RELAY_ADDR)
        clock.pump([0.05] * 290)
        self.assertEqual(len(transport.sent(HELLO)), 1)
        clock.pump([0.05] * 20)
        self.assertEqual(len(transport.sent(HELLO)), 2)

    def test_ack_teaches(self) -> None:
        """The ack gives our public endpoint, relay readiness and the peer's candidates."""
        clock = Clock()
        session, transport = make_session(clock)
        session.datagramReceived(hello_ack(), RELAY_ADDR)
        self.assertEqual(session.public_endpoint, ("203.0.113.5", 61000))
        self.assertTrue(session.hello_acked and session.relay_ready)
        self.assertEqual(session.candidates, [PEER_PUBLIC, PEER_LOCAL])
        self.assertEqual(len(transport.sent(PROBE, PEER_PUBLIC)), 1)
        self.assertEqual(len(transport.sent(PROBE, PEER_LOCAL)), 1)

    def test_forged_acks_ignored(self) -> None:
        """An ack with the wrong token, from elsewhere, or for the other member is refused."""
        session, _ = make_session(Clock())
        session.datagramReceived(hello_ack(token=TOKENS[1]), RELAY_ADDR)
        session.datagramReceived(hello_ack(), STRANGER)
        session.datagramReceived(hello_ack(member=1), RELAY_ADDR)
        self.assertEqual((session.dropped_auth, session.dropped_foreign), (1, 2))
        self.assertFalse(session.hello_acked)
        self.assertEqual(session.candidates, [])


class ProbingTests(SynchronousTestCase):
    """Finding, keeping and losing the direct path."""

    def test_probes_every_candidate(self) -> None:
        """Each candidate gets eight PROBEs, 50 ms apart doubling to 500 ms, then no more."""
        clock = Clock()
        _, transport = make_session(clock, candidates=(PEER_PUBLIC, PEER_LOCAL))
        self.assertEqual(len(transport.sent(PROBE, PEER_PUBLIC)), 1)
        clock.pump([0.025])
        self.assertEqual(len(transport.sent(PROBE, PEER_PUBLIC)), 1)
        clock.pump([0.025])
        self.assertEqual(len(transport.sent(PROBE, PEER_PUBLIC)), 2)
        clock.pump([0.05] * 100)
        self.assertEqual(len(transport.sent(PROBE, PEER_PUBLIC)), 8)
        self.assertEqual(len(transport.sent(PROBE, PEER_LOCAL)), 8)

    def test_direct_on_probe_ack(self) -> None:
        """The first PROBE_ACK makes the path direct to the endpoint that answered."""
        clock = Clock()
        paths: list[str] = []
        session, transport = make_session(clock, candidates=(PEER_PUBLIC, PEER_LOCAL),
                                          on_path=paths.append)
        self.assertEqual(session.path, CONNECTING)
        probe = transport.sent(PROBE, PEER_LOCAL)[0]
        clock.advance(0.003)
        session.datagramReceived(Peer().ack_for(probe), PEER_LOCAL)
        self.assertEqual((session.path, session.direct_endpoint), (DIRECT, PEER_LOCAL))
        self.assertEqual(paths, [DIRECT])
        self.assertEqual(session.rtt_ms, 3.0)
        clock.pump([0.05] * 30)
        self.assertEqual(len(transport.sent(PROBE, PEER_PUBLIC)), 1)
        session.send_audio(0, b"frame", 0)
        self.assertEqual(transport.written[-1][1], PEER_LOCAL)

    def test_relay_after_a_second(self) -> None:
        """The relay path counts only once a HELLO_ACK says the relay knows the peer;
        then, with no PROBE_ACK within 1 s, the path is the relay (audio went there all
        along)."""
        clock = Clock()
        session, transport = make_session(clock, candidates=(PEER_PUBLIC,))
        session.send_audio(0, b"early", 0)
        self.assertEqual(transport.written[-1][1], RELAY_ADDR)
        clock.pump([0.05] * 40)
        self.assertEqual(session.path, CONNECTING)      # no HELLO_ACK: nothing verified
        session.datagramReceived(hello_ack(present=False), RELAY_ADDR)
        clock.pump([0.05] * 40)
        self.assertEqual(session.path, CONNECTING)      # the relay does not know the peer
        session.datagramReceived(hello_ack(), RELAY_ADDR)
        clock.pump([0.05] * 19)
        self.assertEqual(session.path, CONNECTING)
        clock.pump([0.05] * 2)
        self.assertEqual(session.path, RELAY)
        session.send_audio(320, b"later", 0)
        self.assertEqual(transport.written[-1][1], RELAY_ADDR)

    def test_ack_via_relay_is_not_direct(self) -> None:
        """A PROBE_ACK that came through the relay does not make the path direct."""
        clock = Clock()
        session, transport = make_session(clock, candidates=(PEER_PUBLIC,))
        probe = transport.sent(PROBE, PEER_PUBLIC)[0]
        session.datagramReceived(Peer().ack_for(probe), RELAY_ADDR)
        self.assertEqual(session.path, CONNECTING)

    def test_probe_answered(self) -> None:
        """A PROBE is answered at its source, echoing seq and clock; the source is probed."""
        clock = Clock()
        session, transport = make_session(clock)
        peer = Peer()
        peer.seq = 41
        session.datagramReceived(peer.seal(PROBE, 0, payloads.probe_payload(7.5)), STRANGER)
        [ack] = transport.sent(PROBE_ACK, STRANGER)
        header = media.parse_header(ack)
        self.assertEqual((header.sender, header.stamp), (0, 41))
        self.assertEqual(payloads.probe_time(CallCipher(KEY).open(ack)), 7.5)
        self.assertIn(STRANGER, session.candidates)
        self.assertEqual(len(transport.sent(PROBE, STRANGER)), 1)

    def test_keepalive_keeps_direct(self) -> None:
        """Answered keepalive PROBEs (every 0.5 s) keep the path direct."""
        clock = Clock()
        session, transport = make_session(clock, candidates=(PEER_LOCAL,))
        peer = Peer()
        session.datagramReceived(peer.ack_for(transport.sent(PROBE)[0]), PEER_LOCAL)
        answered = 1
        for _ in range(200):
            clock.advance(0.05)
            probes = transport.sent(PROBE, PEER_LOCAL)
            for probe in probes[answered:]:
                session.datagramReceived(peer.ack_for(probe), PEER_LOCAL)
            answered = len(probes)
        self.assertEqual(session.path, DIRECT)
        self.assertTrue(18 <= answered <= 23, answered)

    def test_dead_direct_falls_back_and_recovers(self) -> None:
        """No PROBE_ACK for 2 s: back to the relay; the next round (5 s) finds it again."""
        clock = Clock()
        paths: list[str] = []
        session, transport = make_session(clock, candidates=(PEER_LOCAL,), on_path=paths.append)
        peer = Peer()
        session.datagramReceived(peer.ack_for(transport.sent(PROBE)[0]), PEER_LOCAL)
        # the peer keeps sending us audio directly, but our probes get no answer
        for step in range(41):
            clock.advance(0.05)
            session.datagramReceived(peer.seal(AUDIO, step * 320, b"x"), PEER_LOCAL)
        self.assertEqual(session.path, RELAY)
        self.assertIsNone(session.direct_endpoint)
        session.send_audio(0, b"frame", 0)
        self.assertEqual(transport.written[-1][1], RELAY_ADDR)
        before = len(transport.sent(PROBE, PEER_LOCAL))
        clock.pump([0.05] * 101)
        fresh = transport.sent(PROBE, PEER_LOCAL)[before:]
        self.assertTrue(fresh)
        session.datagramReceived(peer.ack_for(fresh[0]), PEER_LOCAL)
        self.assertEqual(paths, [DIRECT, RELAY, DIRECT])

    def test_candidates_filtered(self) -> None:
        """Our own endpoints, the relay, other families and more than 8 are not probed."""
        session, _ = make_session(Clock())
        session.add_candidates([ME, RELAY_ADDR, ("2001:db8::1", 5), PEER_LOCAL, PEER_LOCAL])
        self.assertEqual(session.candidates, [PEER_LOCAL])
        session.add_candidates([("10.9.0.1", port) for port in range(1, 20)])
        self.assertEqual(len(session.candidates), session_module.MAX_CANDIDATES)


class ReceiveTests(SynchronousTestCase):
    """Incoming sealed packets."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.audio: list[ReceivedAudio] = []
        self.byes: list[bool] = []
        self.session, self.transport = make_session(
            self.clock, on_audio=self.audio.append, on_bye=lambda: self.byes.append(True))
        self.peer = Peer()

    def test_audio_delivered(self) -> None:
        """Audio reaches the observer with seq, stamp, codec, payload and path."""
        self.session.datagramReceived(self.peer.seal(AUDIO, 640, b"voice", codec=1),
                                      PEER_LOCAL)
        self.session.datagramReceived(self.peer.seal(AUDIO, 960, b"more"), RELAY_ADDR)
        self.assertEqual(self.audio, [ReceivedAudio(0, 640, 1, 0, b"voice", False),
                                      ReceivedAudio(1, 960, 0, 0, b"more", True)])
        self.assertEqual((self.session.received_direct, self.session.received_relay), (1, 1))

    def test_refused(self) -> None:
        """Replays, wrong key, foreign call, our own index, garbage: dropped and counted."""
        packet = self.peer.seal(AUDIO, 0, b"x")
        self.session.datagramReceived(packet, PEER_LOCAL)
        self.session.datagramReceived(packet, RELAY_ADDR)
        self.session.datagramReceived(Peer(key=bytes(32)).seal(AUDIO, 0, b"x", seq=5),
                                      PEER_LOCAL)
        self.session.datagramReceived(Peer(call_id=b"\x00" * 8).seal(AUDIO), PEER_LOCAL)
        self.session.datagramReceived(Peer(sender=0).seal(AUDIO), PEER_LOCAL)
        for garbage in (b"", b"\x15abc", media.encode_hello(CALL_ID, 1, 1, TOKENS[1])):
            self.session.datagramReceived(garbage, PEER_LOCAL)
        self.assertEqual(len(self.audio), 1)
        self.assertEqual((self.session.dropped_replay, self.session.dropped_auth,
                          self.session.dropped_foreign, self.session.dropped_malformed),
                         (1, 1, 2, 3))

    def test_observer_failure_contained(self) -> None:
        """An exception in the audio observer is logged, not raised into the reactor."""
        self.session.on_audio = lambda packet: 1 / 0
        self.session.datagramReceived(self.peer.seal(AUDIO, 0, b"x"), PEER_LOCAL)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_bye(self) -> None:
        """A BYE from the peer is reported once."""
        self.session.datagramReceived(self.peer.seal(BYE), RELAY_ADDR)
        self.assertEqual(self.byes, [True])

    def test_close(self) -> None:
        """close() says BYE on the relay (and direct path), stops timers and sending."""
        self.session.datagramReceived(
            self.peer.ack_for(self.session_probe(PEER_LOCAL)), PEER_LOCAL)
        self.transport.written.clear()
        self.successResultOf(self.session.close())
        self.assertEqual(len(self.transport.sent(BYE, RELAY_ADDR)), 1)
        self.assertEqual(len(self.transport.sent(BYE, PEER_LOCAL)), 1)
        self.assertTrue(self.transport.stopped)
        self.assertFalse(self.session.send_audio(0, b"x", 0))
        self.session.doStop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def session_probe(self, endpoint: tuple[str, int]) -> bytes:
        self.session.add_candidates([endpoint])
        return self.transport.sent(PROBE, endpoint)[0]


class ParamsTests(SynchronousTestCase):
    """CallParams and the JIM call_start fields."""

    def test_validation(self) -> None:
        """Wrong sizes, member indexes and endpoints are refused."""
        good = dict(call_id=CALL_ID, member=0, key=KEY, token=TOKENS[0], relay=RELAY_ADDR)
        CallParams(**good)
        for field, value in [("call_id", b"x"), ("member", 2), ("key", b"k"),
                             ("token", b"t"), ("relay", ("h", 0)), ("relay", "h:1")]:
            self.assertRaises(ValueError, CallParams, **{**good, field: value})

    def test_from_jim(self) -> None:
        """A call_start push becomes CallParams."""
        message = {"action": "call_start", "call_id": CALL_ID.hex(), "member": 1,
                   "key": base64.b64encode(KEY).decode(),
                   "token": base64.b64encode(TOKENS[1]).decode(),
                   "relay": ["192.0.2.1", 7777], "peer_endpoints": [["10.1.0.7", 5000]],
                   "codec": "opus"}
        self.assertEqual(call_params_from_jim(message),
                         CallParams(CALL_ID, 1, KEY, TOKENS[1], RELAY_ADDR, (PEER_LOCAL,),
                                    "opus"))

    def test_from_jim_refuses(self) -> None:
        """Missing or malformed fields are a ValueError."""
        base = {"call_id": CALL_ID.hex(), "member": 0, "key": base64.b64encode(KEY).decode(),
                "token": base64.b64encode(TOKENS[0]).decode(), "relay": ["192.0.2.1", 7777]}
        call_params_from_jim(base)
        for field, value in [("call_id", "zz"), ("member", "0"), ("key", "!!"),
                             ("relay", "192.0.2.1"), ("codec", 5), ("peer_endpoints", [[1]])]:
            self.assertRaises(ValueError, call_params_from_jim, {**base, field: value})
        self.assertRaises(ValueError, call_params_from_jim, {"member": 0})



FAST = SessionTiming(tick=0.02, hello_first=0.05, probe_first=0.05,
                     direct_timeout=0.5, direct_keepalive=0.1, direct_dead_after=0.4,
                     reprobe_interval=0.5)


class LoopbackTests(TestCase):
    """Two sessions and a relay on real UDP sockets on 127.0.0.1."""

    def setUp(self) -> None:
        self.table = CallTable()
        self.table.add_call(CALL_ID, KEY, ("alice", "bob"), TOKENS)
        self.relay = RelayProtocol(self.table)
        port = reactor.listenUDP(0, self.relay, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.relay_addr = ("127.0.0.1", port.getHost().port)
        self.heard: dict[int, list[ReceivedAudio]] = {0: [], 1: []}

    def start(self, factory: Any = MediaSession, timing: SessionTiming = FAST,
              ) -> list[MediaSession]:
        sessions = []
        for member in (0, 1):
            params = CallParams(CALL_ID, member, KEY, TOKENS[member], self.relay_addr)
            session = factory(params, reactor, timing=timing,
                              on_audio=self.heard[member].append)
            session.listen("127.0.0.1")
            self.addCleanup(session.close)
            sessions.append(session)
        return sessions

    def talk(self, sessions: list[MediaSession], frames: int, start: int = 0) -> None:
        for seq in range(start, start + frames):
            for member, session in enumerate(sessions):
                session.send_audio(seq * 320, b"%d:%d" % (member, seq), 0)

    @inlineCallbacks
    def test_direct_path(self) -> None:
        """On an open network both sides find the direct path and audio takes it."""
        sessions = self.start()
        yield wait_until(lambda: all(s.path == DIRECT for s in sessions))
        self.talk(sessions, 30)
        yield wait_until(lambda: len(self.heard[0]) == 30 == len(self.heard[1]))
        self.assertEqual([a.payload for a in self.heard[1]], [b"0:%d" % i for i in range(30)])
        self.assertTrue(all(not a.via_relay for a in self.heard[0] + self.heard[1]))
        self.assertEqual(sessions[0].direct_endpoint,
                         ("127.0.0.1", sessions[1].transport.getHost().port))
        self.assertEqual(self.relay.relayed, 0)

    @inlineCallbacks
    def test_relay_when_direct_blocked(self) -> None:
        """With the direct path blocked both sides settle on the relay, which carries it."""
        sessions = self.start(blocking_session_factory(relay_only))
        yield wait_until(lambda: all(s.path == RELAY for s in sessions)
                         and all(s.relay_ready for s in sessions))
        self.assertTrue(all(s.transport.blocked > 0 for s in sessions))
        self.talk(sessions, 30)
        yield wait_until(lambda: len(self.heard[0]) == 30 == len(self.heard[1]))
        self.assertTrue(all(a.via_relay for a in self.heard[0] + self.heard[1]))
        self.assertEqual(self.relay.relayed, 60)
        self.assertEqual(self.relay.dropped_auth + self.relay.dropped_replay, 0)

    @inlineCallbacks
    def test_fallback_and_back(self) -> None:
        """Direct, then cut: the relay takes over; restored: direct again."""
        switch = Switch()
        sessions = self.start(blocking_session_factory(switch))
        yield wait_until(lambda: all(s.path == DIRECT for s in sessions))
        switch.direct_open = False
        yield wait_until(lambda: all(s.path == RELAY for s in sessions))
        self.talk(sessions, 10)
        yield wait_until(lambda: len(self.heard[1]) == 10)
        self.assertTrue(all(a.via_relay for a in self.heard[1]))
        switch.direct_open = True
        yield wait_until(lambda: all(s.path == DIRECT for s in sessions))
        self.talk(sessions, 10, start=10)
        yield wait_until(lambda: len(self.heard[1]) == 20)
        self.assertFalse(any(a.via_relay for a in self.heard[1][10:]))
