"""Everything the client core fails with: one exception class per condition a front end
may act on.

Front ends (the desktop UI, messenger-cli, scripts) catch these classes and never look at
JIM codes or error texts: `messenger.client.failures` has already turned every failure
(a reply, a handshake refusal, a socket error, a TLS refusal) into one of them. All are
`MessengerError` subclasses, so ``message`` is always a readable line; classes are
re-exported here so that a front end imports errors from this module only.

Refusals in a server reply keep the class of their JIM code (`NotFound`, `Forbidden`,
`Conflict`, `TooManyRequests` with ``retry_after``, ...); where the code alone does not
say what happened, a subclass does (`AccountLocked`, `AlreadyConnected`, `NameTaken`).
Failures on this side derive from `ClientError`; those of reaching the server from
`ConnectionFailed`, and those that say nothing about the user's credentials (the server
was down, or went away) from `ServerUnreachable`, so a login form may keep its password.
"""

from __future__ import annotations

from typing import Any

from messenger.wire import codes
from messenger.wire.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    MessengerError,
    NotAuthorised,
    NotFound,
    ServerError,
    ServiceUnavailable,
    TooManyRequests,
    WrongCredentials,
)

__all__ = [
    "AccountLocked", "AdminsOnly", "AlreadyConnected", "AlreadyLoggedIn", "BadRequest",
    "BlockedByUser",
    "ClientError", "ConfigDirUnusable", "ConnectTimedOut", "Conflict", "ConnectionClosed",
    "ConnectionFailed", "ConnectionRefused", "DownloadCorrupt", "EmailTaken", "FileChanged",
    "FileNotReadable", "FileTooLarge", "Forbidden", "Gone", "LocalFileError",
    "QuotaExceeded", "TransferCancelled",
    "HandshakeFailed", "HmacError", "HostNotFound", "InvalidPremiumCode", "LoginInProgress",
    "MessageTooLong", "MessengerError", "NameTaken", "NoResponse", "NoSavedLogin",
    "NotAuthorised", "NotConnected", "NotFound", "PasswordNeeded", "PremiumOnly",
    "ProtocolViolation", "RequestTooLarge", "ServerError", "ServerKeyChanged",
    "ServerNotAuthentic", "ServerUnreachable", "ServiceUnavailable", "TlsRefused",
    "TlsSettingsInvalid", "TokenExpired", "TokenInvalid", "TooManyConnections",
    "TooManyPending", "TooManyRequests", "WrongCredentials", "WrongPassword",
    "WrongProtocol",
]

LOCAL = 0  # no JIM code: the failure happened on this side


# -- refusals in a server reply -----------------------------------------------------------

class WrongPassword(WrongCredentials):
    """``set_password``: the current password given is wrong."""


class AccountLocked(Forbidden):
    """A login refused because the account is locked; ``locked_until`` is the end of a
    timed lock (Unix seconds), None for a lock only an administrator lifts."""

    @property
    def locked_until(self) -> float | None:
        until = self.extra.get("locked_until")
        return float(until) if isinstance(until, (int, float)) else None


class AdminsOnly(Forbidden):
    """An ``admin_*`` action by an account that is not an administrator."""


class PremiumOnly(Forbidden):
    """A broadcast by an account that is neither premium nor an administrator."""


class BlockedByUser(Forbidden):
    """``msg`` or ``call_dial`` to someone who blocked the sender: refused for good."""


class AlreadyConnected(Conflict):
    """The account has a live session elsewhere (one session per account)."""


class NameTaken(Conflict):
    """Registering: the account name is taken."""


class EmailTaken(Conflict):
    """Registering: the e-mail address already has an account."""


class InvalidPremiumCode(BadRequest):
    """Registering: the premium code is not valid or was used already."""


class FileTooLarge(BadRequest):
    """An upload larger than the server accepts; ``max_size`` is its limit in bytes."""

    @property
    def max_size(self) -> int | None:
        size = self.extra.get("max_size")
        return size if type(size) is int else None


class QuotaExceeded(Forbidden):
    """An upload that does not fit the user's storage quota; ``quota`` and ``used`` say
    how much there is (bytes)."""


class FileNotReadable(Forbidden):
    """The file may not be downloaded (or attached) by this user, or does not exist:
    the server does not say which."""


class FileChanged(BadRequest):
    """The uploaded content does not match the SHA-256 computed at the start: the local
    file changed while it was being sent. Nothing was stored."""


class PasswordNeeded(NotAuthorised):
    """There is no usable resume token: log in with the password."""

    code = codes.NOT_AUTHORISED


class NoSavedLogin(PasswordNeeded):
    """Nothing is saved for this server (or this account): a first login."""


class TokenExpired(PasswordNeeded):
    """The saved login has expired."""


class TokenInvalid(PasswordNeeded):
    """The server no longer knows the saved login (revoked, or the account is gone)."""


# -- failures on this side ----------------------------------------------------------------

class ClientError(MessengerError):
    """A failure of the client side (no server reply involved)."""

    code = LOCAL


class NotConnected(ClientError):
    """The request cannot be sent, or its reply cannot come: there is no live session."""


class AlreadyLoggedIn(NotConnected):
    """``login``/``register`` while a session is up: stop or log out first."""


class LoginInProgress(NotConnected):
    """``login``/``register`` while another attempt is under way."""


class MessageTooLong(ClientError):
    """A message larger than the server accepts (its ``max_body``); nothing was sent."""

    code = codes.BAD_REQUEST

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the message is {size} bytes; the server accepts at most {limit}")
        self.size = size
        self.limit = limit


class RequestTooLarge(ClientError):
    """A request whose frame would exceed the server's ``max_frame``; nothing was sent
    (the server would close the connection)."""

    code = codes.BAD_REQUEST


class TooManyPending(ClientError):
    """Too many requests are waiting for the server's answer; nothing was sent."""


class ProtocolViolation(ClientError):
    """The server sent something this client cannot accept (an oversized frame, one that
    fails to open, a reply without its fields); the connection is dropped and made again."""


class TransferCancelled(ClientError):
    """The transfer was cancelled (``MessengerClient.cancel_transfer``)."""


class LocalFileError(ClientError):
    """A local file could not be read or written (the message says which and why)."""


class DownloadCorrupt(ClientError):
    """The downloaded bytes do not have the file's SHA-256; the partial file was removed."""


class ConfigDirUnusable(ClientError):
    """The config dir (client key, saved logins, pinned keys) cannot be read or written."""


# -- reaching the server ------------------------------------------------------------------

class ConnectionFailed(ClientError):
    """The server could not be reached, or the connection broke before a session began."""


class ServerUnreachable(ConnectionFailed):
    """The server could not be reached, or went away before it answered: nothing was
    judged (the credentials may well be right) and a later attempt may work."""


class ConnectionRefused(ServerUnreachable):
    """Nothing listens at the address (the host answered at once): when the server comes
    back, the next attempt notices within a second."""


class HostNotFound(ServerUnreachable):
    """The server's host name does not resolve."""


class ConnectTimedOut(ServerUnreachable):
    """No answer from the address in time (a host down or a filtered port)."""


class ConnectionClosed(ServerUnreachable):
    """The server closed or reset the connection."""


class NoResponse(ServerUnreachable):
    """Nothing came from the server for too long (a dead connection or a stuck server)."""


class HandshakeFailed(ConnectionFailed):
    """The HMAC challenge or the key exchange failed; retrying will not help."""

    def __init__(self, message: str, code: int = codes.BAD_REQUEST, /,
                 **extra: Any) -> None:
        super().__init__(message, code, **extra)


class HmacError(HandshakeFailed):
    """The server refused this client's shared secret ("hmac error")."""


class ServerNotAuthentic(HandshakeFailed):
    """The server failed the shared-secret check or signed the handshake wrongly: it may
    not be the Messenger server it claims to be."""


class WrongProtocol(HandshakeFailed):
    """What answers at the address does not speak this protocol (or its version)."""


class TooManyConnections(HandshakeFailed):
    """The server refused the connection for the rate of connections from this address;
    ``retry_after`` seconds when it said."""

    @property
    def retry_after(self) -> float | None:
        retry = self.extra.get("retry_after")
        return float(retry) if isinstance(retry, (int, float)) else None


class ServerKeyChanged(HandshakeFailed):
    """The server presented a key other than the one pinned for its address."""

    def __init__(self, address: str, pinned: str, presented: str,
                 known_servers: str) -> None:
        super().__init__(
            f"server key changed: {address} presented {presented} but {pinned} is pinned in"
            f" {known_servers}. If the server's key was replaced on purpose, remove that line"
            " (or run with --accept-new-key) to trust the new key.", codes.FORBIDDEN)
        self.address = address
        self.pinned = pinned
        self.presented = presented
        self.known_servers = known_servers


class TlsRefused(ConnectionFailed):
    """TLS failed: the certificate was refused, or the server does not speak TLS there.
    ``message`` is a sentence naming the reason."""


class TlsSettingsInvalid(ConnectionFailed):
    """The client's TLS settings cannot be used (a missing trust file, ...)."""
