"""An adaptive jitter buffer for 20 ms voice frames: pure logic, time passed in.

The network side calls ``push(seq, stamp, payload, now)`` for every AUDIO packet; the
playback side calls ``pop(now)`` once per 20 ms and gets what to play:

* ``(PLAY, payload)`` — the next frame, in sequence order whatever the arrival order;
* ``(CONCEAL, following)`` — the frame due is missing (lost, late, or a DTX pause):
  the caller conceals it, from the FEC data of ``following`` (the next frame, when it is
  already queued) or by the codec's loss concealment (``following`` is None);
* ``(SILENCE, None)`` — still buffering before playout starts.

Redundant copies of earlier frames (``push(..., redundant=True)``) fill a gap before its
turn and are otherwise ignored: they are not counted as received, late or duplicate.

A frame that arrives after its turn is *late* and dropped. The target depth follows the
measured interarrival jitter (RFC 3550: J += (|D| - J) / 16, late frames included) plus
a boost of one frame per late frame that decays with a 5 s half-life:
target = max(40 ms, frame + 3 J) + boost, at most 200 ms, rounded up to whole frames.

The buffer moves toward the target without resampling: when it runs empty, or when a
late frame shows it too shallow, it waits (plays a concealment frame without moving on),
which adds one frame of delay; when it
has held more than target + 1 frame for a whole half second it drops half the excess
(at least one frame). When the
missing frames turn out to be lost (later ones arrive), the waits already played count
for them, so a burst of loss adds no delay. A gap longer than the maximum depth is
skipped at once, and the buffer never holds more than ``capacity_ms`` of audio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

PLAY = "play"
CONCEAL = "conceal"
SILENCE = "silence"

BOOST_HALF_LIFE = 5.0     # seconds
ADAPT_WINDOW = 0.5        # seconds of depth above target + 1 frame before shrinking


@dataclass(frozen=True)
class JitterStats:
    """What the UI shows about the incoming stream."""

    received: int       # packets pushed, including late and duplicate ones
    lost: int           # frames whose turn passed and which never arrived
    late: int           # frames that arrived after their turn (dropped)
    duplicate: int      # frames pushed twice
    concealed: int      # concealment frames played (CONCEAL while playing)
    recovered: int      # gaps filled in time by a redundant copy
    discarded: int      # frames dropped to shrink the delay, or on overflow
    jitter_ms: float    # RFC 3550 interarrival jitter estimate
    depth_ms: float     # audio queued ahead of playback now
    target_ms: float    # the depth the buffer is aiming for


class JitterBuffer:
    """Reorders, times and conceals one incoming stream of fixed-length frames."""

    def __init__(self, frame_ms: int = 20, rate: int = 16000, min_ms: int = 40,
                 max_ms: int = 200, capacity_ms: int = 1000) -> None:
        if not 0 < min_ms <= max_ms <= capacity_ms:
            raise ValueError("need 0 < min_ms <= max_ms <= capacity_ms")
        self.frame_ms = frame_ms
        self.rate = rate
        self.min_ms = min_ms
        self.max_ms = max_ms
        self._capacity = max(2, capacity_ms // frame_ms)
        self._max_gap = max(1, max_ms // frame_ms)
        self._frames: dict[int, Any] = {}
        self._arrived: dict[int, float] = {}     # seq -> arrival time
        self._next: int | None = None        # seq due next; None while buffering
        self._highest = -1
        self._first_arrival: float | None = None
        self._last_payload: Any = None
        self._misses = 0                     # concealment frames in a row
        self._waits = 0                      # frames played without moving on
        self._grow = 0                       # one wait to insert to deepen the buffer
        self._lost_recent: set[int] = set()  # concealed seqs that may still arrive late
        # jitter
        self._transit: float | None = None
        self._jitter = 0.0                   # in timestamp units
        self._boost_ms = 0.0
        self._boost_at = 0.0
        # shrinking
        self._window_start: float | None = None
        self._window_min = math.inf
        # counters
        self.received = 0
        self.lost = 0
        self.late = 0
        self.duplicate = 0
        self.concealed = 0
        self.discarded = 0
        self.recovered = 0

    # -- input ------------------------------------------------------------------------

    def push(self, seq: int, stamp: int, payload: Any, now: float,
             redundant: bool = False) -> None:
        """One frame arrived at ``now`` (seconds): ``seq`` orders it, ``stamp`` in samples.

        ``redundant``: a copy carried by a later packet; it only fills a gap in time.
        """
        following = self._next
        if redundant:
            if seq in self._frames or (following is not None and seq < following):
                return
            if following is None and (not self._frames or seq < min(self._frames) - 1):
                return
            self._frames[seq] = payload
            self._arrived[seq] = now
            self.recovered += 1
            return
        self.received += 1
        late = following is not None and seq < following
        if (late and seq not in self._lost_recent) or seq in self._frames:
            self.duplicate += 1
            return
        transit = now * self.rate - stamp
        if self._transit is not None:
            self._jitter += (abs(transit - self._transit) - self._jitter) / 16.0
        self._transit = transit
        if late:
            # its turn passed: it was counted lost; now it is late, and a sign to deepen
            self._lost_recent.discard(seq)
            self.lost -= 1
            self.late += 1
            self._decay_boost(now)
            self._boost_ms = min(self._boost_ms + self.frame_ms, float(self.max_ms))
            if self.depth_frames() * self.frame_ms < self.target_ms():
                self._grow = 1
            return
        self._frames[seq] = payload
        self._arrived[seq] = now
        if seq > self._highest:
            self._highest = seq
        if self._first_arrival is None:
            self._first_arrival = now
        if len(self._frames) > self._capacity:
            oldest = min(self._frames)
            del self._frames[oldest]
            self.discarded += 1
            if following is not None:
                self._mark_lost(following, oldest)
                self._next = oldest + 1

    # -- output -----------------------------------------------------------------------

    def pop(self, now: float) -> tuple[str, Any]:
        """What to play for the 20 ms starting at ``now``."""
        self._decay_boost(now)
        if self._next is None:
            if not self._frames or self._first_arrival is None:
                return SILENCE, None
            if now - self._first_arrival < self.target_ms() / 1000.0:
                return SILENCE, None
            # start at most target + 1 frames deep: a backlog that piled up before playout
            # (a stalled reactor, a burst) is not kept as delay
            queued = sorted(self._frames)
            excess = len(queued) - (self.target_frames() + 1)
            for seq in queued[:max(0, excess)]:
                del self._frames[seq]
                self.discarded += 1
            self._next = queued[max(0, excess)]
        self._adapt(now)
        due = self._next
        frames = self._frames
        if self._grow:
            # a late frame showed the buffer too shallow: stretch by one frame
            self._grow = 0
            return self._conceal(None)
        if due in frames:
            if self._waits and self._early(due, now):
                # resuming after the queue ran dry (a DTX pause, an outage): build the
                # depth up to the target again before playing, or every pause would
                # shrink the buffer to nothing and the next loss would cut the speech
                self._waits += 1
                return self._conceal(None)
            return self._play(due)
        if not frames:
            # nothing queued (a DTX pause, or an outage): wait for the frame rather than
            # give up on it
            self._waits += 1
            return self._conceal(None)
        lowest = min(frames)
        gap = lowest - due
        if self._waits:
            # the frames we waited for are lost after all: the waits stood in for them
            skipped = min(self._waits, gap)
            self._mark_lost(due, due + skipped)
            due += skipped
            self._next = due
            self._waits = 0
            if due in frames:
                if self._early(due, now):
                    self._waits = 1          # build the depth up again (see above)
                    return self._conceal(None)
                return self._play(due)
            gap = lowest - due
        if gap > self._max_gap:
            self._mark_lost(due, lowest)
            self._next = lowest
            return self._play(lowest)
        self._mark_lost(due, due + 1)
        self._next = due + 1
        return self._conceal(frames.get(due + 1))

    def _early(self, seq: int, now: float) -> bool:
        arrived = self._arrived.get(seq)
        if arrived is None:
            return False
        return now - arrived < (self.target_ms() - self.frame_ms) / 1000.0 - 1e-6

    def _play(self, seq: int) -> tuple[str, Any]:
        payload = self._frames.pop(seq)
        self._arrived.pop(seq, None)
        if len(self._arrived) > 2 * self._capacity:
            self._arrived = {s: t for s, t in self._arrived.items() if s in self._frames}
        self._next = seq + 1
        self._last_payload = payload
        self._misses = 0
        self._waits = 0
        return PLAY, payload

    def _conceal(self, following: Any) -> tuple[str, Any]:
        self.concealed += 1
        self._misses += 1
        return CONCEAL, following

    def _mark_lost(self, start: int, end: int) -> None:
        """Frames start..end-1 missed their turn."""
        for frame in range(start, end):
            self._frames.pop(frame, None)
            self._lost_recent.add(frame)
        self.lost += end - start
        if len(self._lost_recent) > 512:
            floor = end - 256
            self._lost_recent = {s for s in self._lost_recent if s >= floor}

    def _adapt(self, now: float) -> None:
        """Drop one frame when the depth stayed above target + 1 frame for a second."""
        depth = self.depth_frames()
        if depth < self._window_min:
            self._window_min = depth
        if self._window_start is None:
            self._window_start = now
            return
        if now - self._window_start < ADAPT_WINDOW:
            return
        excess = self._window_min - (self.target_frames() + 1)
        if excess > 0:
            # the queue never fell to target + 1 frame: drop half the excess (at least one)
            for _ in range(max(1, int(excess) // 2)):
                if self._next not in self._frames:
                    break
                del self._frames[self._next]
                self._next += 1
                self.discarded += 1
        self._window_start = now
        self._window_min = math.inf

    def _decay_boost(self, now: float) -> None:
        if self._boost_ms and now > self._boost_at:
            self._boost_ms *= 0.5 ** ((now - self._boost_at) / BOOST_HALF_LIFE)
            if self._boost_ms < 0.5:
                self._boost_ms = 0.0
        self._boost_at = now

    # -- state ------------------------------------------------------------------------

    @property
    def playing(self) -> bool:
        return self._next is not None

    @property
    def jitter_ms(self) -> float:
        return round(self._jitter * 1000.0 / self.rate, 6)

    def target_ms(self) -> float:
        """The depth aimed for: max(40, frame + 3 x jitter) + late boost, at most 200 ms,
        rounded up to whole frames."""
        wanted = max(self.frame_ms + 3.0 * self.jitter_ms, float(self.min_ms)) + self._boost_ms
        wanted = min(wanted, float(self.max_ms))
        return math.ceil(wanted / self.frame_ms - 1e-9) * self.frame_ms

    def target_frames(self) -> int:
        return int(self.target_ms() // self.frame_ms)

    @property
    def highest(self) -> int:
        """The highest sequence number received (-1 before any)."""
        return self._highest

    @property
    def next_seq(self) -> int | None:
        """The sequence number due next (None before playout starts)."""
        return self._next

    def depth_frames(self) -> int:
        """Frames from the one due next to the newest received (gaps included)."""
        if self._next is None:
            if not self._frames:
                return 0
            return self._highest - min(self._frames) + 1
        return max(0, self._highest - self._next + 1)

    def stats(self) -> JitterStats:
        return JitterStats(
            received=self.received, lost=self.lost, late=self.late,
            duplicate=self.duplicate, concealed=self.concealed, recovered=self.recovered,
            discarded=self.discarded,
            jitter_ms=round(self.jitter_ms, 2),
            depth_ms=float(self.depth_frames() * self.frame_ms),
            target_ms=self.target_ms())
