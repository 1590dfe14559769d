"""The call window's numbers before any media flows (the engine's live numbers are shown
in tests/client/calls/test_engine.py, over real sockets)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from messenger.client.calls.quality import QualityMeter
from messenger.client.calls.stats import STARTING, CallStats, MediaTiming, call_stats
from messenger.wire.media_payloads import Report


class CallStatsTests(SynchronousTestCase):

    def test_before_the_session_starts(self) -> None:
        """No session yet: connecting, nothing counted, the peer's report still read."""
        stats = call_stats(session=None, jitter=None, playout=None, meter=QualityMeter(),
                           adapter=None, encoder=None, report=Report(0, 0, 125, 0, 0),
                           muted=True, audio_sent=0, audio_error="no microphone",
                           media_state=STARTING, started=10.0, end=12.0)
        self.assertIsInstance(stats, CallStats)
        self.assertEqual((stats.path, stats.duration, stats.audio_received, stats.dropped),
                         ("connecting", 0.0, 0, 0))
        self.assertEqual((stats.muted, stats.audio_error, stats.media),
                         (True, "no microphone", "starting"))
        self.assertEqual(stats.peer_loss_percent, 12.5)
        self.assertEqual((stats.bitrate, stats.redundancy, stats.quality), (0, 0, 0))

    def test_timing_defaults(self) -> None:
        """A call with no audio both ways fails after 15 s; silence is lost after 20 s."""
        timing = MediaTiming()
        self.assertEqual((timing.setup_timeout, timing.reconnect_after, timing.lost_after),
                         (15.0, 5.0, 20.0))
