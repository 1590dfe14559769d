"""The UDP media packets of a call: byte layouts, sealing and the replay window.

Pure functions and small classes, no I/O. The client's media session and the server's
relay both build on this module; docs/CALLS.md describes the same layouts for people.

Every packet starts with one byte: the version (1) in the high nibble, the type in the
low nibble. Integers are big-endian (network order).

* HELLO (client -> relay) and HELLO_ACK (relay -> client) are signed, not encrypted:
  the last 16 bytes are HMAC-SHA256 under the member's *relay token* (32 random bytes
  handed to that member only, over JIM), truncated to 16 bytes, over everything before.
* PROBE, PROBE_ACK, AUDIO, BYE and REPORT are *sealed*: a 20-byte header in clear (and bound as
  associated data), then the payload encrypted with AES-256-GCM under the per-call key,
  then the 16-byte GCM tag. The nonce is built from the header: type byte, sender index,
  six zero bytes, 32-bit sequence number; each sender numbers each type from 0, so a
  nonce never repeats under one key.

The relay knows the call key (the server minted it) and checks the GCM tag of every
packet it forwards, so authentication costs it one dictionary lookup and one AES-GCM
open, with no per-member MAC and no extra bytes on the wire.

Parsers raise only `MalformedPacket`; tag checks return ``False``/``None`` instead of
raising, so a flood of forged packets costs no exception handling.
"""

from __future__ import annotations

import hmac
import os
import socket
import struct
from collections.abc import Sequence
from hashlib import sha256
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = 1

HELLO = 1
HELLO_ACK = 2
PROBE = 3
PROBE_ACK = 4
AUDIO = 5
BYE = 6
REPORT = 7
SEALED_TYPES = frozenset((PROBE, PROBE_ACK, AUDIO, BYE, REPORT))
TYPE_NAMES = {HELLO: "HELLO", HELLO_ACK: "HELLO_ACK", PROBE: "PROBE",
              PROBE_ACK: "PROBE_ACK", AUDIO: "AUDIO", BYE: "BYE", REPORT: "REPORT"}

CALL_ID_SIZE = 8
KEY_SIZE = 32          # AES-256-GCM call key
TOKEN_SIZE = 32        # per-member relay token (HMAC-SHA256 key)
TAG_SIZE = 16          # GCM tag, and the truncated HMAC of HELLO / HELLO_ACK
MAX_DATAGRAM = 1500    # anything longer is malformed
MAX_PAYLOAD = 1200     # plaintext of a sealed packet
MAX_ENDPOINTS = 4      # local endpoints a HELLO may announce
MAX_SEQ = 0xFFFFFFFF

# sealed header: type byte, sender, codec, flags, call id, sequence, timestamp
HEADER = struct.Struct(">BBBB8sII")
HEADER_SIZE = HEADER.size                     # 20
MIN_SEALED = HEADER_SIZE + TAG_SIZE           # 36
# HELLO / HELLO_ACK fixed part: type byte, member, count, flags, call id, counter
SIGNED = struct.Struct(">BBBB8sI")
SIGNED_SIZE = SIGNED.size                     # 16
_NONCE_PAD = bytes(6)
_PORT = struct.Struct(">H")

PCM = "pcm"
OPUS = "opus"
CODEC_IDS = {PCM: 0, OPUS: 1}          # the codec id byte of AUDIO headers
CODEC_NAMES = {number: name for name, number in CODEC_IDS.items()}

PEER_PRESENT = 0x01    # HELLO_ACK flag: the relay knows the peer's endpoint
REDUNDANT = 0x01       # AUDIO flag: the payload carries earlier frames too (section 2)
# A HELLO is padded to this many bytes: the relay never answers an address with more
# bytes than it received from it (anti-amplification), and a HELLO_ACK with a public
# endpoint and five IPv6 peer endpoints needs 146.
HELLO_MIN_SIZE = 160

Endpoint = tuple[str, int]


class MalformedPacket(ValueError):
    """A datagram that is not a well-formed media packet of this version."""


def type_byte(ptype: int) -> int:
    """The first byte of a packet of type ``ptype``."""
    return (VERSION << 4) | ptype


def packet_type(data: bytes) -> int:
    """The type of ``data`` (one of the constants above), or raise `MalformedPacket`."""
    if not data:
        raise MalformedPacket("empty datagram")
    first = data[0]
    if first >> 4 != VERSION:
        raise MalformedPacket(f"unknown version {first >> 4}")
    ptype = first & 0x0F
    if ptype not in TYPE_NAMES:
        raise MalformedPacket(f"unknown packet type {ptype}")
    if len(data) > MAX_DATAGRAM:
        raise MalformedPacket("datagram too long")
    return ptype


# -- secrets -----------------------------------------------------------------------------

def new_call_id() -> bytes:
    """A fresh random call id (8 bytes; JIM carries it as 16 hex digits)."""
    return os.urandom(CALL_ID_SIZE)


def new_call_key() -> bytes:
    """A fresh AES-256-GCM call key."""
    return os.urandom(KEY_SIZE)


def new_token() -> bytes:
    """A fresh relay token for one member."""
    return os.urandom(TOKEN_SIZE)


# -- endpoints ---------------------------------------------------------------------------

def encode_endpoint(endpoint: Endpoint) -> bytes:
    """Family byte (4 or 6), port, then the 4- or 16-byte address."""
    host, port = endpoint[0], endpoint[1]
    try:
        if ":" in host:
            return b"\x06" + _PORT.pack(port) + socket.inet_pton(socket.AF_INET6, host)
        return b"\x04" + _PORT.pack(port) + socket.inet_pton(socket.AF_INET, host)
    except (OSError, struct.error, TypeError) as exc:
        raise ValueError(f"not an IP endpoint: {endpoint!r}") from exc


def decode_endpoint(data: bytes, offset: int) -> tuple[Endpoint, int]:
    """Decode one endpoint at ``offset``; return it and the offset after it."""
    if offset + 3 > len(data):
        raise MalformedPacket("truncated endpoint")
    family = data[offset]
    (port,) = _PORT.unpack_from(data, offset + 1)
    start = offset + 3
    if family == 4:
        end = start + 4
        if end > len(data):
            raise MalformedPacket("truncated IPv4 address")
        host = socket.inet_ntop(socket.AF_INET, data[start:end])
    elif family == 6:
        end = start + 16
        if end > len(data):
            raise MalformedPacket("truncated IPv6 address")
        host = socket.inet_ntop(socket.AF_INET6, data[start:end])
    else:
        raise MalformedPacket(f"unknown address family {family}")
    if port == 0:
        raise MalformedPacket("endpoint with port 0")
    return (host, port), end


def _decode_endpoints(data: bytes, offset: int, count: int, end: int,
                      padded: bool = False) -> tuple[Endpoint, ...]:
    found = []
    for _ in range(count):
        endpoint, offset = decode_endpoint(data, offset)
        found.append(endpoint)
    if offset > end or (offset != end and not padded):
        raise MalformedPacket("trailing bytes after the endpoints")
    if padded and any(data[offset:end]):
        raise MalformedPacket("padding must be zero bytes")
    return tuple(found)


def unmap_endpoint(endpoint: Endpoint) -> Endpoint:
    """An IPv4-mapped IPv6 address (``::ffff:a.b.c.d``, as a dual-stack socket reports an
    IPv4 peer) as the plain IPv4 address; anything else unchanged."""
    host = endpoint[0]
    if host.startswith("::ffff:") and "." in host:
        return (host[7:], endpoint[1])
    return (host, endpoint[1])


def map_endpoint(endpoint: Endpoint) -> Endpoint:
    """The form a dual-stack (AF_INET6) socket writes to: IPv4 as ``::ffff:a.b.c.d``."""
    host = endpoint[0]
    if ":" not in host:
        return ("::ffff:" + host, endpoint[1])
    return endpoint


# -- HELLO / HELLO_ACK (signed with the member's relay token) ---------------------------

class Hello(NamedTuple):
    call_id: bytes
    member: int
    counter: int
    endpoints: tuple[Endpoint, ...]   # the client's local endpoints, for the peer to probe


class HelloAck(NamedTuple):
    call_id: bytes
    member: int
    counter: int                      # the counter of the HELLO this answers
    observed: Endpoint                # the member's public endpoint as the relay saw it
    peer_present: bool                # the relay knows the peer's endpoint: relaying works
    peer_endpoints: tuple[Endpoint, ...]  # the peer's public endpoint, then its local ones


def _sign(body: bytes, token: bytes) -> bytes:
    return body + hmac.digest(token, body, sha256)[:TAG_SIZE]


def verify_signed(data: bytes, token: bytes) -> bool:
    """True when the last 16 bytes of a HELLO/HELLO_ACK are its tag under ``token``."""
    if len(data) < SIGNED_SIZE + TAG_SIZE:
        return False
    expected = hmac.digest(token, data[:-TAG_SIZE], sha256)[:TAG_SIZE]
    return hmac.compare_digest(expected, data[-TAG_SIZE:])


def _check_call_id(call_id: bytes) -> None:
    if len(call_id) != CALL_ID_SIZE:
        raise ValueError(f"a call id has {CALL_ID_SIZE} bytes")


def _check_member(member: int) -> None:
    if member not in (0, 1):
        raise ValueError("a member index is 0 or 1")


def encode_hello(call_id: bytes, member: int, counter: int, token: bytes,
                 endpoints: tuple[Endpoint, ...] = ()) -> bytes:
    """A HELLO from ``member``, announcing its local ``endpoints``, signed with ``token``."""
    _check_call_id(call_id)
    _check_member(member)
    if len(endpoints) > MAX_ENDPOINTS:
        raise ValueError(f"at most {MAX_ENDPOINTS} local endpoints")
    body = SIGNED.pack(type_byte(HELLO), member, len(endpoints), 0, call_id, counter)
    body += b"".join(encode_endpoint(endpoint) for endpoint in endpoints)
    # zero padding up to HELLO_MIN_SIZE (covered by the tag): see HELLO_MIN_SIZE
    body += bytes(max(0, HELLO_MIN_SIZE - TAG_SIZE - len(body)))
    return _sign(body, token)


def parse_hello(data: bytes) -> Hello:
    """The fields of a HELLO (tag not checked: see `verify_signed`)."""
    if len(data) < SIGNED_SIZE + TAG_SIZE or len(data) > MAX_DATAGRAM:
        raise MalformedPacket("HELLO of the wrong length")
    first, member, count, _flags, call_id, counter = SIGNED.unpack_from(data)
    if first != type_byte(HELLO):
        raise MalformedPacket("not a HELLO")
    if member > 1:
        raise MalformedPacket("member index out of range")
    if count > MAX_ENDPOINTS:
        raise MalformedPacket("too many endpoints")
    endpoints = _decode_endpoints(data, SIGNED_SIZE, count, len(data) - TAG_SIZE,
                                  padded=True)
    return Hello(call_id, member, counter, endpoints)


def encode_hello_ack(call_id: bytes, member: int, counter: int, token: bytes,
                     observed: Endpoint, peer_present: bool = False,
                     peer_endpoints: tuple[Endpoint, ...] = ()) -> bytes:
    """The relay's answer to ``member``: its observed endpoint and what it knows of the peer."""
    _check_call_id(call_id)
    _check_member(member)
    if len(peer_endpoints) > MAX_ENDPOINTS + 1:
        raise ValueError("too many peer endpoints")
    flags = PEER_PRESENT if peer_present else 0
    body = SIGNED.pack(type_byte(HELLO_ACK), member, len(peer_endpoints), flags, call_id,
                       counter)
    body += encode_endpoint(observed)
    body += b"".join(encode_endpoint(endpoint) for endpoint in peer_endpoints)
    return _sign(body, token)


def parse_hello_ack(data: bytes) -> HelloAck:
    """The fields of a HELLO_ACK (tag not checked: see `verify_signed`)."""
    if len(data) < SIGNED_SIZE + 7 + TAG_SIZE or len(data) > MAX_DATAGRAM:
        raise MalformedPacket("HELLO_ACK of the wrong length")
    first, member, count, flags, call_id, counter = SIGNED.unpack_from(data)
    if first != type_byte(HELLO_ACK):
        raise MalformedPacket("not a HELLO_ACK")
    if member > 1:
        raise MalformedPacket("member index out of range")
    if count > MAX_ENDPOINTS + 1:
        raise MalformedPacket("too many endpoints")
    observed, offset = decode_endpoint(data, SIGNED_SIZE)
    peers = _decode_endpoints(data, offset, count, len(data) - TAG_SIZE)
    return HelloAck(call_id, member, counter, observed, bool(flags & PEER_PRESENT), peers)


# -- sealed packets (AES-256-GCM under the call key) ------------------------------------

class Header(NamedTuple):
    """The clear header of a sealed packet."""

    ptype: int
    sender: int
    codec: int      # AUDIO: codec id; otherwise 0
    flags: int      # AUDIO: REDUNDANT; otherwise 0
    call_id: bytes
    seq: int        # per sender and type, from 0
    stamp: int      # AUDIO: sample clock; PROBE_ACK: the seq of the probe answered


def parse_header(data: bytes) -> Header:
    """The clear header of a sealed packet, or raise `MalformedPacket`."""
    if len(data) < MIN_SEALED:
        raise MalformedPacket("sealed packet too short")
    if len(data) > MAX_DATAGRAM:
        raise MalformedPacket("datagram too long")
    first, sender, codec, flags, call_id, seq, stamp = HEADER.unpack_from(data)
    if first >> 4 != VERSION or (first & 0x0F) not in SEALED_TYPES:
        raise MalformedPacket("not a sealed packet")
    if sender > 1:
        raise MalformedPacket("sender index out of range")
    return Header(first & 0x0F, sender, codec, flags, call_id, seq, stamp)


class CallCipher:
    """Seals and opens the packets of one call under its AES-256-GCM key."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"a call key has {KEY_SIZE} bytes")
        self._aead = AESGCM(key)

    def seal(self, ptype: int, sender: int, call_id: bytes, seq: int, stamp: int = 0,
             payload: bytes = b"", codec: int = 0, flags: int = 0) -> bytes:
        """One sealed packet; (ptype, sender, seq) must never repeat under this key."""
        if ptype not in SEALED_TYPES:
            raise ValueError("not a sealed packet type")
        if len(payload) > MAX_PAYLOAD:
            raise ValueError("payload too long")
        first = type_byte(ptype)
        header = HEADER.pack(first, sender, codec, flags, call_id, seq, stamp)
        nonce = bytes((first, sender)) + _NONCE_PAD + header[12:16]
        return header + self._aead.encrypt(nonce, payload, header)

    def open(self, data: bytes) -> bytes | None:
        """The plaintext of a sealed packet whose header parsed, or None if the tag fails."""
        header = data[:HEADER_SIZE]
        nonce = header[0:2] + _NONCE_PAD + header[12:16]
        try:
            return self._aead.decrypt(nonce, data[HEADER_SIZE:], header)
        except InvalidTag:
            return None


# -- replay window -----------------------------------------------------------------------

class ReplayWindow:
    """A sliding bitmap over sequence numbers: each number is accepted at most once.

    Numbers more than ``size`` below the highest seen are refused as too old. Check
    first (`check`), authenticate, then record (`update`), so a forged packet cannot
    move the window.
    """

    __slots__ = ("size", "top", "_bits", "_mask")

    def __init__(self, size: int = 128) -> None:
        if size < 1:
            raise ValueError("window size must be positive")
        self.size = size
        self.top = -1
        self._bits = 0
        self._mask = (1 << size) - 1

    def check(self, seq: int) -> bool:
        """True when ``seq`` is new and not too old."""
        top = self.top
        if seq > top:
            return True
        offset = top - seq
        if offset >= self.size:
            return False
        return not (self._bits >> offset) & 1

    def update(self, seq: int) -> None:
        """Record ``seq`` as seen (call only after `check` and authentication)."""
        top = self.top
        if seq > top:
            shift = seq - top
            self._bits = ((self._bits << shift) | 1) & self._mask if shift < self.size else 1
            self.top = seq
        else:
            self._bits |= 1 << (top - seq)

    def accept(self, seq: int) -> bool:
        """`check` then `update`: True the first time ``seq`` is seen."""
        if not self.check(seq):
            return False
        self.update(seq)
        return True


def choose_codec(offer: Sequence[str], answer: Sequence[str]) -> str:
    """The first codec of ``offer`` (the caller's preference) that ``answer`` also has.

    PCM is always understood, so it is the answer when nothing better is common. The
    server negotiates with this when a call starts.
    """
    for name in offer:
        if name in CODEC_IDS and name in answer:
            return name
    return PCM
