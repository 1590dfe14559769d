"""Tests for messenger.client.calls.quality and playout: the line's recent state, the
encoder plan, concealment and comfort noise."""

from __future__ import annotations

from array import array

from twisted.trial.unittest import SynchronousTestCase

from messenger.client.calls.codec import FRAME_BYTES, PCM, make_codec
from messenger.client.calls.jitter import JitterBuffer
from messenger.client.calls.playout import Playout, rms
from messenger.client.calls.quality import (
    FAIR,
    GOOD,
    NO_AUDIO,
    POOR,
    START_PLAN,
    EncoderAdapter,
    EncoderPlan,
    QualityMeter,
    plan_for,
)


class QualityMeterTests(SynchronousTestCase):
    """Loss and silence over the last few seconds, not since the call began."""

    def feed(self, meter: QualityMeter, start: float, seconds: float, skip: int = 0,
             first_seq: int = 0) -> int:
        seq = first_seq
        for frame in range(int(seconds / 0.02)):
            if not (skip and frame % skip == 0):
                meter.audio(start + frame * 0.02, seq)
            seq += 1
        return seq

    def test_good_then_no_audio_within_a_second(self) -> None:
        """A clean stream is good; 1 s after the last packet the level is 0, whatever
        the earlier numbers were."""
        meter = QualityMeter()
        self.feed(meter, 0.0, 5.0)
        self.assertEqual(meter.reading(5.0).level, GOOD)
        self.assertEqual(meter.reading(5.9).level, GOOD)
        self.assertEqual(meter.reading(6.0).level, NO_AUDIO)
        self.assertAlmostEqual(meter.reading(6.0).silent_for, 1.02, places=6)

    def test_recent_loss_only(self) -> None:
        """Loss counts over the window: a lossy spell shows, and is forgotten after it."""
        meter = QualityMeter()
        seq = self.feed(meter, 0.0, 10.0)
        seq = self.feed(meter, 10.0, 3.0, skip=5, first_seq=seq)     # 20 % loss
        reading = meter.reading(13.0)
        self.assertEqual(reading.level, POOR)
        self.assertTrue(19.0 <= reading.loss_percent <= 21.0, reading)
        self.feed(meter, 13.0, 3.5, first_seq=seq)
        self.assertEqual(meter.reading(16.5).level, GOOD)

    def test_fair_and_late(self) -> None:
        """5 % loss is fair; late packets count like lost ones."""
        meter = QualityMeter()
        self.feed(meter, 0.0, 3.0, skip=20)
        self.assertEqual(meter.reading(3.0).level, FAIR)
        meter.late(2.9, 10)
        self.assertEqual(meter.reading(3.0).level, POOR)

    def test_silent_peer_in_dtx_is_not_lossy(self) -> None:
        """A peer that sends only reports (DTX pause) is heard: good, not "no audio"."""
        meter = QualityMeter()
        for tick in range(20):
            meter.heard(tick * 0.5)
        self.assertEqual(meter.reading(9.6).level, GOOD)


class PlanTests(SynchronousTestCase):
    """The encoder follows the peer's reports."""

    def test_ladder(self) -> None:
        """The documented ladder (docs/CALLS.md)."""
        self.assertEqual(plan_for(0.0, 10.0), EncoderPlan(32000, 0, 0))
        self.assertEqual(plan_for(0.0, 1.0), EncoderPlan(32000, 0, 1))
        self.assertEqual(plan_for(2.2, 0.0), EncoderPlan(32000, 3, 1))
        self.assertEqual(plan_for(5.0, 0.0), EncoderPlan(32000, 0, 2))
        self.assertEqual(plan_for(35.0, 0.0), EncoderPlan(16000, 10, 2))

    def test_up_at_once_down_after_calm(self) -> None:
        """A bad report raises protection at once; a good one lowers it only after 2 s
        without worse news, and redundancy goes only after 5 s clean."""
        adapter = EncoderAdapter(0.0)
        self.assertEqual(adapter.plan, START_PLAN)
        self.assertEqual(adapter.report(8.0, 1.0).redundancy, 2)
        self.assertEqual(adapter.report(0.0, 1.5).redundancy, 2)
        self.assertEqual(adapter.report(0.0, 3.1).redundancy, 1)
        self.assertEqual(adapter.report(0.0, 5.9).redundancy, 1)
        self.assertEqual(adapter.report(0.0, 6.1).redundancy, 0)


class PlayoutTests(SynchronousTestCase):
    """Concealment: never hard silence for one lost frame, comfort noise for long gaps."""

    def frames(self, count: int, level: int = 3000) -> list[bytes]:
        return [array("h", [level if i % 2 else -level] * 0 + [level] * 320).tobytes()
                for i in range(count)]

    def test_single_loss_is_not_silence_and_long_gap_fades_to_noise(self) -> None:
        """A lost PCM frame is concealed (not zeros); a long gap fades into quiet comfort
        noise at the line's background level, never digital silence."""
        buffer = JitterBuffer()
        playout = Playout(buffer, seed=1)
        pcm = make_codec(PCM)
        quiet = array("h", [40] * 320).tobytes()
        loud = array("h", [3000] * 320).tobytes()
        frames = [quiet] * 10 + [loud] * 10
        played = []
        for seq, frame in enumerate(frames):
            if seq != 15:
                buffer.push(seq, seq * 320, (pcm.codec_id, pcm.encode(frame)), seq * 0.02)
            played.append(playout.next_frame(seq * 0.02))
        for step in range(40):
            played.append(playout.next_frame((20 + step) * 0.02))
        concealed = [f for f in played if f not in (quiet, loud)]
        self.assertTrue(concealed)
        self.assertTrue(all(any(f) for f in played[-30:]))            # never zeros
        self.assertLess(rms(played[-1]), 100)                          # quiet noise
        self.assertGreater(rms(played[-1]), 5)
        self.assertGreater(playout.noise_frames, 10)
        self.assertEqual(len(played[-1]), FRAME_BYTES)


class TimingDefaultsTests(SynchronousTestCase):
    """The promises of docs/CALLS.md, as the engine's and session's defaults."""

    def test_defaults(self) -> None:
        """Reconnecting after 5 s of silence, lost after 20 s, setup fails after 15 s;
        HELLO back-off 50 ms to 1 s for 30 s; relay fallback 1 s after it is known."""
        from messenger.client.calls.engine import MediaTiming
        from messenger.client.calls.media import SessionTiming
        media, session = MediaTiming(), SessionTiming()
        self.assertEqual((media.reconnect_after, media.lost_after, media.setup_timeout),
                         (5.0, 20.0, 15.0))
        self.assertEqual((session.hello_first, session.hello_max, session.hello_give_up,
                          session.direct_timeout), (0.05, 1.0, 30.0, 1.0))
