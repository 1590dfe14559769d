"""From the jitter buffer to the loudspeaker: decode, conceal, fade to comfort noise.

`Playout` asks the `JitterBuffer` for the frame of each 20 ms slot and turns the answer
into PCM:

* a frame that is there is decoded with the codec its packet names;
* a missing frame is concealed by that codec: from the FEC copy inside the next packet
  when it is already queued (Opus in-band FEC), else by the decoder's own loss
  concealment (Opus PLC, which also makes the comfort noise of a DTX pause);
* a gap that goes on (more than ``plain_misses`` frames) fades from the concealment to
  comfort noise at the level of the recent background over ``fade_frames`` frames, so a
  long outage sounds like a quiet line, never a hard cut to digital silence.
"""

from __future__ import annotations

import math
import random
from array import array
from collections import deque
from typing import Any

from twisted.logger import Logger

from messenger.client.calls.codec import FRAME_SAMPLES, SILENCE, Codec, CodecError, codec_by_id
from messenger.client.calls.jitter import CONCEAL, PLAY, JitterBuffer

NOISE_FLOOR = 8.0         # comfort noise RMS never below this (about -72 dBFS)
NOISE_CEILING = 400.0     # nor above this: a loud line is speech, not background


def rms(pcm: bytes) -> float:
    samples = array("h", pcm)
    return math.sqrt(sum(v * v for v in samples) / len(samples)) if samples else 0.0


class Playout:
    """Decoders, concealment and comfort noise for one incoming stream."""

    log = Logger()

    def __init__(self, jitter: JitterBuffer, *, plain_misses: int = 3,
                 fade_frames: int = 10, seed: int | None = None) -> None:
        self.jitter = jitter
        self.plain_misses = plain_misses
        self.fade_frames = fade_frames
        self._decoders: dict[int, Codec | None] = {}
        self._last_codec: int | None = None
        self._misses = 0
        self._levels: deque[float] = deque(maxlen=100)   # last 2 s of frame levels
        self._random = random.Random(seed)
        self.undecodable = 0
        self.fec_frames = 0        # concealed from the next packet's FEC data
        self.plc_frames = 0        # concealed by the decoder's PLC
        self.noise_frames = 0      # frames with comfort noise mixed in

    def next_frame(self, now: float) -> bytes:
        """The PCM of the 20 ms slot starting at ``now``."""
        kind, item = self.jitter.pop(now)
        if kind == PLAY:
            codec_id, payload = item
            pcm = self._decode(codec_id, payload)
            if pcm is not None:
                self._misses = 0
                self._levels.append(rms(pcm))
                return pcm
            return self._conceal(None)
        if kind == CONCEAL:
            following = item[1] if item is not None and item[0] == self._last_codec else None
            return self._conceal(following)
        return SILENCE

    def _decoder(self, codec_id: int) -> Codec | None:
        decoder = self._decoders.get(codec_id, False)
        if decoder is False:
            try:
                decoder = codec_by_id(codec_id)
            except CodecError as exc:
                self.log.warn("cannot decode codec {codec}: {error}", codec=codec_id,
                              error=str(exc))
                decoder = None
            self._decoders[codec_id] = decoder
        return decoder  # type: ignore[return-value]

    def _decode(self, codec_id: int, payload: bytes) -> bytes | None:
        decoder = self._decoder(codec_id)
        if decoder is None:
            self.undecodable += 1
            return None
        try:
            pcm = decoder.decode(payload)
        except CodecError:
            self.undecodable += 1
            return None
        self._last_codec = codec_id
        return pcm

    def _conceal(self, following: bytes | None) -> bytes:
        decoder = self._decoder(self._last_codec) if self._last_codec is not None else None
        if decoder is None:
            self._misses += 1
            return self._noise(1.0) if self._misses > 1 else SILENCE
        pcm = decoder.conceal(following)
        if following:
            self.fec_frames += 1
            self._misses = 0
            return pcm
        self.plc_frames += 1
        self._misses += 1
        over = self._misses - self.plain_misses
        if over <= 0:
            return pcm
        weight = min(1.0, over / self.fade_frames)
        self.noise_frames += 1
        if weight >= 1.0:
            return self._noise(1.0)
        faded = array("h", pcm)
        noise = array("h", self._noise(weight))
        keep = 1.0 - weight
        return array("h", (int(a * keep) + b for a, b in zip(faded, noise, strict=True))).tobytes()

    def _noise(self, weight: float) -> bytes:
        """Comfort noise at the quietest recent level (the line's background)."""
        level = min(self._levels) if self._levels else NOISE_FLOOR
        sigma = max(NOISE_FLOOR, min(NOISE_CEILING, level)) * weight
        gauss = self._random.gauss
        return array("h", (max(-32768, min(32767, int(gauss(0.0, sigma))))
                           for _ in range(FRAME_SAMPLES))).tobytes()

    def stats(self) -> dict[str, Any]:
        return {"undecodable": self.undecodable, "fec_frames": self.fec_frames,
                "plc_frames": self.plc_frames, "noise_frames": self.noise_frames}
