"""What the call engine reports: its media states, its clocks and the call window's numbers.

Records and one pure function, kept apart from `engine` so that the engine holds the
moving parts only. ``call_stats`` reads the engine's parts at one instant; it changes
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from messenger.client.calls.codec import OPUS
from messenger.client.calls.media import CONNECTING

if TYPE_CHECKING:
    from messenger.client.calls.codec import Codec
    from messenger.client.calls.jitter import JitterBuffer
    from messenger.client.calls.media import MediaSession
    from messenger.client.calls.playout import Playout
    from messenger.client.calls.quality import EncoderAdapter, QualityMeter
    from messenger.wire.media_payloads import Report

# media states (``on_media``)
STARTING = "starting"
ACTIVE = "active"
RECONNECTING = "reconnecting"
FAILED = "failed"
LOST = "lost"


@dataclass(frozen=True)
class MediaTiming:
    """The clocks of the engine's watch, in seconds."""

    watch: float = 0.1               # how often the line is looked at
    report_interval: float = 0.5     # a REPORT to the peer this often
    setup_timeout: float = 15.0      # no audio both ways this long: the call failed
    reconnect_after: float = 5.0     # nothing from the peer this long: reconnecting
    lost_after: float = 20.0         # ... and this long: the call is lost
    rehello_after: float = 1.0       # nothing from the peer this long: HELLO again


@dataclass(frozen=True)
class CallStats:
    """What the call window shows. Counters since the call started; ``quality_*`` over
    the last few seconds."""

    path: str                # "connecting", "direct" or "relay"
    codec: str               # what we send
    muted: bool
    duration: float          # seconds since start
    packets_sent: int        # every packet we sent (audio, reports, probes, HELLOs)
    packets_received: int    # authenticated packets from the peer
    audio_sent: int
    audio_received: int
    received_direct: int
    received_relay: int
    lost: int
    late: int
    duplicate: int
    concealed: int
    recovered: int           # gaps filled by a redundant copy
    fec_frames: int          # gaps rebuilt from Opus in-band FEC
    discarded: int
    loss_percent: float      # cumulative
    jitter_ms: float
    depth_ms: float
    target_ms: float
    rtt_ms: float | None     # direct path round trip, when known
    dropped: int             # packets refused: forged, replayed, malformed, foreign
    undecodable: int
    audio_error: str         # empty, or a sentence on what the sound devices cannot do
    media: str = STARTING    # starting, active, reconnecting, failed, lost
    quality: int = 0         # 0 no audio, 1 poor, 2 fair, 3 good (last few seconds)
    quality_loss_percent: float = 0.0
    silent_for: float = 0.0  # seconds since anything came from the peer
    peer_loss_percent: float = 0.0   # what the peer reports about our audio
    bitrate: int = 0
    redundancy: int = 0
    over_tcp: bool = False


def call_stats(*, session: MediaSession | None, jitter: JitterBuffer | None,
               playout: Playout | None, meter: QualityMeter,
               adapter: EncoderAdapter | None, encoder: Codec | None,
               report: Report | None, muted: bool, audio_sent: int, audio_error: str,
               media_state: str, started: float, end: float) -> CallStats:
    """What the call window shows, from the engine's parts at ``end`` (now, or when the
    call ended)."""
    jitter_stats = jitter.stats() if jitter is not None else None
    lost = jitter_stats.lost if jitter_stats else 0
    received = session.received_direct + session.received_relay if session else 0
    expected = received + lost
    reading = meter.reading(end)
    plan = adapter.plan if adapter is not None else None
    return CallStats(
        path=session.path if session else CONNECTING,
        codec=encoder.name if encoder else "",
        muted=muted,
        duration=round(end - started, 3) if session else 0.0,
        packets_sent=session.packets_sent if session else 0,
        packets_received=session.packets_received if session else 0,
        audio_sent=audio_sent,
        audio_received=received,
        received_direct=session.received_direct if session else 0,
        received_relay=session.received_relay if session else 0,
        lost=lost,
        late=jitter_stats.late if jitter_stats else 0,
        duplicate=jitter_stats.duplicate if jitter_stats else 0,
        concealed=jitter_stats.concealed if jitter_stats else 0,
        recovered=jitter_stats.recovered if jitter_stats else 0,
        fec_frames=playout.fec_frames if playout else 0,
        discarded=jitter_stats.discarded if jitter_stats else 0,
        loss_percent=round(100.0 * lost / expected, 2) if expected else 0.0,
        jitter_ms=jitter_stats.jitter_ms if jitter_stats else 0.0,
        depth_ms=jitter_stats.depth_ms if jitter_stats else 0.0,
        target_ms=jitter_stats.target_ms if jitter_stats else 0.0,
        rtt_ms=session.rtt_ms if session else None,
        dropped=(session.dropped_auth + session.dropped_replay
                 + session.dropped_malformed + session.dropped_foreign) if session else 0,
        undecodable=playout.undecodable if playout else 0,
        audio_error=audio_error,
        media=media_state,
        quality=reading.level if session else 0,
        quality_loss_percent=reading.loss_percent,
        silent_for=round(min(reading.silent_for, end - started), 2) if session
        else 0.0,
        peer_loss_percent=report.loss_permille / 10.0 if report else 0.0,
        bitrate=plan.bitrate if plan and encoder and encoder.name == OPUS
        else 0,
        redundancy=plan.redundancy if plan and encoder
        and encoder.name == OPUS else 0,
        over_tcp=session.over_tcp if session else False,
    )
