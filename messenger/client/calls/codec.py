"""Voice codecs behind one interface: raw PCM always, Opus when opuslib and libopus work.

Audio is 16 kHz mono signed 16-bit, 20 ms frames (320 samples, 640 bytes). PCM on the
wire is little-endian (as WAV); Opus frames are whatever libopus makes of one frame
(about 65 bytes at 24 kbit/s). Each codec has a one-byte id carried in the AUDIO header,
so a receiver decodes every packet with the codec it names.

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
OPUS_BITRATE = 24000


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


class PcmCodec(Codec):
    """Raw samples, little-endian on the wire."""

    name = PCM
    codec_id = CODEC_IDS[PCM]

    def encode(self, pcm: bytes) -> bytes:
        if len(pcm) != FRAME_BYTES:
            raise CodecError("a PCM frame has 640 bytes")
        return pcm if sys.byteorder == "little" else _swap(pcm)

    def decode(self, payload: bytes) -> bytes:
        if len(payload) != FRAME_BYTES:
            raise CodecError("a PCM frame has 640 bytes")
        return payload if sys.byteorder == "little" else _swap(payload)


def _swap(data: bytes) -> bytes:
    samples = array("h", data)
    samples.byteswap()
    return samples.tobytes()


class OpusCodec(Codec):
    """libopus through opuslib: VOIP mode, 24 kbit/s, one encoder and one decoder."""

    name = OPUS
    codec_id = CODEC_IDS[OPUS]

    def __init__(self) -> None:
        opuslib = _opuslib()
        if opuslib is None:
            raise CodecError("opus is not available (install opuslib and libopus0)")
        self._encoder = opuslib.Encoder(RATE, CHANNELS, opuslib.APPLICATION_VOIP)
        self._encoder.bitrate = OPUS_BITRATE
        self._decoder = opuslib.Decoder(RATE, CHANNELS)
        self._error = opuslib.OpusError

    def encode(self, pcm: bytes) -> bytes:
        if len(pcm) != FRAME_BYTES:
            raise CodecError("a PCM frame has 640 bytes")
        return bytes(self._encoder.encode(pcm, FRAME_SAMPLES))

    def decode(self, payload: bytes) -> bytes:
        if not payload:
            raise CodecError("empty opus payload")
        try:
            pcm = bytes(self._decoder.decode(payload, FRAME_SAMPLES))
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
