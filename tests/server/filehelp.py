"""Helpers for the file tests: upload and download over a `JimTestClient` by the protocol
(docs/PROTOCOL.md, "Files"), real content on disk, and looks at the server's files dir."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from twisted.internet import defer

from messenger.wire import binary

CHUNK = 64 * 1024


def content(size: int) -> bytes:
    """``size`` random bytes (no two tests' files dedupe by chance)."""
    return os.urandom(size)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def start(client: Any, data: bytes, name: str = "notes.bin",
          mime: str = "application/octet-stream", **overrides: Any) -> defer.Deferred:
    fields = {"name": name, "size": len(data), "mime": mime, "sha256": sha(data)}
    fields.update(overrides)
    return client.request("file_upload", **fields)


def send_chunks(client: Any, upload_id: int, data: bytes, offset: int = 0,
                end: int | None = None, chunk: int = CHUNK) -> None:
    """Send ``data[offset:end]`` as upload data frames (no waiting)."""
    end = len(data) if end is None else end
    while offset < end:
        piece = data[offset:min(offset + chunk, end)]
        client.send_plaintext(binary.pack_data(binary.UPLOAD_DATA, upload_id, offset, piece))
        offset += len(piece)


@defer.inlineCallbacks
def upload(testcase: Any, client: Any, data: bytes, chunk: int = CHUNK, **fields: Any) -> Any:
    """Start, send everything, finish; fires with the finish reply's ``file`` object."""
    reply = yield start(client, data, **fields)
    testcase.assertIn(reply["response"], (200, 201), reply)
    send_chunks(client, reply["upload_id"], data, reply["offset"], chunk=chunk)
    done = yield client.request("file_finish", upload_id=reply["upload_id"])
    testcase.assertEqual(done["response"], 201, done)
    return done["file"]


@defer.inlineCallbacks
def download(client: Any, file_id: int, size: int, chunk: int = 256 * 1024,
             offset: int = 0) -> Any:
    """Read ``[offset, size)`` of a file this connection was granted (file_get first)."""
    for start_at in range(offset, size, chunk):
        client.send_plaintext(binary.pack_read(file_id, start_at, chunk))
    parts = []
    received = offset
    while received < size:
        frame = yield client.wait_data()
        if frame.offset != received:
            raise AssertionError(f"data at {frame.offset}, expected {received}")
        parts.append(bytes(frame.data))
        received += len(frame.data)
    return b"".join(parts)


def blob_files(server: Any) -> list[Path]:
    root = server.config.files_path / "blobs"
    return sorted(path for path in root.rglob("*") if path.is_file())


def partial_files(server: Any) -> list[Path]:
    return sorted((server.config.files_path / "partial").iterdir())
