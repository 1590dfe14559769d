"""Password hashing with scrypt and a random salt, always off the reactor thread.

Stored form: ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``, so the cost can be raised later
and old hashes still verify.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import Any

from twisted.internet import defer, threads
from twisted.python.threadpool import ThreadPool

R = 8
P = 1
SALT_SIZE = 16
HASH_SIZE = 32


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hash_password_sync(password: str, n: int) -> str:
    salt = os.urandom(SALT_SIZE)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=R, p=P,
                            maxmem=256 * n * R + 2**20, dklen=HASH_SIZE)
    return f"scrypt${n}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password_sync(password: str, stored: str) -> bool:
    """Check a password against a stored hash in constant time; False for a bad record."""
    try:
        scheme, n_text, r_text, p_text, salt_text, hash_text = stored.split("$")
        n, r, p = int(n_text), int(r_text), int(p_text)
        salt, expected = base64.b64decode(salt_text), base64.b64decode(hash_text)
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                            maxmem=256 * n * r + 2**20, dklen=len(expected))
    return hmac.compare_digest(digest, expected)


class PasswordHasher:
    """Hashes and verifies in a thread pool of its own, so logins never wait on the DB pool."""

    def __init__(self, n: int, reactor: Any, threads_max: int = 2) -> None:
        self.n = n
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=0, maxthreads=threads_max, name="password-hash")
        # A hash of a random password, verified against for unknown accounts so that
        # a wrong name costs as long as a wrong password. Made in the pool on first use:
        # one scrypt is tens of milliseconds, too long for the reactor thread.
        self._decoy: str | None = None

    def start(self) -> None:
        self._pool.start()
        self._pool.callInThread(self._make_decoy)

    def _make_decoy(self) -> str:
        decoy = self._decoy
        if decoy is None:
            decoy = self._decoy = hash_password_sync(os.urandom(16).hex(), self.n)
        return decoy

    def stop(self) -> None:
        self._pool.stop()

    def _verify_decoy(self, password: str) -> bool:
        """In a pool thread: check against the decoy (made at start, or here)."""
        return verify_password_sync(password, self._make_decoy())

    def hash(self, password: str) -> defer.Deferred[str]:
        return threads.deferToThreadPool(self._reactor, self._pool, hash_password_sync,
                                         password, self.n)

    def verify(self, password: str, stored: str | None) -> defer.Deferred[bool]:
        """Fires True when ``password`` matches; ``stored`` None checks against a decoy."""
        if stored is None:
            d = threads.deferToThreadPool(self._reactor, self._pool, self._verify_decoy,
                                          password)
            d.addCallback(lambda _: False)
            return d
        return threads.deferToThreadPool(self._reactor, self._pool, verify_password_sync,
                                         password, stored)
