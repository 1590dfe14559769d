"""Whole calls with real pyaudio at both ends (ALSA file devices), one process per party,
in real time: run in the suite's serial real-time phase (scripts/run_tests.py), away from
the parallel jobs whose load would starve the audio."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.trial.unittest import TestCase

from messenger.bench import speech
from messenger.client.calls.codec import OPUS, PCM
from messenger.client.calls.media import DIRECT, RELAY
from tests.client.calls.test_engine import Relay
from tests.support.alsa import AlsaFiles, align, chirp, silence
from tests.support.call_party import party_config, spawn_party


class EndToEndAudioTests(TestCase):
    """Real pyaudio at both ends (ALSA file devices), one process per party."""

    timeout = 60

    @inlineCallbacks
    def converse(self, codec: str, block_direct: bool) -> Any:
        """Each party's microphone: a chirp (PCM, compared sample by sample) or speech
        (Opus, scored with PESQ-WB: a tonal chirp is what Opus's DTX rightly treats as
        background and leaves out)."""
        relay = Relay(self)
        base = self.mktemp()
        cards, signals, results, parties = [], [], [], []
        for member, (low, high) in enumerate(((300.0, 3400.0), (3400.0, 300.0))):
            card = AlsaFiles(f"{base}/party{member}")
            if codec == PCM:
                signal = silence(1.5)      # room for a slow start-up on a busy machine
                signal.extend(chirp(0.8, low, high))
                signal.extend(silence(3.0))
                card.set_capture(signal)
                seconds = 3.2
            else:
                signal = speech.speech("ab"[member])
                card.capture.write_bytes(speech.padded(signal, 1.5, 4.0))
                seconds = 10.5
            result = card.directory / "result.json"
            config = party_config(relay.params(member, codec), seconds=seconds,
                                  block_direct=block_direct, result=str(result))
            cards.append(card)
            signals.append(signal)
            results.append(result)
            parties.append(spawn_party(reactor, config, card.environ()))
        yield gatherResults([party.ready for party in parties])
        for party in parties:
            party.go()
        yield gatherResults([party.ended for party in parties])
        stats = [json.loads(result.read_text()) for result in results]
        scores = []
        for member in (0, 1):
            if codec == PCM:
                reference = signals[1 - member][int(1.3 * 16000):int(2.5 * 16000)]
                lag, score = align(reference, cards[member].played())
            else:
                played = cards[member].playback.read_bytes()
                score, lag = speech.score(signals[1 - member], played)
            scores.append(score)
        return stats, scores, relay

    @inlineCallbacks
    def test_pcm_direct(self) -> None:
        """PCM over the direct path: each chirp comes out at the other end (corr > 0.9)."""
        stats, scores, relay = yield self.converse(PCM, block_direct=False)
        self.assertEqual([s["path"] for s in stats], [DIRECT, DIRECT])
        self.assertTrue(all(s["received_direct"] > 60 for s in stats), stats)
        self.assertTrue(min(scores) > 0.9, scores)

    @inlineCallbacks
    def test_pcm_relay(self) -> None:
        """PCM with the direct path blocked: the relay carries it, still corr > 0.9."""
        stats, scores, relay = yield self.converse(PCM, block_direct=True)
        self.assertEqual([s["path"] for s in stats], [RELAY, RELAY])
        self.assertEqual([s["received_direct"] for s in stats], [0, 0])
        self.assertGreater(relay.protocol.relayed, 150)
        self.assertTrue(min(scores) > 0.9, scores)

    @inlineCallbacks
    def test_opus_relay(self) -> None:
        """Opus through the relay, real pyaudio at both ends: speech comes out at the
        other end, recognisably (PESQ-WB >= 1.5: this runs in real time beside the rest of
        the suite, so it proves the path, not the quality; the quality bounds are asserted
        in simulated time in test_quality/test_network), and the call went active."""
        stats, scores, relay = yield self.converse(OPUS, block_direct=True)
        self.assertEqual([s["codec"] for s in stats], [OPUS, OPUS])
        self.assertEqual([s["path"] for s in stats], [RELAY, RELAY])
        self.assertEqual([s["media"] for s in stats], ["active", "active"])
        self.assertGreater(relay.protocol.relayed, 300)
        self.assertTrue(min(scores) >= 1.5, scores)
