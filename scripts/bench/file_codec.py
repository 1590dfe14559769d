#!/usr/bin/env python3
"""The CPU cost of putting file bytes in a frame: base64 in a JSON request against a binary
file frame (docs/PROTOCOL.md, "Files"), sealing and opening with aes-256-gcm included.

    .venv/bin/python scripts/bench/file_codec.py

Prints milliseconds per MiB of file data for each way and chunk size, and the sealed sizes.
"""

from __future__ import annotations

import base64
import os
import struct
import time
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from messenger.wire import jim

KEY = AESGCM(os.urandom(32))
NONCE = os.urandom(12)
HEADER = struct.Struct(">BQQ")


def ms_per_mib(fn: Any, size: int, reps: int) -> float:
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / (reps * size / 2**20) * 1000


def main() -> None:
    for size in (16 * 1024, 96 * 1024, 768 * 1024):
        _measure(size)


def _measure(size: int) -> None:
    """One line of figures for chunks of ``size`` bytes."""
    data = os.urandom(size)
    reps = max(20, 20 * 2**20 // size)

    def json_seal() -> bytes:
        return KEY.encrypt(NONCE, jim.encode({
            "action": "file_chunk", "id": "0" * 32, "time": 1.0, "upload_id": 1,
            "offset": 0, "data": base64.b64encode(data).decode()}), None)

    sealed_json = json_seal()

    def json_open() -> bytes:
        message = jim.decode(KEY.decrypt(NONCE, sealed_json, None))
        return base64.b64decode(message["data"], validate=True)

    def binary_seal() -> bytes:
        return KEY.encrypt(NONCE, HEADER.pack(1, 1, 0) + data, None)

    sealed_binary = binary_seal()

    def binary_open() -> memoryview:
        return memoryview(KEY.decrypt(NONCE, sealed_binary, None))[HEADER.size:]

    print(f"{size // 1024:4d} KiB: json {ms_per_mib(json_seal, size, reps):6.2f} /"
          f" {ms_per_mib(json_open, size, reps):6.2f} ms per MiB;"
          f" binary {ms_per_mib(binary_seal, size, reps):5.2f} /"
          f" {ms_per_mib(binary_open, size, reps):5.2f} ms per MiB;"
          f" sealed {len(sealed_json)} / {len(sealed_binary)} bytes")


if __name__ == "__main__":
    main()
