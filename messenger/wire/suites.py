"""The two cipher suites of phase 3: how one frame payload is sealed and opened.

Both suites number the frames of each direction from 0 and bind that number into the
protection, so a frame that is tampered with, dropped, reordered or replayed fails to open
and the connection is closed. Directions are 1 (client to server) and 2 (server to client).

* ``aes-256-gcm``: one AES-256-GCM key per direction; nonce = direction byte, three zero
  bytes, 64-bit big-endian frame counter; payload = ciphertext followed by the 16-byte tag.
* ``rsa-oaep``: the plaintext is cut into chunks of at most k - 66 bytes (k = the
  receiver's modulus in bytes), each encrypted with RSA-OAEP (SHA-256, MGF1-SHA-256, no
  label) to the receiver's public key; payload = the k-byte chunks, then a 32-byte
  HMAC-SHA256 tag over (direction byte, 64-bit counter, chunks) with the sending
  direction's MAC key.
"""

from __future__ import annotations

import hmac
import struct
from hashlib import sha256

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

AES_GCM = "aes-256-gcm"
RSA_OAEP = "rsa-oaep"
SUITES = (AES_GCM, RSA_OAEP)  # in order of preference

CLIENT_TO_SERVER = 1
SERVER_TO_CLIENT = 2

_COUNTER = struct.Struct(">Q")
OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(),
                    label=None)
OAEP_OVERHEAD = 66  # 2 * SHA-256 digest size + 2
MAC_SIZE = 32


class ChannelError(Exception):
    """A frame that failed to open: tampered, reordered, replayed or malformed."""


class Channel:
    """Seals outgoing and opens incoming payloads of one connection in one suite."""

    __slots__ = ()
    name: str

    def seal(self, plaintext: bytes) -> bytes:
        raise NotImplementedError

    def open(self, payload: bytes) -> bytes:
        raise NotImplementedError


class AesGcmChannel(Channel):
    """AES-256-GCM with a per-direction key and a counter nonce."""

    name = AES_GCM
    __slots__ = ("_send", "_recv", "_send_prefix", "_recv_prefix", "_send_count", "_recv_count")

    def __init__(self, send_key: bytes, recv_key: bytes, send_direction: int) -> None:
        recv_direction = 3 - send_direction
        self._send = AESGCM(send_key).encrypt
        self._recv = AESGCM(recv_key).decrypt
        self._send_prefix = bytes([send_direction, 0, 0, 0])
        self._recv_prefix = bytes([recv_direction, 0, 0, 0])
        self._send_count = 0
        self._recv_count = 0

    def seal(self, plaintext: bytes) -> bytes:
        nonce = self._send_prefix + _COUNTER.pack(self._send_count)
        self._send_count += 1
        return self._send(nonce, plaintext, None)

    def open(self, payload: bytes) -> bytes:
        nonce = self._recv_prefix + _COUNTER.pack(self._recv_count)
        try:
            plaintext = self._recv(nonce, payload, None)
        except (InvalidTag, ValueError):
            raise ChannelError("frame failed authentication") from None
        self._recv_count += 1
        return plaintext


class RsaOaepChannel(Channel):
    """Chunked RSA-OAEP-SHA256 to the receiver's key, plus an HMAC tag with a counter."""

    name = RSA_OAEP

    def __init__(self, own_key: rsa.RSAPrivateKey, peer_key: rsa.RSAPublicKey,
                 send_mac_key: bytes, recv_mac_key: bytes, send_direction: int) -> None:
        self._own_key = own_key
        self._peer_key = peer_key
        self._send_mac = send_mac_key
        self._recv_mac = recv_mac_key
        self._send_direction = send_direction
        self._recv_direction = 3 - send_direction
        self._send_count = 0
        self._recv_count = 0
        self._peer_size = (peer_key.key_size + 7) // 8
        self._own_size = (own_key.key_size + 7) // 8
        self._chunk = self._peer_size - OAEP_OVERHEAD

    @staticmethod
    def _tag(key: bytes, direction: int, counter: int, ciphertext: bytes) -> bytes:
        return hmac.new(key, bytes([direction]) + _COUNTER.pack(counter) + ciphertext,
                        sha256).digest()

    def seal(self, plaintext: bytes) -> bytes:
        step = self._chunk
        encrypt = self._peer_key.encrypt
        chunks = [encrypt(plaintext[start:start + step], OAEP)
                  for start in range(0, max(len(plaintext), 1), step)]
        ciphertext = b"".join(chunks)
        tag = self._tag(self._send_mac, self._send_direction, self._send_count, ciphertext)
        self._send_count += 1
        return ciphertext + tag

    def open(self, payload: bytes) -> bytes:
        size = self._own_size
        ciphertext, tag = payload[:-MAC_SIZE], payload[-MAC_SIZE:]
        if len(payload) < MAC_SIZE + size or len(ciphertext) % size:
            raise ChannelError("frame has a wrong length for rsa-oaep")
        expected = self._tag(self._recv_mac, self._recv_direction, self._recv_count, ciphertext)
        if not hmac.compare_digest(expected, tag):
            raise ChannelError("frame failed authentication")
        decrypt = self._own_key.decrypt
        try:
            plaintext = b"".join(decrypt(ciphertext[start:start + size], OAEP)
                                 for start in range(0, len(ciphertext), size))
        except ValueError:
            raise ChannelError("frame failed to decrypt") from None
        self._recv_count += 1
        return plaintext
