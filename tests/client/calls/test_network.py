"""Calls on a bad network over real sockets: speech quality (PESQ-WB) under loss, setup
after a blip, a peer that vanishes, a blocked relay, UDP blocked (TCP relay), IPv6 and a
dual-stack server.

The speech cases run in simulated time (`messenger.bench.calls`: real sockets, relay and
engines, timers on a clock the driver moves), so their scores do not depend on how busy
the machine is; the other tests run in real time and wait for explicit events (audio
both ways, a state change).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from messenger.bench import speech
from messenger.bench.calls import Case, run_case
from messenger.bench.impair import Impairment, ImpairmentProxy
from messenger.client.calls.audio import FakeAudioDevice
from messenger.client.calls.engine import (
    ACTIVE,
    FAILED,
    LOST,
    RECONNECTING,
    CallEngine,
    MediaTiming,
)
from messenger.client.calls.media import RELAY, MediaSession, SessionTiming
from messenger.client.calls.params import CallParams, call_params_from_jim
from messenger.server.relay import CallTable, RelayProtocol
from messenger.wire import media
from tests.support.jimclient import connect, new_user
from tests.support.netsim import blocking_session_factory, relay_only, wait_until
from tests.support.server import start_server

FAST = SessionTiming(tick=0.02, direct_timeout=0.3)


class SpeechQualityTests(TestCase):
    """Speech through an impaired relay path, scored with PESQ-WB (ITU-T P.862.2)."""

    timeout = 90

    @defer.inlineCallbacks
    def test_pesq_clean_5_and_20_percent_loss(self) -> Any:
        """Clean: PESQ-WB >= 3.8 both ways and mouth-to-ear <= 150 ms; 5 % random loss
        each way: >= 3.3; 20 %: >= 2.5 (FEC, redundancy and concealment at work)."""
        cases = (Case("clean"), Case("5% loss", Impairment(loss=0.05)),
                 Case("20% loss", Impairment(loss=0.20)))
        results = yield defer.gatherResults([run_case(reactor, case, seed=1, scored=False,
                                                      simulated=True)
                                             for case in cases])
        clean, five, twenty = (result.score() for result in results)
        summary = [(r.name, r.pesq, r.mouth_to_ear_ms) for r in results]
        self.assertGreaterEqual(clean.worst_pesq, 3.8, summary)
        self.assertLessEqual(max(clean.mouth_to_ear_ms), 150, summary)
        self.assertGreater(min(clean.mouth_to_ear_ms), 0, summary)
        self.assertGreaterEqual(five.worst_pesq, 3.3, summary)
        self.assertGreaterEqual(twenty.worst_pesq, 2.5, summary)
        # the losses really happened, and the sender protected its audio
        for result, low in ((five, 0.03), (twenty, 0.15)):
            for proxy in result.extra["proxies"]:
                dropped = proxy["down_dropped"] / (proxy["down_dropped"] + proxy["down_passed"])
                self.assertGreater(dropped, low, result.extra)
            self.assertTrue(all(s.redundancy == 2 for s in result.stats), result.stats)
            self.assertTrue(all(s.recovered > 0 for s in result.stats), result.stats)
        self.assertTrue(all(s.media == ACTIVE for r in results for s in r.stats))


class TwoEngines:
    """Two engines with stand-in sound devices, each behind its own impairment proxy
    in front of an in-process relay, direct path blocked."""

    def __init__(self, test: TestCase, media_timing: MediaTiming | None = None,
                 timing: SessionTiming = FAST, factory: Any = None) -> None:
        self.test = test
        table = CallTable()
        self.relay = RelayProtocol(table, reactor)
        port = reactor.listenUDP(0, self.relay, interface="127.0.0.1")
        test.addCleanup(port.stopListening)
        relay = ("127.0.0.1", port.getHost().port)
        call_id, key = media.new_call_id(), media.new_call_key()
        tokens = (media.new_token(), media.new_token())
        table.add_call(call_id, key, ("a", "b"), tokens)
        sample = speech.speech("a")
        self.devices = [FakeAudioDevice(speech.padded(sample, 0.0, 0.0) * 4),
                        FakeAudioDevice(speech.padded(sample, 0.0, 0.0) * 4)]
        self.proxies, self.engines, self.params, self.media = [], [], [], ([], [])
        for member in (0, 1):
            proxy = ImpairmentProxy(relay, reactor=reactor, seed=member)
            proxy_port = reactor.listenUDP(0, proxy, interface="127.0.0.1")
            test.addCleanup(proxy_port.stopListening)
            self.proxies.append(proxy)
            self.params.append(CallParams(call_id, member, key, tokens[member],
                                          proxy.address, codec="opus"))
            engine = CallEngine(reactor, audio=self.devices[member], interface="127.0.0.1",
                                timing=timing, media_timing=media_timing,
                                session_factory=factory or blocking_session_factory(
                                    relay_only),
                                on_media=lambda state, why, m=member:
                                self.media[m].append((reactor.seconds(), state, why)))
            test.addCleanup(engine.stop)
            self.engines.append(engine)

    def start(self) -> defer.Deferred:
        return defer.gatherResults([engine.start(params)
                                    for engine, params in zip(self.engines, self.params)])

    def states(self) -> list[str]:
        return [engine.media_state for engine in self.engines]


class LineTests(TestCase):
    """Setup, liveness and failure, in real time with explicit events."""

    timeout = 60

    @defer.inlineCallbacks
    def test_audio_within_1_5_s_after_a_4_s_setup_blip(self) -> Any:
        """UDP lost for the first 4 s of a call: audio flows both ways within 1.5 s of
        the network returning (HELLO back-off is capped at 1 s)."""
        pair = TwoEngines(self)
        for proxy in pair.proxies:
            proxy.blackhole(4.0)
        back = reactor.seconds() + 4.0
        yield pair.start()
        yield wait_until(lambda: pair.states() == [ACTIVE, ACTIVE], timeout=10)
        self.assertLessEqual(reactor.seconds() - back, 1.5)
        self.assertGreater(reactor.seconds() - back, 0.0)
        self.assertTrue(all(e.stats().audio_received > 0 for e in pair.engines))

    @defer.inlineCallbacks
    def test_vanished_peer_reconnecting_then_lost(self) -> Any:
        """The peer's network goes: the other side says "reconnecting" once it has heard
        nothing for the reconnect time, and gives the call up at the lost time; the
        quality indicator says "no audio" within a second of the outage."""
        timing = MediaTiming(reconnect_after=1.0, lost_after=2.5)
        pair = TwoEngines(self, media_timing=timing)
        yield pair.start()
        yield wait_until(lambda: pair.states() == [ACTIVE, ACTIVE], timeout=10)
        self.assertEqual(pair.engines[0].stats().quality, 3)
        gone = reactor.seconds()
        pair.proxies[1].blackhole(60.0)
        yield wait_until(lambda: pair.engines[0].stats().quality == 0, timeout=3)
        self.assertLessEqual(reactor.seconds() - gone, 1.1)
        yield wait_until(lambda: pair.engines[0].media_state == LOST, timeout=5)
        states = [(round(t - gone, 1), state) for t, state, _ in pair.media[0]]
        self.assertEqual([s for _, s in states], [ACTIVE, RECONNECTING, LOST])
        self.assertTrue(0.9 <= states[1][0] <= 1.5, states)
        self.assertTrue(2.4 <= states[2][0] <= 3.0, states)
        self.assertIn("no audio from the other side", pair.media[0][-1][2])

    @defer.inlineCallbacks
    def test_blocked_relay_fails_clearly_never_active(self) -> Any:
        """The relay's port blocked: no HELLO_ACK, so the call never goes active and
        fails at the setup time with a reason naming the relay."""
        timing = MediaTiming(setup_timeout=1.5)
        pair = TwoEngines(self, media_timing=timing)
        for proxy in pair.proxies:
            proxy.blackhole(60.0)
        yield pair.start()
        yield wait_until(lambda: pair.states() == [FAILED, FAILED], timeout=5)
        self.assertEqual([s for _, s, _ in pair.media[0]], [FAILED])
        reason = pair.media[0][0][2]
        self.assertIn("call relay", reason)
        self.assertIn("does not answer", reason)
        self.assertFalse(pair.engines[0].session.hello_acked)
        self.assertEqual(pair.engines[0].session.path, "connecting")


def udp_blocked(session: MediaSession, addr: tuple[str, int]) -> bool:
    """A network that drops every UDP datagram (TCP still works)."""
    return False


class ServerPathTests(TestCase):
    """Calls set up through the real server: TCP relay, IPv6, dual stack."""

    timeout = 60

    @defer.inlineCallbacks
    def call_through(self, server: Any, host: str, factory: Any = MediaSession) -> Any:
        port = server.tcp_port
        alice = yield connect(self, port, host=host)
        yield alice.request("register", **new_user("alice"))
        bob = yield connect(self, port, host=host)
        yield bob.request("register", **new_user("bob"))
        yield alice.request("add_contact", user_id="bob")
        yield alice.request("call_dial", user_id="bob", codecs=["opus"])
        yield bob.wait_push("call_ring")
        yield bob.request("call_dial", user_id="alice", codecs=["opus"])
        starts = yield defer.gatherResults([alice.wait_push("call_start"),
                                            bob.wait_push("call_start")])
        engines = []
        for start in starts:
            self.assertNotIn("peer_endpoints", start)
            params = call_params_from_jim(start)
            device = FakeAudioDevice(speech.padded(speech.speech("a"), 0.0, 0.0))
            engine = CallEngine(reactor, audio=device, timing=FAST, session_factory=factory)
            self.addCleanup(engine.stop)
            yield engine.start(params)
            engines.append(engine)
        yield wait_until(lambda: [e.media_state for e in engines] == [ACTIVE, ACTIVE],
                         timeout=15)
        return starts, engines

    @defer.inlineCallbacks
    def test_udp_blocked_uses_the_tcp_relay(self) -> Any:
        """With every UDP datagram dropped, both clients reach the relay over TCP and
        audio flows both ways through it."""
        server = yield start_server(self)
        starts, engines = yield self.call_through(
            server, "127.0.0.1", blocking_session_factory(udp_blocked))
        self.assertEqual(starts[0]["relay_tcp"], server.ctx.calls.relay_tcp_port)
        self.assertTrue(all(e.session.over_tcp for e in engines))
        self.assertEqual([e.stats().path for e in engines], [RELAY, RELAY])
        self.assertGreater(server.relay.relayed, 20)
        self.assertTrue(all(e.session.transport.blocked > 0 for e in engines))

    @defer.inlineCallbacks
    def test_ipv6_clients_call_each_other(self) -> Any:
        """A server on ::1: the clients get an IPv6 relay address and talk over it."""
        server = yield start_server(self, interface="::1")
        starts, engines = yield self.call_through(server, "::1")
        self.assertEqual(starts[0]["relay"][0], "::1")
        self.assertTrue(all(":" in e.session.transport.getHost().host for e in engines))
        self.assertTrue(all(e.session.public_endpoint[0] == "::1" for e in engines))

    @defer.inlineCallbacks
    def test_dual_stack_by_default(self) -> Any:
        """With no interface configured the server takes JIM and relay traffic over both
        IPv4 and IPv6; an IPv6 call works while IPv4 clients still log in."""
        server = yield start_server(self, interface="")
        v4 = yield connect(self, server.tcp_port, host="127.0.0.1")
        reply = yield v4.request("register", **new_user("carol"))
        self.assertEqual(reply["response"], 201)
        starts, engines = yield self.call_through(server, "::1")
        self.assertEqual(starts[0]["relay"][0], "::1")
        self.assertEqual(engines[0].stats().media, ACTIVE)
