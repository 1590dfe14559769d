"""Session key material: ephemeral X25519 shares, HKDF, and the phase-3 channel.

Each side makes a fresh X25519 key per connection and sends its 32-byte public share in
the key exchange; both shares are signed inside the transcript. The session keys derive
from the RSA-carried secret S **and** the X25519 shared secret Z together (IKM = S || Z),
so a recording of a session stays sealed even when both long-term RSA private keys leak
later: the ephemeral X25519 private keys are gone when the connection ends.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from messenger.wire.suites import (
    AES_GCM,
    CLIENT_TO_SERVER,
    RSA_OAEP,
    AesGcmChannel,
    Channel,
    RsaOaepChannel,
)
from messenger.wire.transcript import PROTOCOL

SHARE_SIZE = 32


class UnusableShare(ValueError):
    """A peer's X25519 share gives no usable shared secret (a low-order point)."""


def new_ephemeral(random: Callable[[int], bytes]) -> X25519PrivateKey:
    """A fresh X25519 private key from 32 bytes of ``random`` (os.urandom in production)."""
    return X25519PrivateKey.from_private_bytes(random(SHARE_SIZE))


def share_of(private: X25519PrivateKey) -> bytes:
    """The 32-byte public share (RFC 7748 u-coordinate, little-endian) to send."""
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def shared_secret(private: X25519PrivateKey, peer_share: bytes) -> bytes:
    """Z = X25519(own private key, peer's share); refuses an all-zero result.

    ``peer_share`` must already be 32 bytes. A low-order point (which would make Z all
    zeros, whatever our key) raises `UnusableShare`.
    """
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(peer_share))
    except ValueError:
        raise UnusableShare("the X25519 share gives no usable shared secret") from None


def derive_key(ikm: bytes, server_nonce: bytes, client_nonce: bytes, label: str) -> bytes:
    """HKDF-SHA256(IKM = S || Z, salt = Ns || Nc, info = 'messenger/2 ' + label), 32 bytes."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=server_nonce + client_nonce,
                info=f"{PROTOCOL} {label}".encode("ascii")).derive(ikm)


def _pair(ikm: bytes, server_nonce: bytes, client_nonce: bytes, label: str,
          side: int) -> tuple[bytes, bytes]:
    """(send key, receive key) of ``label`` for the side that sends in direction ``side``."""
    c2s = derive_key(ikm, server_nonce, client_nonce, f"{label} c2s")
    s2c = derive_key(ikm, server_nonce, client_nonce, f"{label} s2c")
    return (c2s, s2c) if side == CLIENT_TO_SERVER else (s2c, c2s)


def make_channel(suite: str, side: int, rsa_secret: bytes, x25519_secret: bytes,
                 server_nonce: bytes, client_nonce: bytes, session: bytes,
                 own_key: rsa.RSAPrivateKey, peer_key: rsa.RSAPublicKey) -> Channel:
    """Build the phase-3 channel for one side (``side`` = its sending direction)."""
    ikm = rsa_secret + x25519_secret
    if suite == AES_GCM:
        send, recv = _pair(ikm, server_nonce, client_nonce, "aes-256-gcm", side)
        return AesGcmChannel(send, recv, side)
    if suite == RSA_OAEP:
        send_mac, recv_mac = _pair(ikm, server_nonce, client_nonce, "rsa-oaep mac", side)
        send_key, recv_key = _pair(ikm, server_nonce, client_nonce, "rsa-oaep enc", side)
        return RsaOaepChannel(own_key, peer_key, send_mac, recv_mac, side, session,
                              send_key, recv_key)
    raise ValueError(f"unknown suite {suite!r}")
