"""Deliverers: hand one spooled mail to an SMTP relay, or put it into a Maildir.

A deliverer has one method, ``deliver(entry) -> Deferred``: it fires with None when the
mail has left our hands, or fails with a `DeliveryError` that says whether trying again
later makes sense (``permanent=False``) or not. Deciding that from a twisted.mail failure is
`classify_failure`, a pure function, so the policy is in one place and tested alone:

* permanent: the relay answered 5xx to the recipient (RCPT) or to the message (DATA);
* temporary: no connection, a timeout, a broken reply, any 4xx; and problems with *our*
  session rather than with this mail: STARTTLS required but not offered, a failed TLS
  handshake or certificate check, AUTH not offered or refused, the envelope sender refused.
  Those are fixed by fixing the relay or the configuration, after which the queued mail
  must still go out.

Error texts are built from the reply code and text only. twisted.mail's exceptions also
carry the SMTP session log, which holds the AUTH exchange (the password, base64-encoded):
it is never put into a message, a log line or a spool file.
"""

from __future__ import annotations

import os
import socket
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cryptography import x509
from OpenSSL import SSL, crypto
from service_identity import VerificationError
from twisted.internet import ssl
from twisted.internet.defer import Deferred, FirstError, gatherResults
from twisted.internet.threads import deferToThread
from twisted.mail import smtp
from twisted.python.failure import Failure

from messenger.server.config import MailConfig
from messenger.server.mail.spool import RunIO, SpoolEntry, make_private_dir, write_durably

if TYPE_CHECKING:
    from twisted.internet._sslverify import IOpenSSLTrustRoot

MAX_ERROR = 500     # characters of an error text kept in the spool and the log


class DeliveryError(Exception):
    """A delivery attempt failed; `permanent` says whether retrying is pointless."""

    def __init__(self, message: str, *, permanent: bool, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.code = code

    def __repr__(self) -> str:
        kind = "permanent" if self.permanent else "temporary"
        return f"DeliveryError({kind}, {self.message!r})"


class Deliverer(Protocol):
    description: str

    def deliver(self, entry: SpoolEntry) -> Deferred: ...


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return " / ".join(line.strip() for line in value.splitlines() if line.strip())


def _reply(code: int, resp: bytes | str | None) -> str:
    text = _text(resp)
    return f"{code} {text}" if code > 0 else text


# Failures of our session with the relay, not of this mail: retried (see module doc).
_SESSION_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (smtp.TLSRequiredError, "the relay does not offer STARTTLS, which is required"),
    (smtp.AUTHRequiredError, "the relay offers no AUTH mechanism we support"),
    (smtp.EHLORequiredError, "the relay does not speak ESMTP, needed for STARTTLS/AUTH"),
    (smtp.AUTHDeclinedError, "the relay refused our username/password"),
    (smtp.AuthenticationError, "authentication with the relay failed"),
    (smtp.TLSError, "STARTTLS with the relay failed"),
)


def classify_failure(exc: BaseException) -> DeliveryError:
    """Turn what an SMTP attempt failed with into a temporary or permanent DeliveryError."""
    if isinstance(exc, DeliveryError):
        return exc
    for kind, meaning in _SESSION_ERRORS:
        if isinstance(exc, kind):
            code, resp = getattr(exc, "code", -1), getattr(exc, "resp", b"")
            return DeliveryError(_cut(f"{meaning} ({_reply(code, resp)})"),
                                 permanent=False, code=code if code > 0 else None)
    if isinstance(exc, smtp.SMTPDeliveryError):
        return _classify_transaction(exc)
    if isinstance(exc, smtp.SMTPClientError):
        if isinstance(exc.__cause__, SSL.Error | VerificationError):
            return DeliveryError(
                _cut(f"the relay's TLS certificate was not accepted: {exc.__cause__!r}"),
                permanent=False)
        # Connection refused or lost, timeout, mangled reply, or an error greeting.
        code = exc.code
        return DeliveryError(_cut(f"relay unavailable: {_reply(code, exc.resp)}"),
                             permanent=False, code=code if code > 0 else None)
    return DeliveryError(_cut(f"relay unavailable: {type(exc).__name__}: {exc}"),
                         permanent=False)


def _classify_transaction(exc: smtp.SMTPDeliveryError) -> DeliveryError:
    code = exc.code
    addresses = list(exc.addresses or [])
    if not addresses:
        # Refused at MAIL FROM: our from_address (or missing AUTH), the same for every mail.
        return DeliveryError(_cut(f"relay refused the sender: {_reply(code, exc.resp)}"),
                             permanent=False, code=code)
    refused = [(address, rcode, rresp) for address, rcode, rresp in addresses
               if not 200 <= rcode < 300]
    if refused and len(refused) == len(addresses):
        address, rcode, rresp = refused[0]
        text = f"relay refused recipient {_text(address)}: {_reply(rcode, rresp)}"
        code = rcode
    else:
        text = f"relay refused the message: {_reply(code, exc.resp)}"
    return DeliveryError(_cut(text), permanent=500 <= code < 600, code=code)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_ERROR else text[:MAX_ERROR - 3] + "..."


class _SenderFactory(smtp.ESMTPSenderFactory):
    """ESMTPSenderFactory that also says when its connection is gone (`closed`).

    Not noisy: a factory's "Starting factory"/"Stopping factory" lines would add two log
    lines to every delivery attempt (the mailer logs one per attempt, no more).
    """

    noisy = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.closed: Deferred = Deferred()

    def clientConnectionFailed(self, connector, reason) -> None:
        super().clientConnectionFailed(connector, reason)
        self._fire_closed()

    def clientConnectionLost(self, connector, reason) -> None:
        super().clientConnectionLost(connector, reason)
        self._fire_closed()

    def _fire_closed(self) -> None:
        if not self.closed.called:
            self.closed.callback(None)


def load_trust_root(ca_file: str) -> IOpenSSLTrustRoot:
    """The certificates in PEM file `ca_file` as a trust root (blocking; read at start)."""
    certificates = x509.load_pem_x509_certificates(Path(ca_file).read_bytes())
    return ssl.trustRootFromCertificates(
        [ssl.Certificate(crypto.X509.from_cryptography(cert)) for cert in certificates])


class SMTPDeliverer:
    """Sends each mail through the configured relay with twisted.mail.smtp (ESMTP).

    One connection per mail: the Deferred fires after the relay accepted the message
    *and* the connection is closed, so a stopping service leaves no socket behind.
    STARTTLS (when required) verifies the relay's certificate for `relay_host` against
    `relay_ca_file`, or the system's trust store when that is empty.
    """

    description = "smtp"

    def __init__(self, config: MailConfig, reactor) -> None:
        self._reactor = reactor
        self._host = config.relay_host
        self._port = config.relay_port
        self._timeout = config.relay_timeout
        self._starttls = config.starttls
        self._username = config.username.encode("utf-8") if config.username else None
        self._password = config.password.encode("utf-8") if config.username else None
        self._tls = None
        if config.starttls:
            trust = (load_trust_root(config.relay_ca_file) if config.relay_ca_file
                     else ssl.platformTrust())
            self._tls = ssl.optionsForClientTLS(config.relay_host, trustRoot=trust)
        self.description = f"smtp://{config.relay_host}:{config.relay_port}"

    def deliver(self, entry: SpoolEntry) -> Deferred:
        result: Deferred = Deferred()
        factory = _SenderFactory(
            self._username, self._password, entry.sender, [entry.to],
            BytesIO(entry.message.encode("utf-8")), result,
            retries=0,                          # the mailer's back-off does the retrying
            timeout=self._timeout,
            contextFactory=self._tls,
            heloFallback=not (self._username or self._starttls),
            requireAuthentication=self._username is not None,
            requireTransportSecurity=self._starttls,
        )
        self._reactor.connectTCP(self._host, self._port, factory, timeout=self._timeout)
        done = gatherResults([result, factory.closed], consumeErrors=True)
        done.addCallbacks(lambda _: None, _unwrap_and_classify)
        return done


def _unwrap_and_classify(failure: Failure) -> Failure:
    if failure.check(FirstError):
        failure = failure.value.subFailure
    # A fresh exception with no cause: the twisted.mail one holds the session log.
    return Failure(classify_failure(failure.value))


def maildir_name(created: float, mail_id: str, hostname: str) -> str:
    """The file name of a mail in the Maildir: ``time.unique.host`` (unique: the mail id).

    Deterministic per mail, so delivering the same spool entry twice (a crash between
    writing the Maildir file and removing the spool file) finds the first copy.
    """
    host = hostname.replace("/", "\\057").replace(":", "\\072")
    return f"{int(created)}.{mail_id}.{host}"


def write_to_maildir(maildir: Path, name: str, data: bytes) -> Path:
    """Deliver `data` as message `name`: tmp/ first, then renamed into new/ (blocking).

    Does nothing if the message is already in new/ or cur/ (read messages get a
    ``:2,flags`` suffix there).
    """
    make_private_dir(maildir)
    for sub in ("tmp", "new", "cur"):
        make_private_dir(maildir / sub)
    final = maildir / "new" / name
    if final.exists() or any(existing == name or existing.startswith(name + ":")
                             for existing in os.listdir(maildir / "cur")):
        return final
    write_durably(final, data, temp_dir=maildir / "tmp", temp_name=name)
    return final


class MaildirDeliverer:
    """Delivers into a local Maildir (tmp/new/cur): the embedded default with no relay."""

    description = "maildir"

    def __init__(self, maildir: Path, run_io: RunIO | None = None,
                 hostname: str | None = None) -> None:
        self.path = Path(maildir)
        self._run_io: RunIO = run_io if run_io is not None else deferToThread
        self._hostname = hostname or socket.gethostname() or "localhost"

    def deliver(self, entry: SpoolEntry) -> Deferred:
        name = maildir_name(entry.created, entry.mail_id, self._hostname)
        envelope = f"Return-Path: <{entry.sender}>\nDelivered-To: {entry.to}\n"
        data = (envelope + entry.message).encode("utf-8")
        d = self._run_io(write_to_maildir, self.path, name, data)
        d.addCallbacks(lambda _: None, _maildir_failure)
        return d


def _maildir_failure(failure: Failure) -> Failure:
    if failure.check(OSError):
        return Failure(DeliveryError(_cut(f"cannot write to the Maildir: {failure.value}"),
                                     permanent=False))
    return failure


def make_deliverer(config: MailConfig, maildir: Path, reactor,
                   run_io: RunIO | None = None) -> Deliverer:
    """The SMTP deliverer when a relay is configured, else the Maildir one."""
    if config.relay_host:
        return SMTPDeliverer(config, reactor)
    return MaildirDeliverer(maildir, run_io)
