"""Voice codecs behind one interface: raw PCM always, Opus when opuslib and libopus work.

Audio is 16 kHz mono signed 16-bit, 20 ms frames (320 samples, 640 bytes). PCM on the
wire is little-endian (as WAV); Opus frames are whatever libopus makes of one frame
(about 65 bytes at 24 kbit/s). Each codec has a one-byte id carried in the AUDIO header,
so a receiver decodes every packet with the codec it names.

Opus runs with in-band FEC (its LBRR copy of the previous frame, used when the loss the
receiver reports is worth it), DTX (silence costs a packet every 400 ms instead of 50 a
second) and a bitrate the engine adapts (`tune`). A missing frame is rebuilt by
`conceal`: from the FEC copy inside the next packet when that packet is already here,
else by the decoder's own loss concealment (PLC), which also makes the comfort noise of a
DTX pause. opuslib's own ``inband_fec`` and ``dtx`` setters are broken (one passes no
value, the other calls the getter), so the encoder ctls are called directly.

Negotiation: each client offers `available_codecs()` (best first) when it dials; the
server (or whoever decides) calls `choose_codec(caller_offer, callee_offer)` and hands the
result to both sides.
"""

from __future__ import annotations

import sys
from array import array
from functools import cache
from typing import Any

from messenger.wire.media import CODEC_IDS, CODEC_NAMES, OPUS, PCM, choose_codec

__all__ = ["CODEC_IDS", "CODEC_NAMES", "OPUS", "PCM", "available_codecs", "choose_codec",
           "codec_by_id", "make_codec"]

RATE = 16000
CHANNELS = 1
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000   # 320
FRAME_BYTES = FRAME_SAMPLES * 2           # 640
SILENCE = bytes(FRAME_BYTES)

PREFERENCE = (OPUS, PCM)
OPUS_BITRATE = 32000       # start here; the engine adapts it (see adapt.py)
DTX_MAX_BYTES = 2          # an Opus packet this small means "nothing to send" (DTX)


class CodecError(Exception):
    """A codec that is not available here, or a payload it cannot decode."""


class Codec:
    """Turns one 20 ms PCM frame (native int16 bytes) into a payload and back."""

    name: str = ""
    codec_id: int = -1

    def encode(self, pcm: bytes) -> bytes:
        raise NotImplementedError

    def decode(self, payload: bytes) -> bytes:
        """One frame of PCM; raise `CodecError` on a payload that is not one."""
        raise NotImplementedError

    def conceal(self, following: bytes | None = None) -> bytes:
        """A stand-in for one missing frame: from the FEC data in ``following`` (the
        next packet, when it is already here), else by loss concealment."""
        return SILENCE

    def tune(self, bitrate: int, loss_percent: int, fec: bool = True) -> None:
        """Encoder settings from the network's state (no-op for codecs without them)."""


class PcmCodec(Codec):
    """Raw samples, little-endian on the wire."""

    name = PCM
    codec_id = CODEC_IDS[PCM]

    def __init__(self) -> None:
        self._last = SILENCE

    def encode(self, pcm: bytes) -> bytes:
        if len(pcm) != FRAME_BYTES:
            raise CodecError("a PCM frame has 640 bytes")
        return pcm if sys.byteorder == "little" else _swap(pcm)

    def decode(self, payload: bytes) -> bytes:
        if len(payload) != FRAME_BYTES:
            raise CodecError("a PCM frame has 640 bytes")
        self._last = payload if sys.byteorder == "little" else _swap(payload)
        return self._last

    def conceal(self, following: bytes | None = None) -> bytes:
        """PCM has no concealment of its own: the last frame again, at half the level
        each time (the engine fades to comfort noise after a few)."""
        self._last = array("h", (v // 2 for v in array("h", self._last))).tobytes()
        return self._last


def _swap(data: bytes) -> bytes:
    samples = array("h", data)
    samples.byteswap()
    return samples.tobytes()


class OpusCodec(Codec):
    """libopus through opuslib: VOIP mode, FEC, DTX, adaptable bitrate."""

    name = OPUS
    codec_id = CODEC_IDS[OPUS]

    def __init__(self, *, dtx: bool = True) -> None:
        opuslib = _opuslib()
        if opuslib is None:
            raise CodecError("opus is not available (install opuslib and libopus0)")
        from opuslib.api import ctl, decoder, encoder  # noqa: PLC0415 - optional module
        self._ctl = ctl
        self._encoder_ctl = encoder.encoder_ctl
        self._raw_decode = decoder.decode
        self._encoder = opuslib.Encoder(RATE, CHANNELS, opuslib.APPLICATION_VOIP)
        self._decoder = opuslib.Decoder(RATE, CHANNELS)
        self._error = opuslib.OpusError
        self.bitrate = 0
        self.loss_percent = -1
        self.fec = False
        self.dtx = dtx
        self._set(ctl.set_dtx, int(dtx))
        self.tune(OPUS_BITRATE, 0, fec=True)

    def _set(self, request: Any, value: int) -> None:
        self._encoder_ctl(self._encoder.encoder_state, request, value)

    def tune(self, bitrate: int, loss_percent: int, fec: bool = True) -> None:
        """Bitrate in bit/s, the expected loss (0-100) and in-band FEC on or off; only
        what changed is passed to libopus."""
        if bitrate != self.bitrate:
            self._set(self._ctl.set_bitrate, int(bitrate))
            self.bitrate = bitrate
        if fec != self.fec:
            self._set(self._ctl.set_inband_fec, int(fec))
            self.fec = fec
        loss_percent = max(0, min(100, int(loss_percent)))
        if loss_percent != self.loss_percent:
            self._set(self._ctl.set_packet_loss_perc, loss_percent)
            self.loss_percent = loss_percent

    def settings(self) -> dict[str, int]:
        """What libopus says it is set to (for tests and the benchmark)."""
        get = self._ctl
        state = self._encoder.encoder_state
        return {"bitrate": self._encoder_ctl(state, get.get_bitrate),
                "fec": self._encoder_ctl(state, get.get_inband_fec),
                "loss_percent": self._encoder_ctl(state, get.get_packet_loss_perc),
                "dtx": self._encoder_ctl(state, get.get_dtx)}

    def encode(self, pcm: bytes) -> bytes:
        """One Opus packet, or b"" when DTX says the frame need not be sent."""
        if len(pcm) != FRAME_BYTES:
            raise CodecError("a PCM frame has 640 bytes")
        packet = bytes(self._encoder.encode(pcm, FRAME_SAMPLES))
        return b"" if len(packet) <= DTX_MAX_BYTES else packet

    def decode(self, payload: bytes) -> bytes:
        if not payload:
            raise CodecError("empty opus payload")
        return self._decode(payload, False)

    def conceal(self, following: bytes | None = None) -> bytes:
        try:
            if following:
                return self._decode(following, True)
            return self._decode(None, False)
        except CodecError:
            return SILENCE

    def _decode(self, payload: bytes | None, fec: bool) -> bytes:
        try:
            pcm = bytes(self._raw_decode(self._decoder.decoder_state, payload,
                                         len(payload) if payload else 0, FRAME_SAMPLES,
                                         fec, CHANNELS))
        except self._error as exc:
            raise CodecError(f"opus decode failed: {exc}") from None
        if len(pcm) != FRAME_BYTES:
            raise CodecError("opus payload is not one 20 ms frame")
        return pcm


@cache
def _opuslib() -> Any:
    """The opuslib module if it imports and round-trips a frame here, else None."""
    try:
        import opuslib  # noqa: PLC0415 - optional dependency, probed once
        encoder = opuslib.Encoder(RATE, CHANNELS, opuslib.APPLICATION_VOIP)
        decoder = opuslib.Decoder(RATE, CHANNELS)
        pcm = decoder.decode(encoder.encode(SILENCE, FRAME_SAMPLES), FRAME_SAMPLES)
        if len(pcm) != FRAME_BYTES:
            return None
    except Exception:  # ImportError, missing libopus (OSError), broken build
        return None
    return opuslib


def available_codecs() -> list[str]:
    """The codecs this machine can use, best first: ["opus", "pcm"] or ["pcm"]."""
    return [OPUS, PCM] if _opuslib() is not None else [PCM]


def make_codec(name: str) -> Codec:
    """A fresh codec (encoder and decoder state) by name; `CodecError` if unavailable."""
    if name == PCM:
        return PcmCodec()
    if name == OPUS:
        return OpusCodec()
    raise CodecError(f"unknown codec {name!r}")


def codec_by_id(codec_id: int) -> Codec:
    """A fresh codec for an id from an AUDIO header; `CodecError` if unknown/unavailable."""
    name = CODEC_NAMES.get(codec_id)
    if name is None:
        raise CodecError(f"unknown codec id {codec_id}")
    return make_codec(name)
