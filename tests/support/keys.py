"""Test fixtures for keys and randomness.

RSA key generation costs tens of milliseconds (hundreds for 3072 bits), so every test
process makes each key once: `rsa_key` is cached by (name, bits). Tests that need two
different keys ask for two names.

The handshakes take a ``random`` callable; `deterministic_random` and `scripted_random`
make nonces and session secrets reproducible.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable

from cryptography.hazmat.primitives.asymmetric import ec, rsa


def rsa_key(name: str = "server", bits: int = 2048) -> rsa.RSAPrivateKey:
    """A private RSA key made once per process for ``name`` and ``bits``."""
    return _rsa_key(name, bits)  # one cache entry whether bits is given or defaulted


@functools.cache
def _rsa_key(name: str, bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.cache
def ec_key(name: str = "ec") -> ec.EllipticCurvePrivateKey:
    """A private P-256 key made once per process (for "not an RSA key" tests)."""
    return ec.generate_private_key(ec.SECP256R1())


def public_key_with_modulus_bits(bits: int, exponent: int = 65537) -> rsa.RSAPublicKey:
    """An RSA public key whose modulus has exactly ``bits`` bits.

    The modulus is not a product of two primes, so nobody holds its private key; it serves
    tests that only check how a public key is judged (size limits), instantly.
    """
    modulus = (1 << (bits - 1)) | (1 << (bits - 2)) | 1
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


def deterministic_random(seed: bytes = b"messenger tests") -> Callable[[int], bytes]:
    """A ``random(n)`` callable that yields the same byte stream for the same seed.

    The stream is SHA-256(seed || 64-bit block counter) blocks, concatenated.
    """
    state = {"counter": 0, "buffer": b""}

    def random(size: int) -> bytes:
        while len(state["buffer"]) < size:
            block = hashlib.sha256(seed + state["counter"].to_bytes(8, "big")).digest()
            state["counter"] += 1
            state["buffer"] += block
        out, state["buffer"] = state["buffer"][:size], state["buffer"][size:]
        return out

    return random


def scripted_random(values: Iterable[bytes]) -> Callable[[int], bytes]:
    """A ``random(n)`` callable that returns the given values in order.

    Each value must have the length asked for; running out or a wrong length raises
    AssertionError, so a test learns when the code under test draws differently.
    """
    pending = list(values)

    def random(size: int) -> bytes:
        assert pending, f"scripted_random: no value left for a request of {size} bytes"
        value = pending.pop(0)
        assert len(value) == size, f"scripted_random: asked for {size} bytes, have {len(value)}"
        return value

    return random
