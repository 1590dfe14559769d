"""Staying connected, as decisions: the back-off policy, and what each failure means.

Everything here is a pure function; `messenger.client.service` does the I/O. We keep our
own small machine rather than `twisted.application.internet.ClientService` because the
decision after a failure depends on *what* failed, not only on how often: a wrong shared
secret or a changed server key must stop the retries, an expired token must ask for a
password, a 429 must wait at least ``retry_after``, a 409 after a reconnect (our own
half-open session still holds the account) must be retried, and a refused connection
(the host is up, the server is not) is retried at least every second, so that the
client is back within a second of the server. The back-off itself follows
``ClientService``'s ``backoffPolicy``: a pure function of the attempt.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from messenger.client import errors
from messenger.wire.errors import MessengerError

# -- back-off -----------------------------------------------------------------------------

def backoff_delay(attempt: int, initial: float = 0.5, maximum: float = 30.0,
                  factor: float = 2.0, jitter: float = 0.5,
                  random_value: float = 0.0) -> float:
    """The delay before reconnect attempt number ``attempt`` (0 for the first retry).

    Exponential from ``initial`` by ``factor`` up to ``maximum``; then "equal jitter": a
    random share of up to ``jitter`` of that delay is taken off, so that a crowd of clients
    dropped by one server restart does not come back in step. ``random_value`` is in
    [0, 1).
    """
    try:
        base = min(initial * factor ** min(attempt, 64), maximum)
    except OverflowError:
        base = maximum
    return base * (1.0 - jitter * random_value)


BackoffPolicy = Callable[[int], float]


def backoff_policy(initial: float = 0.5, maximum: float = 30.0, factor: float = 2.0,
                   jitter: float = 0.5,
                   random_source: Callable[[], float] = random.random) -> BackoffPolicy:
    """A ``policy(attempt) -> seconds`` for `MessengerClient` (like ``backoffPolicy``)."""
    if initial <= 0 or maximum < initial or factor < 1 or not 0 <= jitter < 1:
        raise ValueError("need 0 < initial <= maximum, factor >= 1, 0 <= jitter < 1")

    def policy(attempt: int) -> float:
        return backoff_delay(attempt, initial, maximum, factor, jitter, random_source())
    return policy


# -- what a failure means -----------------------------------------------------------------

RETRY = "retry"            # transient: reconnect after a back-off
FAIL = "fail"              # permanent until the user changes something: stop retrying
LOGIN = "login"            # the login itself was refused: a password login is needed

REFUSED_RETRY = 1.0        # a refused connection is tried again at least this often


@dataclass(frozen=True, slots=True)
class Verdict:
    action: str                  # RETRY, FAIL or LOGIN
    min_delay: float = 0.0       # RETRY: wait at least this long (429's retry_after)
    max_delay: float | None = None  # RETRY: and at most this long (a refused connection)
    forget_token: bool = False   # LOGIN: the saved token is dead, delete it

    def delay(self, backoff: float) -> float:
        """The wait before the next attempt, given the back-off policy's ``backoff``."""
        delay = max(backoff, self.min_delay)
        return min(delay, self.max_delay) if self.max_delay is not None else delay


def _retry_after(error: BaseException, default: float) -> float:
    retry = getattr(error, "retry_after", None)
    return float(retry) if isinstance(retry, (int, float)) else default


def judge(error: MessengerError, *, during_login: bool, explicit: bool) -> Verdict:
    """What to do after ``error`` (a typed error, `messenger.client.failures`) ended a
    connection attempt or a session.

    ``during_login``: the login request itself was refused (not the connection);
    ``explicit``: the user is waiting on this attempt (a ``login``/``register`` call), so
    a refusal is reported rather than retried and no password is kept for a retry.
    """
    if isinstance(error, errors.TooManyConnections):
        return Verdict(FAIL if explicit else RETRY, min_delay=_retry_after(error, 5.0))
    if isinstance(error, (errors.HandshakeFailed, errors.TlsRefused,
                          errors.TlsSettingsInvalid)):
        return Verdict(FAIL)    # wrong secret, key changed, not a messenger/2 server, TLS
    if during_login:
        return _judge_login(error, explicit)
    if explicit:
        return Verdict(FAIL)    # the user hears about it at once
    if isinstance(error, errors.ConnectionRefused):
        return Verdict(RETRY, max_delay=REFUSED_RETRY)
    # The connection could not be made or broke (timed out, reset, silent, a frame that
    # failed to open), or something unexpected: the next attempt may well work.
    return Verdict(RETRY)


def _judge_login(error: MessengerError, explicit: bool) -> Verdict:
    if isinstance(error, (errors.PasswordNeeded, errors.WrongCredentials)):
        return Verdict(LOGIN, forget_token=isinstance(error, errors.PasswordNeeded))
    if explicit:
        return Verdict(LOGIN)   # locked, already connected, name taken, ...
    if isinstance(error, errors.TooManyRequests):
        return Verdict(RETRY, min_delay=_retry_after(error, 1.0))
    if isinstance(error, errors.AlreadyConnected):
        # After a reconnect our own half-open session may hold the account until the
        # server's probe drops it: try again.
        return Verdict(RETRY, min_delay=1.0)
    if isinstance(error, errors.ServiceUnavailable):
        return Verdict(RETRY, min_delay=_retry_after(error, 0.0))
    if error.code >= 500:
        return Verdict(RETRY)
    return Verdict(FAIL)        # locked (403), bad request (400), a broken reply
