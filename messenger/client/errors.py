"""Errors the client core raises on its own, beside those a server reply carries.

A refusal from the server arrives as the `MessengerError` subclass of its JIM code
(`messenger.wire.errors.error_from_reply`), a failed handshake as `HandshakeError` or
`ServerKeyChanged`. The classes here are for what happens on this side: no connection, a
login that needs a password, a server that broke the protocol. They subclass
`MessengerError` too, so a front end can catch one base class; their ``code`` is the JIM
code that fits best, or 0 when the failure is purely local.
"""

from __future__ import annotations

from messenger.wire import codes
from messenger.wire.errors import MessengerError, NotAuthorised

LOCAL = 0  # no JIM code: the failure happened on this side


class ClientError(MessengerError):
    """A failure of the client side (no server reply involved)."""

    code = LOCAL


class NotConnected(ClientError):
    """The request cannot be sent, or its reply cannot come: there is no live session."""


class ConnectionFailed(ClientError):
    """The server could not be reached or the connection broke before a session began."""


class ProtocolViolation(ClientError):
    """The server sent something this client cannot accept (a frame that fails to open,
    an oversized frame); the connection is dropped and made again."""


class PasswordNeeded(NotAuthorised):
    """There is no usable resume token (none saved, expired or revoked): log in with the
    password. ``message`` is the server's reason when it gave one."""

    code = codes.NOT_AUTHORISED
