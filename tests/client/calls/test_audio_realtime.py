"""Real pyaudio through ALSA file devices, paced in real time: run in the suite's serial
real-time phase (scripts/run_tests.py)."""

from __future__ import annotations

import json

from twisted.internet import reactor
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.trial.unittest import TestCase

from messenger.client.calls.codec import FRAME_BYTES
from tests.support.alsa import AlsaFiles, chirp, silence, to_bytes
from tests.support.call_party import spawn_party


class RealPyAudioTests(TestCase):
    """Real pyaudio and PortAudio through ALSA's file plugin, in a child process."""

    @inlineCallbacks
    def test_capture_and_playback_paced(self) -> None:
        """50 frames go from the capture file to the playback file bit for bit, in ~1 s."""
        card = AlsaFiles(self.mktemp())
        signal = chirp(1.0)
        signal.extend(silence(1.0))
        card.set_capture(signal)
        result = card.directory / "result.json"
        party = spawn_party(reactor, {"mode": "loopback", "frames": 50,
                                      "result": str(result)}, card.environ())
        yield party.ready
        party.go()
        yield gatherResults([party.ended])
        outcome = json.loads(result.read_text())
        self.assertEqual((outcome["frames"], outcome["missing"]), (50, 0))
        self.assertGreater(outcome["elapsed"], 0.9)
        self.assertLess(outcome["elapsed"], 3.0)
        self.assertEqual(card.playback.read_bytes(), to_bytes(signal)[:50 * FRAME_BYTES])
