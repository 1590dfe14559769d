"""The plaintexts inside sealed media packets: PROBE times, redundant AUDIO frames, REPORTs.

`messenger.wire.media` frames and seals packets; this module lays out what some of them
carry once opened. Pure functions, no I/O; docs/CALLS.md describes the same layouts.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

from messenger.wire.media import MAX_SEQ, MalformedPacket

MAX_REDUNDANT = 3      # earlier frames one AUDIO packet may repeat
_PROBE_TIME = struct.Struct(">d")


def probe_payload(sent_at: float) -> bytes:
    """The plaintext of a PROBE: the prober's clock, echoed in the PROBE_ACK."""
    return _PROBE_TIME.pack(sent_at)


def probe_time(payload: bytes) -> float | None:
    """The prober's clock from a PROBE/PROBE_ACK plaintext, or None if it has none."""
    if len(payload) != _PROBE_TIME.size:
        return None
    return _PROBE_TIME.unpack(payload)[0]


# -- AUDIO payloads with redundancy (RFC 2198 in spirit) ----------------------------------

_RED_COUNT = struct.Struct(">B")
_RED_LENGTH = struct.Struct(">H")


def pack_redundant(primary: bytes, earlier: Sequence[bytes]) -> bytes:
    """An AUDIO payload with the REDUNDANT flag: the frame of this packet's sequence
    number, then copies of the ``earlier`` frames (sequence - 1, - 2, ...).

    Layout: u8 n, n x u16 length of each earlier frame, the primary frame, the n
    earlier frames in order (newest first). A copy of length 0 is a frame not sent (DTX).
    """
    if len(earlier) > MAX_REDUNDANT:
        raise ValueError(f"at most {MAX_REDUNDANT} earlier frames")
    head = _RED_COUNT.pack(len(earlier)) + b"".join(_RED_LENGTH.pack(len(f)) for f in earlier)
    return head + primary + b"".join(earlier)


def unpack_redundant(payload: bytes) -> tuple[bytes, tuple[bytes, ...]]:
    """(primary frame, earlier frames newest first) of a REDUNDANT payload."""
    if not payload:
        raise MalformedPacket("empty redundant payload")
    count = payload[0]
    if count > MAX_REDUNDANT:
        raise MalformedPacket("too many redundant frames")
    offset = 1 + 2 * count
    if offset > len(payload):
        raise MalformedPacket("truncated redundant payload")
    lengths = [_RED_LENGTH.unpack_from(payload, 1 + 2 * i)[0] for i in range(count)]
    primary_end = len(payload) - sum(lengths)
    if primary_end < offset:
        raise MalformedPacket("redundant frames longer than the payload")
    primary = payload[offset:primary_end]
    earlier = []
    position = primary_end
    for length in lengths:
        earlier.append(payload[position:position + length])
        position += length
    return primary, tuple(earlier)


# -- REPORT: what the receiver of our audio saw ------------------------------------------

_REPORT = struct.Struct(">IIHHHB")


class Report(NamedTuple):
    """A receiver's view of the audio stream it gets (payload of a REPORT packet).

    Sent twice a second by each member to the other; the sender tunes its encoder from
    ``loss_permille`` and learns that its audio arrives at all (``received`` > 0), which
    is what makes a call ACTIVE (audio both ways).
    """

    highest_seq: int      # highest AUDIO sequence number received (0 if none)
    received: int         # AUDIO packets received since the call began
    loss_permille: int    # packets lost over the last few seconds, per mille
    jitter_ms: int        # interarrival jitter
    late_permille: int    # packets that came too late to play, last few seconds
    flags: int = 0        # bit 0: audio received within the last second


def encode_report(report: Report) -> bytes:
    return _REPORT.pack(report.highest_seq & MAX_SEQ, min(report.received, MAX_SEQ),
                        min(report.loss_permille, 1000), min(report.jitter_ms, 0xFFFF),
                        min(report.late_permille, 1000), report.flags & 0xFF)


def decode_report(payload: bytes) -> Report:
    if len(payload) != _REPORT.size:
        raise MalformedPacket("REPORT of the wrong length")
    report = Report(*_REPORT.unpack(payload))
    if report.loss_permille > 1000 or report.late_permille > 1000:
        raise MalformedPacket("REPORT fraction out of range")
    return report
