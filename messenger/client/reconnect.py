"""Staying connected, as decisions: the state table, the back-off policy, and what each
failure means.

Everything here is a pure function or a table; `messenger.client.core` does the I/O.
We keep our own small machine rather than `twisted.application.internet.ClientService`
because the decision after a failure depends on *what* failed, not only on how often:
a wrong shared secret or a changed server key must stop the retries, an expired token
must ask for a password, a 429 must wait at least ``retry_after``, and a 409 after a
reconnect (our own half-open session still holds the account) must be retried. The back-
off itself follows ``ClientService``'s ``backoffPolicy``: a pure function of the attempt.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from OpenSSL import SSL
from twisted.internet import error as net_error

from messenger.client.events import (
    CONNECTING,
    FAILED,
    HANDSHAKING,
    LOGGING_IN,
    LOGIN_REQUIRED,
    OFFLINE,
    ONLINE,
    RECONNECTING,
    SYNCING,
)
from messenger.client.tls import TlsSettingsError, TlsVerificationError, describe_tls_failure
from messenger.wire import codes
from messenger.wire.errors import MessengerError, TooManyRequests
from messenger.wire.handshake import HandshakeError, ServerKeyChanged

# Which state may follow which: every state has a way out (stop -> OFFLINE at least).
TRANSITIONS: dict[str, frozenset[str]] = {
    OFFLINE: frozenset({CONNECTING, LOGIN_REQUIRED}),
    CONNECTING: frozenset({HANDSHAKING, RECONNECTING, FAILED, OFFLINE}),
    HANDSHAKING: frozenset({LOGGING_IN, RECONNECTING, FAILED, OFFLINE}),
    LOGGING_IN: frozenset({SYNCING, RECONNECTING, FAILED, LOGIN_REQUIRED, OFFLINE}),
    SYNCING: frozenset({ONLINE, RECONNECTING, FAILED, OFFLINE}),
    ONLINE: frozenset({RECONNECTING, FAILED, OFFLINE}),
    RECONNECTING: frozenset({CONNECTING, OFFLINE}),
    LOGIN_REQUIRED: frozenset({CONNECTING, OFFLINE}),
    FAILED: frozenset({CONNECTING, OFFLINE, LOGIN_REQUIRED}),
}


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

# The JIM codes that, refusing a login, mean "ask the user" rather than "try again".
_LOGIN_CODES = frozenset({codes.NOT_AUTHORISED, codes.WRONG_CREDENTIALS})

@dataclass(frozen=True, slots=True)
class Verdict:
    action: str                  # RETRY, FAIL or LOGIN
    reason: str                  # one line for the user
    min_delay: float = 0.0       # RETRY: wait at least this long (429's retry_after)
    forget_token: bool = False   # LOGIN: the saved token is dead, delete it


def describe(error: BaseException) -> str:
    """One line for the user about a failure."""
    if isinstance(error, (TlsVerificationError, SSL.Error)):
        return describe_tls_failure(error)
    if isinstance(error, HandshakeError):
        prefix = "Server rejected the connection: "
        text = error.message
        return text[len(prefix):] if text.startswith(prefix) else text
    if isinstance(error, MessengerError):
        return error.message
    if isinstance(error, net_error.ConnectionRefusedError):
        return "connection refused (is the server running, and is this its port?)"
    if isinstance(error, (net_error.ConnectionDone, net_error.ConnectionLost)):
        return "the server closed the connection"
    if isinstance(error, (net_error.TimeoutError, TimeoutError)):
        return "the connection timed out"
    if isinstance(error, net_error.DNSLookupError):
        return "the server's host name could not be resolved"
    text = str(error).strip()
    return text or type(error).__name__


def judge(error: BaseException, *, during_login: bool, explicit: bool,
          resuming: bool) -> Verdict:
    """What to do after ``error`` ended a connection attempt or a session.

    ``during_login``: the login request itself was refused (not the connection);
    ``explicit``: the user is waiting on this attempt (a ``login``/``register`` call), so
    a refusal is reported rather than retried and no password is kept for a retry;
    ``resuming``: the login used a saved token.
    """
    reason = describe(error)
    if isinstance(error, ServerKeyChanged):
        return Verdict(FAIL, reason)
    if isinstance(error, HandshakeError):
        if error.code == codes.TOO_MANY_REQUESTS:
            return Verdict(FAIL if explicit else RETRY, reason, min_delay=5.0)
        return Verdict(FAIL, reason)   # wrong secret, bad signature, not a messenger/2 server
    if isinstance(error, (TlsVerificationError, SSL.Error, TlsSettingsError)):
        return Verdict(FAIL, reason)
    if during_login and isinstance(error, MessengerError):
        code = error.code
        if code in _LOGIN_CODES:
            return Verdict(LOGIN, reason, forget_token=resuming)
        if explicit:
            return Verdict(LOGIN, reason)      # locked, already connected, name taken, ...
        if code == codes.TOO_MANY_REQUESTS:
            retry = error.retry_after if isinstance(error, TooManyRequests) else 1.0
            return Verdict(RETRY, reason, min_delay=retry)
        if code == codes.CONFLICT:
            # After a reconnect our own half-open session may hold the account until the
            # server's probe drops it: try again.
            return Verdict(RETRY, reason, min_delay=1.0)
        if code >= 500:
            return Verdict(RETRY, reason)
        return Verdict(FAIL, reason)           # locked (403), bad request (400)
    # The connection could not be made or broke (refused, reset, timed out, a frame that
    # failed to open), or something unexpected: the user hears about it at once when
    # waiting on this attempt, otherwise the next attempt may well work.
    return Verdict(FAIL if explicit else RETRY, reason)
