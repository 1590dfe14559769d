"""The two cipher suites of phase 3: how one frame payload is sealed and opened.

Both suites number the frames of each direction from 0 and bind that number into the
protection, so a frame that is tampered with, dropped, reordered or replayed fails to open
and the connection is closed. Directions are 1 (client to server) and 2 (server to client).

* ``aes-256-gcm``: one AES-256-GCM key per direction; nonce = direction byte, three zero
  bytes, 64-bit big-endian frame counter; payload = ciphertext followed by the 16-byte tag.
* ``rsa-oaep``: the plaintext is first masked with AES-256-CTR under the direction's
  session key (so a later leak of either long-term RSA key reveals nothing), then cut
  into chunks of at most k - 66 bytes (k = the receiver's modulus in bytes), each
  encrypted with RSA-OAEP (SHA-256, MGF1-SHA-256) to the receiver's public key with the
  label session id || direction || 64-bit frame counter || 32-bit chunk index, so a chunk
  opens only in the session, direction, frame and position it was sealed for; payload =
  the k-byte chunks, then a 32-byte HMAC-SHA256 tag over (direction byte, 64-bit counter,
  chunks) with the sending direction's MAC key.

Thread-safety: a channel holds per-direction counters and no reactor state. `seal` and
`open` may run in any thread, as long as the caller serialises the calls of one channel
(seals in frame order, opens in frame order); seals and opens of one channel touch
separate state, and different channels share nothing.
"""

from __future__ import annotations

import hmac
import struct
from hashlib import sha256

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

AES_GCM = "aes-256-gcm"
RSA_OAEP = "rsa-oaep"
SUITES = (AES_GCM, RSA_OAEP)  # in order of preference

CLIENT_TO_SERVER = 1
SERVER_TO_CLIENT = 2

_COUNTER = struct.Struct(">Q")
_LABEL_TAIL = struct.Struct(">BQI")
# The handshake's OAEP (the RSA-carried session secret): empty label.
OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(),
                    label=None)
SESSION_ID_SIZE = 32
LABEL_SIZE = SESSION_ID_SIZE + _LABEL_TAIL.size  # 45
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


def oaep_label(session_id: bytes, direction: int, counter: int, index: int) -> bytes:
    """The OAEP label of one rsa-oaep chunk (45 bytes).

    session id (32 bytes) || direction (1 byte) || frame counter (uint64 BE) || chunk
    index (uint32 BE): a chunk decrypts only in the session, direction, frame and
    position it was sealed for.
    """
    return session_id + _LABEL_TAIL.pack(direction, counter, index)


def ctr_iv(direction: int, counter: int) -> bytes:
    """The AES-256-CTR initial counter block of one rsa-oaep frame (16 bytes).

    direction || 00 00 00 || frame counter (uint64 BE) || 00 00 00 00: the GCM nonce
    layout of aes-256-gcm followed by a 32-bit block counter starting at 0.
    """
    return bytes([direction, 0, 0, 0]) + _COUNTER.pack(counter) + b"\x00\x00\x00\x00"


def oaep_padding(label: bytes) -> padding.OAEP:
    """RSA-OAEP with SHA-256 and MGF1-SHA-256 and the given label."""
    return padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()),
                        algorithm=hashes.SHA256(), label=label)


class RsaOaepChannel(Channel):
    """Chunked RSA-OAEP-SHA256 to the receiver's key, session-bound, plus an HMAC tag.

    ``session_id`` is the SHA-256 of the handshake transcript; the ``*_mac`` keys tag
    frames, the ``*_key`` keys mask plaintexts (AES-256-CTR) before they are chunked.
    """

    name = RSA_OAEP

    def __init__(self, own_key: rsa.RSAPrivateKey, peer_key: rsa.RSAPublicKey,
                 send_mac_key: bytes, recv_mac_key: bytes, send_direction: int,
                 session_id: bytes, send_key: bytes, recv_key: bytes) -> None:
        if len(session_id) != SESSION_ID_SIZE:
            raise ValueError("the session id is the 32-byte SHA-256 of the transcript")
        if len(send_key) != 32 or len(recv_key) != 32:
            raise ValueError("rsa-oaep masking keys are AES-256 keys (32 bytes)")
        self._own_key = own_key
        self._peer_key = peer_key
        self._send_mac = send_mac_key
        self._recv_mac = recv_mac_key
        self._send_key = send_key
        self._recv_key = recv_key
        self._session = session_id
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

    @staticmethod
    def _mask(key: bytes, direction: int, counter: int, data: bytes) -> bytes:
        """AES-256-CTR: the same operation masks and unmasks."""
        context = Cipher(algorithms.AES(key), modes.CTR(ctr_iv(direction, counter)))
        return context.encryptor().update(data)

    def seal(self, plaintext: bytes) -> bytes:
        step, direction, counter = self._chunk, self._send_direction, self._send_count
        masked = self._mask(self._send_key, direction, counter, plaintext)
        encrypt, session = self._peer_key.encrypt, self._session
        chunks = [encrypt(masked[start:start + step],
                          oaep_padding(oaep_label(session, direction, counter, index)))
                  for index, start in enumerate(range(0, max(len(masked), 1), step))]
        ciphertext = b"".join(chunks)
        tag = self._tag(self._send_mac, direction, counter, ciphertext)
        self._send_count += 1
        return ciphertext + tag

    def open(self, payload: bytes) -> bytes:
        size, direction, counter = self._own_size, self._recv_direction, self._recv_count
        ciphertext, tag = payload[:-MAC_SIZE], payload[-MAC_SIZE:]
        if len(payload) < MAC_SIZE + size or len(ciphertext) % size:
            raise ChannelError("frame has a wrong length for rsa-oaep")
        expected = self._tag(self._recv_mac, direction, counter, ciphertext)
        if not hmac.compare_digest(expected, tag):
            raise ChannelError("frame failed authentication")
        decrypt, session = self._own_key.decrypt, self._session
        try:
            masked = b"".join(
                decrypt(ciphertext[start:start + size],
                        oaep_padding(oaep_label(session, direction, counter, index)))
                for index, start in enumerate(range(0, len(ciphertext), size)))
        except ValueError:
            raise ChannelError("frame failed to decrypt") from None
        self._recv_count += 1
        return self._mask(self._recv_key, direction, counter, masked)
