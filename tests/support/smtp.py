"""A real SMTP relay from twisted.mail on loopback, for the mail tests.

    relay = SMTPRelay()                      # or SMTPRelay(port=p) to come back on a port
    port = yield relay.start()
    ...
    mails = yield relay.wait_for(1, timeout=10)
    yield relay.stop()

It accepts every recipient (or answers `reject=(code, text)` to each RCPT) and keeps what it
receives in `received`: envelope sender and recipients, the parsed `EmailMessage`, the raw
bytes, whether the session was inside STARTTLS, and who authenticated.

Options: ``tls=(cert_pem, key_pem)`` offers STARTTLS with that certificate (see
`make_certificate`); ``users={"name": "password"}`` offers AUTH (LOGIN and PLAIN, or the
`mechanisms` given) against an in-memory twisted.cred checker and then refuses
unauthenticated senders, as a real submission relay does.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer, ssl
from twisted.internet.interfaces import ISSLTransport
from twisted.mail import smtp
from twisted.mail.imap4 import PLAINCredentials
from zope.interface import implementer


def make_certificate(host: str = "127.0.0.1",
                     common_name: str | None = None) -> tuple[bytes, bytes]:
    """A fresh self-signed (cert_pem, key_pem) for `host` (an IP address or a DNS name).

    The subject is `common_name` (default: `host`); certificates that should be told apart
    in one trust store need different subjects.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name or host)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_to: list[str]
    message: EmailMessage
    raw: bytes
    tls: bool
    username: str | None

    @property
    def body(self) -> str:
        return self.message.get_content()


@dataclass
class _Waiter:
    count: int
    deferred: defer.Deferred = field(default_factory=defer.Deferred)


class _Message:
    """IMessage: collects the lines of one message, hands it to the relay at the end."""

    def __init__(self, relay: SMTPRelay, user: smtp.User, username: str | None) -> None:
        self._relay = relay
        self._user = user
        self._username = username
        self._lines: list[bytes] = []

    def lineReceived(self, line: bytes) -> None:
        self._lines.append(line)

    def eomReceived(self) -> defer.Deferred:
        raw = b"\n".join(self._lines) + b"\n"
        protocol = self._user.protocol
        self._relay._record(ReceivedMail(
            mail_from=str(self._user.orig),
            rcpt_to=[str(self._user.dest)],
            message=BytesParser(policy=policy.default).parsebytes(raw),
            raw=raw,
            tls=bool(protocol.startedTLS) and ISSLTransport.providedBy(protocol.transport),
            username=self._username,
        ))
        return defer.succeed(None)

    def connectionLost(self) -> None:
        self._lines = []


@implementer(smtp.IMessageDelivery)
class _Delivery:
    def __init__(self, relay: SMTPRelay, username: str | None) -> None:
        self._relay = relay
        self._username = username

    def receivedHeader(self, helo, origin, recipients):
        return None

    def validateFrom(self, helo, origin):
        return origin

    def validateTo(self, user):
        if self._relay.reject is not None:
            code, text = self._relay.reject
            raise smtp.SMTPBadRcpt(user.dest, code, text)
        return lambda: _Message(self._relay, user, self._username)


@implementer(IRealm)
class _Realm:
    def __init__(self, relay: SMTPRelay) -> None:
        self._relay = relay

    def requestAvatar(self, avatarId, mind, *interfaces):
        if smtp.IMessageDelivery in interfaces:
            name = avatarId.decode() if isinstance(avatarId, bytes) else avatarId
            return smtp.IMessageDelivery, _Delivery(self._relay, name), lambda: None
        raise NotImplementedError(interfaces)


class _RelayProtocol(smtp.ESMTP):
    relay: SMTPRelay

    def connectionMade(self) -> None:
        self.relay._connected(self)
        super().connectionMade()

    def connectionLost(self, reason) -> None:
        super().connectionLost(reason)
        self.relay._disconnected(self)


class _RelayFactory(smtp.SMTPFactory):
    def __init__(self, relay: SMTPRelay) -> None:
        super().__init__(relay._portal)
        self.relay = relay
        self.domain = b"relay.test"

    def buildProtocol(self, addr):
        relay = self.relay
        protocol = _RelayProtocol(chal=dict(relay._challengers),
                                  contextFactory=relay._tls_options)
        protocol.factory = self
        protocol.relay = relay
        protocol.portal = self.portal
        protocol.host = self.domain
        if self.portal is None:
            protocol.delivery = _Delivery(relay, None)
        return protocol


class SMTPRelay:
    """An ESMTP server on 127.0.0.1 that keeps every message it accepts."""

    def __init__(self, *, port: int = 0, tls: tuple[bytes, bytes] | None = None,
                 users: dict[str, str] | None = None,
                 mechanisms: tuple[bytes, ...] = (b"LOGIN", b"PLAIN"),
                 reject: tuple[int, str] | None = None, reactor=None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self._reactor = reactor
        self.port = port
        self.reject = reject
        self.received: list[ReceivedMail] = []
        self.connections = 0
        self._listening = None
        self._open: dict[_RelayProtocol, defer.Deferred] = {}
        self._waiters: list[_Waiter] = []
        self._tls_options = None
        if tls is not None:
            cert_pem, key_pem = tls
            self._tls_options = ssl.PrivateCertificate.loadPEM(cert_pem + key_pem).options()
        self._portal = None
        self._challengers: dict[bytes, type] = {}
        if users:
            checker = InMemoryUsernamePasswordDatabaseDontUse()
            for name, password in users.items():
                checker.addUser(name.encode(), password.encode())
            self._portal = Portal(_Realm(self), [checker])
            known = {b"LOGIN": smtp.LOGINCredentials, b"PLAIN": PLAINCredentials}
            self._challengers = {name: known[name] for name in mechanisms}

    def start(self) -> defer.Deferred:
        """Listen on 127.0.0.1; fires with the port number."""
        self._listening = self._reactor.listenTCP(self.port, _RelayFactory(self),
                                                  interface="127.0.0.1")
        self.port = self._listening.getHost().port
        return defer.succeed(self.port)

    def stop(self) -> defer.Deferred:
        """Stop listening and close every open session; fires when all are gone."""
        waiting = [d for d in self._open.values()]
        for protocol in list(self._open):
            protocol.transport.loseConnection()
        if self._listening is not None:
            waiting.append(defer.maybeDeferred(self._listening.stopListening))
            self._listening = None
        return defer.gatherResults(waiting).addCallback(lambda _: None)

    def wait_for(self, count: int, timeout: float = 10.0) -> defer.Deferred:
        """Fires with `received` once it holds `count` mails; TimeoutError after `timeout`."""
        waiter = _Waiter(count)
        self._waiters.append(waiter)
        self._check_waiters()
        if not waiter.deferred.called:
            waiter.deferred.addTimeout(timeout, self._reactor)
        return waiter.deferred

    def _record(self, mail: ReceivedMail) -> None:
        self.received.append(mail)
        self._check_waiters()

    def _check_waiters(self) -> None:
        for waiter in list(self._waiters):
            if len(self.received) >= waiter.count:
                self._waiters.remove(waiter)
                if not waiter.deferred.called:
                    waiter.deferred.callback(list(self.received))

    def _connected(self, protocol: _RelayProtocol) -> None:
        self.connections += 1
        self._open[protocol] = defer.Deferred()

    def _disconnected(self, protocol: _RelayProtocol) -> None:
        d = self._open.pop(protocol, None)
        if d is not None:
            d.callback(None)
