"""Password hashing with scrypt and a random salt, off the reactor thread, in bounded queues.

Stored form: ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``, so the cost can be raised later
and old hashes still verify (`needs_rehash` tells a login to store a new one).

One scrypt costs about a tenth of a second of CPU, so hashing is the resource an attacker
goes for: logins for unknown names from many addresses, each within its own rate limit,
used to queue thousands of decoy hashes in front of every real login. The hasher now
keeps its own two bounded queues in front of a small thread pool:

* *urgent*: checking the password of an account that exists (a real user logging in);
* *new*: new hashes (registration, password change);
* *decoy*: the decoy check for a name that does not exist.

Jobs run in that order of queues. A full queue refuses at once (`QueueFull`: the handler
answers 503 or, for a decoy, simply "wrong credentials" without hashing), never after a
minute of silence; and a job whose connection has gone is dropped before it runs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, threads
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from messenger.server.background import in_background

R = 8
P = 1
SALT_SIZE = 16
HASH_SIZE = 32
MIN_N = 2**14               # the lowest cost an operator may configure (tap.py)
URGENT, NEW, DECOY = 0, 1, 2

Wanted = Callable[[], bool]


class QueueFull(Exception):
    """The hashing queue for this kind of job is full; ``retry_after`` seconds is a guess
    of when it will have room."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("password hashing queue full")
        self.retry_after = retry_after


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


def cost_of(stored: str) -> int:
    """The scrypt N of a stored hash (0 when it cannot be read)."""
    try:
        scheme, n_text, *_ = stored.split("$")
        return int(n_text) if scheme == "scrypt" else 0
    except ValueError:
        return 0


def _always() -> bool:
    return True


class PasswordHasher:
    """Hashes and verifies in a thread pool of its own, urgent jobs first, queues bounded."""

    def __init__(self, n: int, reactor: Any, threads_max: int = 2, capacity: int = 32,
                 decoy_capacity: int = 4) -> None:
        self.n = n
        self._reactor = reactor
        self._max = threads_max
        self._pool = ThreadPool(minthreads=0, maxthreads=threads_max, name="password-hash")
        self._queues: tuple[deque[Any], ...] = (deque(), deque(), deque())
        self._caps = (capacity, capacity, decoy_capacity)
        self._running = 0
        self.dropped = 0          # jobs whose connection went before they ran
        self.refused = 0          # jobs refused because their queue was full
        # A hash of a random password, verified against for unknown accounts so that
        # a wrong name costs as long as a wrong password. Made in the pool on first use.
        self._decoy: str | None = None

    def start(self) -> None:
        self._pool.start()
        self._pool.callInThread(self._make_decoy)

    def stop(self) -> None:
        for queue in self._queues:
            queue.clear()
        self._pool.stop()

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._queues)

    def needs_rehash(self, stored: str) -> bool:
        """True when ``stored`` was made with a lower cost than the configured one."""
        return 0 < cost_of(stored) < self.n

    def _make_decoy(self) -> str:
        decoy = self._decoy
        if decoy is None:
            decoy = self._decoy = hash_password_sync(os.urandom(16).hex(), self.n)
        return decoy

    def _verify_decoy(self, password: str) -> bool:
        """In a pool thread: check against the decoy (made at start, or here)."""
        verify_password_sync(password, self._make_decoy())
        return False

    def hash(self, password: str, wanted: Wanted = _always) -> defer.Deferred[str]:
        """A new stored hash (after the checks of existing accounts)."""
        return self._submit(NEW, wanted, hash_password_sync, password, self.n)

    def verify(self, password: str, stored: str | None,
               wanted: Wanted = _always) -> defer.Deferred[bool]:
        """Fires True when ``password`` matches; ``stored`` None checks against a decoy
        (last in line, in a small queue) and fires False. Fails with `QueueFull` when the queue is
        full, or `defer.CancelledError` when ``wanted()`` says no before it ran."""
        if stored is None:
            return self._submit(DECOY, wanted, self._verify_decoy, password)
        return self._submit(URGENT, wanted, verify_password_sync, password, stored)

    # -- the queues -------------------------------------------------------------------------

    def _submit(self, priority: int, wanted: Wanted, fn: Callable[..., Any],
                *args: Any) -> defer.Deferred[Any]:
        queue = self._queues[priority]
        if len(queue) >= self._caps[priority]:
            self.refused += 1
            return defer.fail(QueueFull(self._estimate(len(queue))))
        d: defer.Deferred[Any] = defer.Deferred()
        queue.append((wanted, fn, args, d))
        self._schedule()
        return d

    def _estimate(self, waiting: int) -> float:
        """Seconds until a queue of ``waiting`` jobs has room: about 0.1 s per scrypt."""
        return round(1.0 + 0.1 * waiting / self._max, 1)

    def _schedule(self) -> None:
        while self._running < self._max:
            job = self._next_job()
            if job is None:
                return
            _wanted, fn, args, d = job
            self._running += 1
            done = threads.deferToThreadPool(self._reactor, self._pool, in_background,
                                             fn, *args)
            done.addBoth(self._done, d)

    def _next_job(self) -> Any:
        for queue in self._queues:
            while queue:
                job = queue.popleft()
                if job[0]():
                    return job
                self.dropped += 1
                job[3].errback(defer.CancelledError("the connection went before its turn"))
        return None

    def _done(self, result: Any, d: defer.Deferred[Any]) -> None:
        self._running -= 1
        self._schedule()
        if isinstance(result, Failure):
            d.errback(result)
        else:
            d.callback(result)
