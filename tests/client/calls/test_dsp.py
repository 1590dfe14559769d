"""Tests for messenger.client.calls.dsp: echo cancellation measured (ERLE), the near end
kept, and the settings switch."""

from __future__ import annotations

import numpy as np
from twisted.trial.unittest import SynchronousTestCase

from messenger.bench import speech
from messenger.client.calls import dsp
from messenger.client.calls.codec import FRAME_BYTES
from messenger.client.calls.dsp import OFF, AudioProcessor, AudioSettings, processor_for

ECHO_ONLY = AudioSettings(echo_cancellation=True, noise_suppression=False, auto_gain=False,
                          delay_ms=60)


def room(far: np.ndarray) -> np.ndarray:
    """The loudspeaker's sound as the microphone hears it: 60 ms later, quieter, with
    two reflections."""
    response = np.zeros(960 + 400)
    response[960], response[960 + 80], response[960 + 250] = 0.5, 0.2, -0.1
    return np.convolve(far.astype(np.float64), response)[:len(far)]


def run(processor: AudioProcessor, far: np.ndarray, near: np.ndarray) -> np.ndarray:
    out = []
    far_bytes, near_bytes = far.astype("<i2").tobytes(), near.astype("<i2").tobytes()
    for start in range(0, len(near_bytes) - FRAME_BYTES + 1, FRAME_BYTES):
        processor.playback(far_bytes[start:start + FRAME_BYTES])
        out.append(processor.capture(near_bytes[start:start + FRAME_BYTES]))
    return np.frombuffer(b"".join(out), dtype="<i2").astype(np.float64)


def energy(signal: np.ndarray) -> float:
    return float(np.sum(signal ** 2)) + 1.0


class EchoTests(SynchronousTestCase):
    """WebRTC's echo canceller on the capture path."""

    def test_echo_removed_by_at_least_20_db(self) -> None:
        """Far-end speech played into the microphone with a delay and reflections: once
        the canceller has converged (second half) the echo is down by >= 20 dB (ERLE)."""
        far = np.concatenate([speech.speech("a")] * 2)
        echo = room(far)
        out = run(AudioProcessor(ECHO_ONLY), far, echo)
        half = len(out) // 2
        erle = 10 * np.log10(energy(echo[half:len(out)]) / energy(out[half:]))
        self.assertGreater(erle, 20.0)

    def test_near_end_speech_kept(self) -> None:
        """With the far end silent the near end's speech passes: within 3 dB."""
        near = speech.speech("b").astype(np.float64)
        out = run(AudioProcessor(ECHO_ONLY), np.zeros(len(near)), near)
        ratio = 10 * np.log10(energy(out) / energy(near[:len(out)]))
        self.assertTrue(-3.0 < ratio < 3.0, ratio)

    def test_switches(self) -> None:
        """All off (or no livekit) means no processor; on means one."""
        self.assertIsNone(processor_for(OFF))
        self.assertIsNone(processor_for(None))
        self.assertIsInstance(processor_for(AudioSettings()), AudioProcessor)
        self.patch(dsp, "available", lambda: False)
        self.assertIsNone(processor_for(AudioSettings()))
