"""Tests for messenger.client.calls.jitter: the adaptive jitter buffer, time injected."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from messenger.client.calls.jitter import CONCEAL, PLAY, SILENCE, JitterBuffer

FRAME = 0.02


def run(buffer: JitterBuffer, arrivals: dict[int, float], until: float,
        start: float = 0.0) -> list[tuple[float, str, Any]]:
    """Push frame ``seq`` at ``arrivals[seq]`` (seconds), pop every 20 ms from ``start``.

    Payload = seq; stamp = seq * 320. Pushes due at a pop time happen before that pop.
    Returns (time, kind, payload) for every pop.
    """
    pending = sorted(arrivals.items(), key=lambda item: (item[1], item[0]))
    out = []
    now = start
    index = 0
    while now <= until + 1e-9:
        while index < len(pending) and pending[index][1] <= now + 1e-9:
            seq, at = pending[index]
            buffer.push(seq, seq * 320, seq, at)
            index += 1
        kind, payload = buffer.pop(now)
        out.append((now, kind, payload))
        now = round(now + FRAME, 6)
    return out


def played(pops: list[tuple[float, str, Any]]) -> list[int]:
    return [payload for _, kind, payload in pops if kind == PLAY]


def steady(count: int, offset: float = 0.005, skip: tuple[int, ...] = ()) -> dict[int, float]:
    """Frames 0..count-1 arriving every 20 ms, ``offset`` after the pop grid."""
    return {seq: offset + seq * FRAME for seq in range(count) if seq not in skip}


class OrderTests(SynchronousTestCase):
    """Frames come out in sequence order."""

    def test_in_order(self) -> None:
        """A clean stream plays every frame once, in order, after about 40 ms."""
        buffer = JitterBuffer()
        pops = run(buffer, steady(50), 1.04)
        self.assertEqual(played(pops), list(range(50)))
        first = next(t for t, kind, _ in pops if kind == PLAY)
        self.assertAlmostEqual(first, 0.06, places=6)
        self.assertEqual((buffer.lost, buffer.late, buffer.concealed), (0, 0, 0))

    def test_silence_while_buffering(self) -> None:
        """Before playout starts the buffer answers SILENCE without counting concealment."""
        buffer = JitterBuffer()
        self.assertEqual(buffer.pop(0.0), (SILENCE, None))
        buffer.push(0, 0, "a", 0.0)
        self.assertEqual(buffer.pop(0.02), (SILENCE, None))
        self.assertFalse(buffer.playing)
        self.assertEqual(buffer.pop(0.04), (PLAY, "a"))
        self.assertEqual(buffer.concealed, 0)

    def test_reordered(self) -> None:
        """Swapped neighbours are put back in order."""
        arrivals = steady(40)
        for seq in range(2, 40, 5):
            arrivals[seq], arrivals[seq + 1] = arrivals[seq + 1], arrivals[seq]
        buffer = JitterBuffer()
        self.assertEqual(played(run(buffer, arrivals, 1.0)), list(range(40)))
        self.assertEqual(buffer.lost, 0)

    def test_duplicates(self) -> None:
        """A frame pushed twice, queued or already played, is counted and played once."""
        buffer = JitterBuffer()
        buffer.push(0, 0, "a", 0.0)
        buffer.push(0, 0, "a", 0.001)
        buffer.push(1, 320, "b", 0.02)
        self.assertEqual(buffer.pop(0.04), (PLAY, "a"))
        buffer.push(0, 0, "a", 0.05)
        self.assertEqual(buffer.pop(0.06), (PLAY, "b"))
        self.assertEqual((buffer.duplicate, buffer.received), (2, 4))


class LossTests(SynchronousTestCase):
    """Missing frames are concealed and counted."""

    def test_single_loss_conceals_from_the_next_frame(self) -> None:
        """One lost frame is concealed, and the next frame (already queued) is handed
        along for its FEC data; lost = 1."""
        buffer = JitterBuffer()
        pops = run(buffer, steady(30, skip=(10,)), 0.64)
        kinds = [(kind, payload) for _, kind, payload in pops]
        index = kinds.index((PLAY, 9))
        self.assertEqual(kinds[index + 1], (CONCEAL, 11))
        self.assertEqual(kinds[index + 2], (PLAY, 11))
        self.assertEqual((buffer.lost, buffer.concealed), (1, 1))

    def test_two_losses(self) -> None:
        """Two lost frames in a row: the first has no next frame to take FEC from."""
        buffer = JitterBuffer()
        pops = run(buffer, steady(30, skip=(10, 11)), 0.8)
        start = next(i for i, p in enumerate(pops) if p[1:] == (PLAY, 9))
        self.assertEqual([p[1:] for p in pops[start:start + 4]],
                         [(PLAY, 9), (CONCEAL, None), (CONCEAL, 12), (PLAY, 12)])
        self.assertEqual(buffer.lost, 2)

    def test_redundant_copy_fills_the_gap(self) -> None:
        """A copy of a lost frame carried by a later packet plays in its place; it is
        not counted as received, and a copy of a frame already played is ignored."""
        buffer = JitterBuffer()
        pending = sorted((t, seq) for seq, t in steady(30, skip=(10,)).items())
        pops = []
        now = 0.0
        while now < 0.8:
            while pending and pending[0][0] <= now + 1e-9:
                arrival, seq = pending.pop(0)
                buffer.push(seq, seq * 320, seq, arrival)
                if seq == 11:
                    buffer.push(10, 0, 10, arrival, redundant=True)
                    buffer.push(3, 0, 3, arrival, redundant=True)
            pops.append(buffer.pop(now))
            now = round(now + FRAME, 6)
        self.assertEqual([p for k, p in pops if k == PLAY][:12], list(range(12)))
        self.assertEqual((buffer.lost, buffer.recovered, buffer.received), (0, 1, 29))

    def test_burst_loss_adds_no_delay(self) -> None:
        """After five lost frames playback resumes at the same delay as before."""
        buffer = JitterBuffer()
        pops = run(buffer, steady(60, skip=(20, 21, 22, 23, 24)), 1.4)
        times = {payload: t for t, kind, payload in pops if kind == PLAY}
        self.assertEqual(buffer.lost, 5)
        self.assertAlmostEqual(times[40] - times[10], 30 * FRAME, places=6)
        self.assertEqual(played(pops), [s for s in range(60) if not 20 <= s <= 24])

    def test_long_gap_skipped(self) -> None:
        """A gap longer than the maximum depth is skipped at once, not played out as silence."""
        buffer = JitterBuffer()
        self.assertEqual(played(run(buffer, steady(5, offset=0.0), 0.12)), list(range(5)))
        buffer.push(100, 32000, 100, 0.13)
        buffer.push(101, 32320, 101, 0.135)
        self.assertEqual(buffer.pop(0.14), (PLAY, 100))
        self.assertEqual(buffer.lost, 95)

    def test_late_frame_dropped(self) -> None:
        """A frame arriving after its turn is dropped and moves from lost to late."""
        arrivals = steady(30)
        arrivals[10] = arrivals[10] + 0.2
        buffer = JitterBuffer()
        pops = run(buffer, arrivals, 0.8)
        self.assertNotIn(10, played(pops))
        self.assertEqual((buffer.lost, buffer.late), (0, 1))
        self.assertEqual(played(pops), sorted(played(pops)))


class StartTests(SynchronousTestCase):
    """Where playout begins."""

    def test_backlog_trimmed(self) -> None:
        """Frames that piled up before the first pop are cut to target + 1 frame."""
        buffer = JitterBuffer()
        for seq in range(8):
            buffer.push(seq, seq * 320, seq, 0.0)
        kept = buffer.target_frames() + 1
        self.assertEqual(buffer.pop(0.2), (PLAY, 8 - kept))
        self.assertEqual((buffer.discarded, buffer.lost), (8 - kept, 0))
        self.assertEqual(buffer.depth_frames(), kept - 1)

    def test_reordered_start_kept(self) -> None:
        """A reordered start (0, 1, 3 then 2) loses nothing."""
        buffer = JitterBuffer()
        for seq, at in ((0, 0.0), (1, 0.02), (3, 0.03)):
            buffer.push(seq, seq * 320, seq, at)
        self.assertEqual(buffer.pop(0.04), (PLAY, 0))
        buffer.push(2, 640, 2, 0.045)
        self.assertEqual([buffer.pop(t)[1] for t in (0.06, 0.08, 0.1)], [1, 2, 3])
        self.assertEqual(buffer.next_seq, 4)


class AdaptationTests(SynchronousTestCase):
    """The target depth follows the jitter, within 40..200 ms."""

    def test_no_jitter_minimum(self) -> None:
        """A perfectly regular stream measures no jitter and aims at 40 ms."""
        buffer = JitterBuffer()
        run(buffer, steady(50), 1.0)
        self.assertEqual(buffer.jitter_ms, 0.0)
        self.assertEqual(buffer.target_ms(), 40)

    def test_jitter_estimate(self) -> None:
        """Arrivals alternately 0 and 15 ms late give an RFC 3550 estimate near 15 ms."""
        buffer = JitterBuffer()
        for seq in range(300):
            buffer.push(seq, seq * 320, seq, seq * FRAME + (0.015 if seq % 2 else 0.0))
        self.assertApproximates(buffer.jitter_ms, 15.0, 0.5)
        self.assertEqual(buffer.target_ms(), 80)   # 20 + 3 x 15 = 65 -> whole frames

    def test_target_clamped(self) -> None:
        """Wild jitter aims at 200 ms, no more."""
        buffer = JitterBuffer()
        for seq in range(200):
            buffer.push(seq, seq * 320, seq, seq * FRAME + (0.3 if seq % 2 else 0.0))
        self.assertEqual(buffer.target_ms(), 200)

    def test_late_frame_boosts_then_decays(self) -> None:
        """A late frame raises the target above 40 ms; it falls back within seconds."""
        buffer = JitterBuffer()
        arrivals = steady(1500)
        arrivals[20] += 0.1
        run(buffer, arrivals, 0.6)
        self.assertEqual(buffer.late, 1)
        self.assertGreaterEqual(buffer.target_ms(), 80)
        run(buffer, {seq: at for seq, at in arrivals.items() if at > 0.6}, 30.0, start=0.62)
        self.assertEqual(buffer.target_ms(), 40)

    def test_late_frame_deepens_buffer(self) -> None:
        """After a late frame the buffer waits one frame, so the delay grows by 20 ms."""
        arrivals = steady(60)
        arrivals[20] += 0.1
        buffer = JitterBuffer()
        pops = run(buffer, arrivals, 1.4)
        times = {payload: t for t, kind, payload in pops if kind == PLAY}
        self.assertAlmostEqual(times[50] - times[10], 41 * FRAME, places=6)

    def test_underrun_waits(self) -> None:
        """A 60 ms stall is waited out: nothing is lost, later frames play later."""
        arrivals = steady(60)
        for seq in range(20, 60):
            arrivals[seq] += 0.06
        buffer = JitterBuffer()
        pops = run(buffer, arrivals, 1.6)
        self.assertEqual(played(pops), list(range(60)))
        self.assertEqual(buffer.lost, 0)
        times = {payload: t for t, kind, payload in pops if kind == PLAY}
        self.assertGreater(times[21] - times[19], 2 * FRAME)

    def test_shrinks_excess_delay(self) -> None:
        """A backlog well above target is worked off by dropping frames, about one a second."""
        buffer = JitterBuffer()
        for seq in range(8):                     # 8 frames at once: 160 ms queued
            buffer.push(seq, seq * 320, seq, 0.0)
        arrivals = {seq: (seq - 7) * FRAME for seq in range(8, 300)}
        pops = run(buffer, arrivals, 5.0, start=0.04)
        self.assertGreaterEqual(buffer.discarded, 3)
        self.assertEqual(played(pops), sorted(played(pops)))
        self.assertLessEqual(buffer.depth_frames(), 4)

    def test_capacity(self) -> None:
        """The buffer never holds more than its capacity; the excess is discarded."""
        buffer = JitterBuffer(capacity_ms=200)
        for seq in range(30):
            buffer.push(seq, seq * 320, seq, 0.0)
        self.assertEqual(buffer.discarded, 20)
        self.assertEqual(buffer.depth_frames(), 10)

    def test_bad_limits(self) -> None:
        """Inconsistent limits are refused."""
        self.assertRaises(ValueError, JitterBuffer, min_ms=100, max_ms=50)


class StatsTests(SynchronousTestCase):
    """The snapshot the UI shows."""

    def test_snapshot(self) -> None:
        """stats() carries counters, jitter, depth and target."""
        buffer = JitterBuffer()
        run(buffer, steady(20, skip=(10,)), 0.3)
        stats = buffer.stats()
        self.assertEqual((stats.received, stats.lost, stats.late, stats.duplicate),
                         (14, 1, 0, 0))
        self.assertEqual(stats.target_ms, 40)
        self.assertEqual(stats.jitter_ms, 0.0)
        self.assertGreaterEqual(stats.depth_ms, 20.0)
