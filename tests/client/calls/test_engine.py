"""Tests for messenger.client.calls.engine: whole calls, from capture to playback."""

from __future__ import annotations

from array import array
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.trial.unittest import TestCase

from messenger.client.calls import audio as audio_module
from messenger.client.calls import codec as codec_module
from messenger.client.calls.audio import AudioUnavailable, FakeAudioDevice
from messenger.client.calls.codec import FRAME_SAMPLES, OPUS, PCM
from messenger.client.calls.engine import CallEngine, CallStats
from messenger.client.calls.media import DIRECT, RELAY, CallParams, SessionTiming
from messenger.server.relay import CallTable, RelayProtocol
from messenger.wire import media
from tests.support.alsa import chirp
from tests.support.netsim import (
    LossyForwarder,
    audio_seq,
    blocking_session_factory,
    relay_only,
    sleep,
    wait_until,
)

FAST = SessionTiming(tick=0.02, hello_first=0.05, probe_first=0.05, direct_timeout=0.3)


def numbered_frames(count: int) -> bytes:
    """Frame i holds the sample value 1000 + i throughout (PCM carries it exactly)."""
    return b"".join(array("h", [1000 + i] * FRAME_SAMPLES).tobytes() for i in range(count))


def frame_values(played: list[bytes]) -> list[int]:
    """i + 1 for each played frame that is numbered frame i, else 0 (concealment,
    comfort noise, silence)."""
    values = []
    for frame in played:
        samples = array("h", frame)
        first = samples[0]
        exact = first >= 1000 and samples.count(first) == len(samples)
        values.append(first - 999 if exact else 0)
    return values


class Relay:
    """A relay on 127.0.0.1 with one call in its table."""

    def __init__(self, test: TestCase) -> None:
        self.table = CallTable()
        self.protocol = RelayProtocol(self.table)
        port = reactor.listenUDP(0, self.protocol, interface="127.0.0.1")
        test.addCleanup(port.stopListening)
        self.address = ("127.0.0.1", port.getHost().port)
        self.call_id = media.new_call_id()
        self.key = media.new_call_key()
        self.tokens = (media.new_token(), media.new_token())
        self.table.add_call(self.call_id, self.key, ("alice", "bob"), self.tokens)

    def params(self, member: int, codec: str = PCM,
               relay: tuple[str, int] | None = None) -> CallParams:
        return CallParams(self.call_id, member, self.key, self.tokens[member],
                          relay or self.address, (), codec)


class EngineTests(TestCase):
    """Two engines with stand-in sound devices over real UDP on loopback."""

    def setUp(self) -> None:
        self.relay = Relay(self)

    @inlineCallbacks
    def call(self, capture_a: bytes = b"", codec: str = PCM, factory: Any = None,
             relay_b: tuple[str, int] | None = None, **kwargs: Any) -> Any:
        self.devices = (FakeAudioDevice(capture_a), FakeAudioDevice())
        extra = {} if factory is None else {"session_factory": factory}
        self.engines = []
        for member, device in enumerate(self.devices):
            engine = CallEngine(reactor, audio=device, interface="127.0.0.1", timing=FAST,
                                **extra, **kwargs)
            self.addCleanup(engine.stop)
            self.engines.append(engine)
        yield gatherResults([
            self.engines[0].start(self.relay.params(0, codec)),
            self.engines[1].start(self.relay.params(1, codec, relay_b))])

    @inlineCallbacks
    def test_frames_arrive_in_order(self) -> None:
        """Captured frames play at the other end in order, over the direct path."""
        yield self.call(numbered_frames(60))
        yield sleep(1.5)
        values = [v for v in frame_values(self.devices[1].played) if v]
        self.assertEqual(values, sorted(values))
        # the very first frames may go before the peer has said HELLO to the relay
        self.assertLessEqual(values[0], 5)
        self.assertEqual(sorted(set(values)), list(range(values[0], 61)))
        stats = self.engines[1].stats()
        self.assertEqual((stats.path, stats.lost, stats.late), (DIRECT, 0, 0))
        self.assertEqual(stats.received_relay + stats.received_direct, stats.audio_received)
        self.assertGreater(stats.received_direct, 60)

    @inlineCallbacks
    def test_opus_call(self) -> None:
        """With Opus negotiated the frames travel as Opus and decode at the other end."""
        yield self.call(b"".join(chirp(2.0).tobytes() for _ in range(1)), codec=OPUS)
        yield sleep(1.0)
        stats = self.engines[0].stats()
        self.assertEqual(stats.codec, OPUS)
        received = self.engines[1].session.bytes_received
        self.assertLess(received / self.engines[1].session.packets_received, 200)
        loud = [f for f in self.devices[1].played if max(array("h", f)) > 3000]
        self.assertGreater(len(loud), 20)
        self.assertEqual(self.engines[1].stats().undecodable, 0)

    @inlineCallbacks
    def test_loss_and_reordering(self) -> None:
        """Through a lossy, reordering hop the jitter buffer keeps order and counts loss."""
        forwarder = LossyForwarder(
            self.relay.address,
            drop=lambda data: (audio_seq(data) or 0) % 10 == 5,
            delay=lambda data: 0.03 if (audio_seq(data) or 0) % 10 == 2 else 0.0)
        port = reactor.listenUDP(0, forwarder, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        yield self.call(numbered_frames(400), factory=blocking_session_factory(relay_only),
                        relay_b=("127.0.0.1", port.getHost().port))
        yield sleep(3.0)
        # one snapshot: what was played and the counters, in the same reactor turn
        values = [v for v in frame_values(self.devices[1].played) if v]
        stats = self.engines[1].stats()
        due = self.engines[1].jitter.next_seq
        distinct = sorted(set(values))
        self.assertEqual(values, sorted(values))          # never out of order
        dropped = {audio_seq(d) for d in forwarder.dropped}
        # frame value v is audio seq v - 1; the drops between the first frame played
        # and the one due next are exactly the frames the buffer had to give up on
        first = distinct[0] - 1
        expected = len([s for s in dropped if first < s < due])
        self.assertGreater(len(forwarder.delayed), 10)
        self.assertEqual(stats.path, RELAY)
        self.assertEqual(stats.lost, expected)
        self.assertTrue(expected >= 10, expected)
        unexplained = (due - first) - len(distinct) - expected - stats.late
        self.assertTrue(0 <= unexplained <= stats.discarded, (unexplained, stats))
        self.assertGreater(stats.loss_percent, 5.0)
        self.assertGreater(stats.jitter_ms, 0.5)
        self.assertEqual(stats.duplicate, 0)

    @inlineCallbacks
    def test_mute(self) -> None:
        """Muted, the engine sends silence instead of the microphone."""
        yield self.call(numbered_frames(500))
        self.engines[0].set_muted(True)
        yield sleep(0.6)
        self.assertEqual([v for v in frame_values(self.devices[1].played) if v][-5:], [])
        self.assertTrue(self.engines[0].stats().muted)
        self.assertGreater(self.engines[0].stats().audio_sent, 20)

    @inlineCallbacks
    def test_stop_says_bye(self) -> None:
        """Stopping one side closes its device and the other side hears BYE."""
        byes: list[bool] = []
        yield self.call()
        self.engines[1].on_peer_bye = lambda: byes.append(True)
        yield sleep(0.2)
        yield self.engines[0].stop()
        yield wait_until(lambda: byes == [True])
        self.assertTrue(self.devices[0].closed)
        self.assertFalse(self.engines[0].running)
        duration = self.engines[0].stats().duration
        yield sleep(0.1)
        self.assertEqual(self.engines[0].stats().duration, duration)

    @inlineCallbacks
    def test_stats_snapshot(self) -> None:
        """stats() has the fields the UI shows, with live values."""
        paths: list[str] = []
        yield self.call(numbered_frames(100), on_path=paths.append)
        yield sleep(0.5)
        stats = self.engines[0].stats()
        self.assertIsInstance(stats, CallStats)
        self.assertEqual((stats.path, stats.codec, stats.muted), (DIRECT, PCM, False))
        self.assertIn(DIRECT, paths)
        self.assertGreater(stats.duration, 0.4)
        self.assertGreater(stats.packets_sent, stats.audio_sent - 1)
        self.assertGreater(stats.packets_received, 10)
        self.assertIsNotNone(stats.rtt_ms)
        self.assertEqual(stats.target_ms, 60)
        self.assertEqual((stats.dropped, stats.audio_error), (0, ""))

    @inlineCallbacks
    def test_missing_opus_falls_back(self) -> None:
        """Asked for Opus on a machine without it, the engine sends PCM."""
        self.patch(codec_module, "_opuslib", lambda: None)
        yield self.call(numbered_frames(40), codec=OPUS)
        yield sleep(0.5)
        self.assertEqual(self.engines[0].stats().codec, PCM)
        self.assertTrue([v for v in frame_values(self.devices[1].played) if v])

    @inlineCallbacks
    def test_no_sound_card(self) -> None:
        """Without a usable sound device the call runs silent and says why."""
        def refuse(*args: Any, **kwargs: Any) -> None:
            raise AudioUnavailable("no card here")
        self.patch(audio_module, "PyAudioDevice", refuse)
        engine = CallEngine(reactor, interface="127.0.0.1", timing=FAST)
        self.addCleanup(engine.stop)
        yield engine.start(self.relay.params(0))
        self.assertIsInstance(engine.audio, FakeAudioDevice)
        self.assertEqual(engine.stats().audio_error, audio_module.NO_SOUND)

    @inlineCallbacks
    def test_relay_name_resolved(self) -> None:
        """A relay given by host name is resolved before the socket talks to it."""
        engine = CallEngine(reactor, audio=FakeAudioDevice(), interface="127.0.0.1",
                            timing=FAST)
        self.addCleanup(engine.stop)
        yield engine.start(self.relay.params(0, relay=("localhost", self.relay.address[1])))
        self.assertEqual(engine.params.relay, self.relay.address)
        yield wait_until(lambda: engine.session.hello_acked)
        self.assertIsNotNone(engine.local_port)

    @inlineCallbacks
    def test_stop_while_resolving(self) -> None:
        """stop() before the relay's name resolved: the call never opens a socket."""
        engine = CallEngine(reactor, audio=FakeAudioDevice(), interface="127.0.0.1")
        starting = engine.start(self.relay.params(0, relay=("localhost", 9)))
        yield engine.stop()
        yield starting
        self.assertIsNone(engine.session)
        self.assertFalse(engine.running)

    @inlineCallbacks
    def test_start_twice_refused(self) -> None:
        """One engine runs one call."""
        yield self.call()
        yield self.assertFailure(self.engines[0].start(self.relay.params(0)), RuntimeError)
