"""Every failure turned into the typed error of its condition (`messenger.client.errors`).

This is the one place that reads JIM codes and the server's documented error texts
(docs/PROTOCOL.md), handshake refusals, socket errors and TLS errors, so that nothing
above the client core has to:

* `reply_error(action, reply)`: an error reply. The JIM code picks the class
  (`messenger.wire.errors.error_from_reply`); the action refines it where the code alone
  does not say what happened (a 403 to a login is a lock, to ``broadcast`` a premium
  rule); where even that is not enough (a 409 to ``register``: the name or the e-mail
  address?), the documented text decides.
* `connection_error(error)`: why a connection could not be made or ended.
* `describe(error)`: one line for people (a status bar, a log line).
"""

from __future__ import annotations

from typing import Any

from OpenSSL import SSL
from service_identity import CertificateError, VerificationError
from twisted.internet import error as net_error

from messenger.client import errors
from messenger.client.tls import TlsSettingsError, TlsVerificationError, describe_tls_failure
from messenger.wire import codes
from messenger.wire.errors import MessengerError, error_from_reply
from messenger.wire.handshake import HMAC_ERROR, HandshakeError

LOGINS = frozenset({"authenticate", "resume", "register"})

# (action or group, code) -> (text that must appear, or "" for any; class), first match.
_REFINED: dict[tuple[str, int], tuple[tuple[str, type[MessengerError]], ...]] = {
    ("set_password", codes.WRONG_CREDENTIALS): (("", errors.WrongPassword),),
    ("resume", codes.NOT_AUTHORISED): (("expired", errors.TokenExpired),
                                       ("", errors.TokenInvalid)),
    ("login", codes.FORBIDDEN): (("", errors.AccountLocked),),
    ("login", codes.CONFLICT): (("already connected", errors.AlreadyConnected),
                                ("account name", errors.NameTaken),
                                ("e-mail", errors.EmailTaken)),
    ("register", codes.BAD_REQUEST): (("premium code", errors.InvalidPremiumCode),),
    ("admin", codes.FORBIDDEN): (("", errors.AdminsOnly),),
    ("broadcast", codes.FORBIDDEN): (("", errors.PremiumOnly),),
    ("file_upload", codes.BAD_REQUEST): (("files of at most", errors.FileTooLarge),),
    ("file_upload", codes.FORBIDDEN): (("", errors.QuotaExceeded),),
    ("file_get", codes.FORBIDDEN): (("", errors.FileNotReadable),),
    ("file_finish", codes.BAD_REQUEST): (("sha-256", errors.FileChanged),),
    ("msg", codes.FORBIDDEN): (("has blocked you", errors.BlockedByUser),
                               ("cannot attach", errors.FileNotReadable)),
    ("call_dial", codes.FORBIDDEN): (("has blocked you", errors.BlockedByUser),),
}

_REJECTED = "Server rejected the connection: "


def _group(action: str) -> str:
    if action in LOGINS:
        return "login"
    return "admin" if action.startswith("admin_") else action


def reply_error(action: str, reply: dict[str, Any]) -> MessengerError:
    """The typed error an error reply to ``action`` stands for."""
    error = error_from_reply(reply)
    rules = _REFINED.get((action, error.code)) or _REFINED.get((_group(action), error.code))
    text = error.message.lower()
    for needle, cls in rules or ():
        if needle in text:
            return cls(error.message, **error.extra)
    if type(error) is MessengerError and error.code >= 500:
        return errors.ServerError(error.message, error.code, **error.extra)
    return error


def _handshake_error(error: HandshakeError) -> errors.HandshakeFailed:
    message, code = error.message, error.code
    if message.startswith(_REJECTED):
        text = message[len(_REJECTED):]
        if code == codes.TOO_MANY_REQUESTS:
            return errors.TooManyConnections(text, code, **error.extra)
        if text == HMAC_ERROR:
            return errors.HmacError(text, code)
        return errors.HandshakeFailed(text, code, **error.extra)
    if "failed the HMAC check" in message or "signature is invalid" in message:
        return errors.ServerNotAuthentic(message, code)
    if "protocol version" in message or "did not start with a challenge" in message:
        return errors.WrongProtocol(message, code)
    return errors.HandshakeFailed(message, code)


def connection_error(error: BaseException, connecting: bool = False) -> MessengerError:
    """The typed error for why a connection could not be made (``connecting``: the TCP
    connect itself failed) or why it ended."""
    if isinstance(error, (errors.ClientError, errors.PasswordNeeded)):
        return error
    if isinstance(error, HandshakeError):
        return _handshake_error(error)
    if isinstance(error, (TlsVerificationError, SSL.Error, VerificationError,
                          CertificateError)):
        return errors.TlsRefused(describe_tls_failure(error))
    if isinstance(error, TlsSettingsError):
        return errors.TlsSettingsInvalid(str(error))
    if isinstance(error, MessengerError):
        return error
    if isinstance(error, net_error.ConnectionRefusedError):
        return errors.ConnectionRefused(
            "connection refused (is the server running, and is this its port?)")
    if isinstance(error, net_error.DNSLookupError):
        return errors.HostNotFound("the server's host name could not be resolved")
    if isinstance(error, (net_error.TimeoutError, net_error.TCPTimedOutError, TimeoutError)):
        return errors.ConnectTimedOut("the connection timed out")
    if isinstance(error, (net_error.ConnectionDone, net_error.ConnectionLost)):
        return errors.ConnectionClosed("the server closed the connection")
    if connecting or isinstance(error, (net_error.ConnectError, OSError)):
        return errors.ServerUnreachable(_text(error))
    return errors.ConnectionFailed(_text(error))


def describe(error: BaseException) -> str:
    """One line for people about any failure."""
    if isinstance(error, MessengerError):
        return error.message
    return connection_error(error).message


def _text(error: BaseException) -> str:
    text = str(error).strip()
    return text or type(error).__name__
