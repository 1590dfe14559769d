"""RSA keys: made once, kept in a 0600 PEM file, loaded, fingerprinted.

The server's long-term key lives in its data dir, the client's in the user's config dir.
A fingerprint is ``sha256:`` + the hex SHA-256 of the key's DER SubjectPublicKeyInfo; it
is what a client pins per server address.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

MIN_BITS = 2048
MAX_BITS = 4096
MAX_PEM_LENGTH = 4096
# The one public exponent accepted, ours and a peer's: a large exponent makes every
# encryption to that key (each rsa-oaep chunk the other side seals) many times costlier.
PUBLIC_EXPONENT = 65537


class InvalidPublicKey(ValueError):
    """A public key that is not an acceptable RSA key."""


def generate(bits: int = 3072) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=bits)


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(key: rsa.RSAPublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def public_der(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def fingerprint(key: rsa.RSAPublicKey) -> str:
    return "sha256:" + hashlib.sha256(public_der(key)).hexdigest()


def write_private_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    """Write a private key readable by its owner only (created 0600, never wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a stale temporary file keeps its old mode otherwise
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem(key))
    os.replace(tmp, path)


def load_or_create(path: Path, bits: int = 3072) -> tuple[rsa.RSAPrivateKey, bool]:
    """Load the private key at ``path``; make and save one first if it is absent.

    Returns the key and whether it was created now.
    """
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} does not hold an RSA private key")
        if key.public_key().public_numbers().e != PUBLIC_EXPONENT:
            raise ValueError(f"{path} holds an RSA key whose public exponent is not"
                             f" {PUBLIC_EXPONENT}, which peers refuse; move it away to have a"
                             " new key made")
        return key, False
    key = generate(bits)
    write_private_key(path, key)
    return key, True


def parse_public_pem(text: str) -> rsa.RSAPublicKey:
    """Parse a peer's PEM public key: only RSA of 2048 to 4096 bits with e = 65537."""
    if not isinstance(text, str) or len(text) > MAX_PEM_LENGTH:
        raise InvalidPublicKey("public key must be a PEM string of at most 4096 characters")
    try:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError, TypeError):
        raise InvalidPublicKey("public key is not a valid PEM SubjectPublicKeyInfo") from None
    except Exception:  # cryptography's UnsupportedAlgorithm and friends
        raise InvalidPublicKey("public key is not a supported key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidPublicKey("public key must be an RSA key")
    if not MIN_BITS <= key.key_size <= MAX_BITS:
        raise InvalidPublicKey(f"RSA key must have {MIN_BITS} to {MAX_BITS} bits")
    if key.public_numbers().e != PUBLIC_EXPONENT:
        raise InvalidPublicKey(f"public exponent must be {PUBLIC_EXPONENT}")
    return key
