"""How the line is doing *now*: loss, late packets and jitter over the last few seconds,
how long the peer has been silent, and the encoder settings that follow from it.

Pure logic with explicit times (no clock of its own), so the call engine, the REPORT the
engine sends to the peer, the call window's bars and the tests all read the same numbers.

* `QualityMeter` keeps the last ``window`` seconds of received AUDIO sequence numbers and
  late arrivals, and the time anything authentic was last heard from the peer. Loss is
  counted from sequence numbers (a sender in DTX does not number the frames it leaves
  out, so a silent peer is not "lossy"); an outage shows at once, because the level is
  0 ("no audio") as soon as nothing has been heard for ``outage_after`` seconds, whatever
  the older numbers say. Cumulative counters would keep saying "good" through an outage.
* `EncoderAdapter` turns the loss the *peer* reports about our audio into encoder
  settings: Opus bitrate, the loss hint for in-band FEC, and how many earlier frames each
  packet repeats (redundancy, as WebRTC's RED for Opus). The ladder is in `plan_for`.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

NO_AUDIO, POOR, FAIR, GOOD = 0, 1, 2, 3
LEVEL_WORDS = {NO_AUDIO: "no audio", POOR: "poor", FAIR: "fair", GOOD: "good"}


@dataclass(frozen=True)
class Quality:
    """One reading of the incoming stream over the recent window."""

    level: int              # NO_AUDIO .. GOOD
    loss_percent: float     # network loss over the window
    late_percent: float     # arrived too late to play, over the window
    jitter_ms: float
    silent_for: float       # seconds since anything authentic came from the peer
    heard: bool             # anything at all came from the peer yet

    @property
    def words(self) -> str:
        return LEVEL_WORDS[self.level]


class QualityMeter:
    """Recent loss, lateness and silence of the peer's stream."""

    def __init__(self, window: float = 3.0, outage_after: float = 1.0) -> None:
        self.window = window
        self.outage_after = outage_after
        self._audio: deque[tuple[float, int]] = deque()   # (arrival, seq)
        self._late: deque[float] = deque()
        self.last_heard: float | None = None
        self.jitter_ms = 0.0

    def heard(self, now: float) -> None:
        """Any authentic packet from the peer (audio, report, probe, ack)."""
        self.last_heard = now

    def audio(self, now: float, seq: int) -> None:
        self.last_heard = now
        self._audio.append((now, seq))

    def late(self, now: float, count: int = 1) -> None:
        for _ in range(count):
            self._late.append(now)

    def _trim(self, now: float) -> None:
        start = now - self.window
        while self._audio and self._audio[0][0] < start:
            self._audio.popleft()
        while self._late and self._late[0] < start:
            self._late.popleft()

    def loss_fraction(self, now: float) -> tuple[float, float]:
        """(lost, late) as fractions of the packets expected over the window."""
        self._trim(now)
        if not self._audio:
            return 0.0, 0.0
        seqs = {seq for _, seq in self._audio}
        expected = max(seqs) - min(seqs) + 1
        lost = max(0, expected - len(seqs)) / expected
        return lost, min(1.0, len(self._late) / expected)

    def reading(self, now: float) -> Quality:
        lost, late = self.loss_fraction(now)
        silent = math.inf if self.last_heard is None else max(0.0, now - self.last_heard)
        recent_audio = bool(self._audio)
        if self.last_heard is None or silent >= self.outage_after:
            level = NO_AUDIO
        elif not recent_audio:
            level = GOOD          # the peer is there and silent (DTX): nothing is wrong
        elif lost + late < 0.03 and self.jitter_ms < 30:
            level = GOOD
        elif lost + late < 0.10 and self.jitter_ms < 60:
            level = FAIR
        else:
            level = POOR
        return Quality(level, round(100 * lost, 2), round(100 * late, 2),
                       round(self.jitter_ms, 2), silent, self.last_heard is not None)


@dataclass(frozen=True)
class EncoderPlan:
    bitrate: int          # Opus bit/s
    loss_percent: int     # the FEC loss hint handed to libopus (0: no FEC data)
    redundancy: int       # earlier frames repeated in each packet (0-2)


START_PLAN = EncoderPlan(32000, 0, 1)


def plan_for(loss_percent: float, clean_for: float) -> EncoderPlan:
    """The encoder settings for the loss the peer reports (percent, recent window).

    Measured with PESQ-WB on speech (docs/CALLS.md): in-band FEC alone lifts 5 % loss
    from 2.1 to about 3.1 but costs the clean signal bits (4.3 -> 3.7 with a 5 % hint);
    one repeated frame per packet holds light loss near clean quality, two hold 20 %,
    and with two copies in every packet the FEC data buys nothing more. So:

    ========================  =========  ========  ==========
    reported loss             bitrate    FEC hint  redundancy
    ========================  =========  ========  ==========
    < 1 % for 5 s             32 kbit/s  0         0
    < 1 % (recently worse)    32 kbit/s  0         1
    1-3 %                     32 kbit/s  loss      1
    3-30 %                    32 kbit/s  0         2
    >= 30 % (congestion)      16 kbit/s  10        2
    ========================  =========  ========  ==========
    """
    if loss_percent >= 30:
        return EncoderPlan(16000, 10, 2)
    if loss_percent >= 3:
        return EncoderPlan(32000, 0, 2)
    if loss_percent >= 1:
        return EncoderPlan(32000, math.ceil(loss_percent), 1)
    return EncoderPlan(32000, 0, 0 if clean_for >= 5.0 else 1)


class EncoderAdapter:
    """Follows the peer's reports; the plan moves up at once and down after a calm spell
    (a report of less loss only lowers protection after 2 s without worse news)."""

    def __init__(self, now: float) -> None:
        self.plan = START_PLAN
        self._clean_since = now
        self._worst = 0.0
        self._worst_at = now

    def report(self, loss_percent: float, now: float) -> EncoderPlan:
        if loss_percent >= 1:
            self._clean_since = now
        if loss_percent >= self._worst or now - self._worst_at >= 2.0:
            self._worst, self._worst_at = loss_percent, now
        self.plan = plan_for(self._worst, now - self._clean_since)
        return self.plan
