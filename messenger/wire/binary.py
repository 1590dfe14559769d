"""Binary file frames: file bytes inside the encrypted channel without JSON or base64.

A phase-3 plaintext is either a JSON object (its first byte is ``{`` or JSON white space)
or, for file transfers, one of these binary frames, told apart by the first byte
(docs/PROTOCOL.md, "Files"). Integers are unsigned big-endian.

=========  =========  ===================================================  ===============
type       direction  layout after the type byte                           what it is
=========  =========  ===================================================  ===============
``0x01``   C -> S     upload id (u64), offset (u64), data (1 or more)      upload data
``0x02``   C -> S     file id (u64), offset (u64), length (u32)            read request
``0x03``   S -> C     file id (u64), offset (u64), data (0 or more)        file data
=========  =========  ===================================================  ===============

Why binary: base64 in JSON makes every byte cost a third more on the wire, and encoding,
escaping, parsing and decoding it costs 25 to 50 times the CPU of slicing these headers
(docs/PROTOCOL.md has the measurement). The layouts are sans-IO: pack and parse only.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from messenger.wire.errors import BadRequest
from messenger.wire.jim import MAX_SERVER_PAYLOAD

UPLOAD_DATA = 0x01
READ = 0x02
FILE_DATA = 0x03
TYPES = frozenset({UPLOAD_DATA, READ, FILE_DATA})
# The first byte of every binary frame, as one-byte strings (a cheap membership test).
MARKS = frozenset(bytes([kind]) for kind in TYPES)

_DATA_HEADER = struct.Struct(">BQQ")       # type, id, offset
_READ = struct.Struct(">BQQI")             # type, file id, offset, length
DATA_HEADER_SIZE = _DATA_HEADER.size       # 17
READ_SIZE = _READ.size                     # 21
# The most file bytes one FILE_DATA frame carries: the server's payload limit less the
# header, so that a read of any allowed length is answered by one frame.
MAX_READ = MAX_SERVER_PAYLOAD - DATA_HEADER_SIZE
MAX_ID = 2**63 - 1


class DataFrame(NamedTuple):
    """An UPLOAD_DATA or FILE_DATA frame: ``ident`` is the upload id or the file id."""

    kind: int
    ident: int
    offset: int
    data: memoryview


class ReadFrame(NamedTuple):
    file_id: int
    offset: int
    length: int


def is_binary(plaintext: bytes) -> bool:
    """True when ``plaintext`` is a binary file frame rather than JSON."""
    return plaintext[:1] in MARKS


def pack_data(kind: int, ident: int, offset: int, data: bytes | memoryview) -> bytes:
    """An UPLOAD_DATA (``kind`` 1) or FILE_DATA (``kind`` 3) frame."""
    return _DATA_HEADER.pack(kind, ident, offset) + data


def pack_read(file_id: int, offset: int, length: int) -> bytes:
    return _READ.pack(READ, file_id, offset, length)


def parse(plaintext: bytes) -> DataFrame | ReadFrame:
    """Parse one binary frame; `BadRequest` says what is wrong with a malformed one."""
    kind = plaintext[0] if plaintext else -1
    if kind == READ:
        if len(plaintext) != READ_SIZE:
            raise BadRequest(f"a read frame is exactly {READ_SIZE} bytes, not"
                             f" {len(plaintext)}")
        _, file_id, offset, length = _READ.unpack(plaintext)
        _check_id("file id", file_id)
        _check_offset(offset)
        if not 1 <= length <= MAX_READ:
            raise BadRequest(f"a read asks for 1 to {MAX_READ} bytes, not {length}")
        return ReadFrame(file_id, offset, length)
    if kind in (UPLOAD_DATA, FILE_DATA):
        if len(plaintext) < DATA_HEADER_SIZE:
            raise BadRequest(f"a data frame has a {DATA_HEADER_SIZE}-byte header; this one"
                             f" is {len(plaintext)} bytes long")
        _, ident, offset = _DATA_HEADER.unpack_from(plaintext)
        _check_id("upload id" if kind == UPLOAD_DATA else "file id", ident)
        _check_offset(offset)
        data = memoryview(plaintext)[DATA_HEADER_SIZE:]
        if kind == UPLOAD_DATA and not data:
            raise BadRequest("an upload data frame carries at least one byte")
        return DataFrame(kind, ident, offset, data)
    raise BadRequest(f"unknown binary frame type {kind}")


def _check_id(what: str, value: int) -> None:
    if not 1 <= value <= MAX_ID:
        raise BadRequest(f"the {what} must be 1 to {MAX_ID}")


def _check_offset(offset: int) -> None:
    if offset > MAX_ID:
        raise BadRequest(f"the offset must be at most {MAX_ID}")
