"""Tests for the TLS listener's options (messenger.server.tls) and the client's trust
modes and failure messages (messenger.client.tls), over real TLS on loopback."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet import defer, error, reactor
from twisted.internet.endpoints import SSL4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import (
    IHandshakeListener,
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface import implementer

from messenger.admin.certs import fingerprint_file, generate_self_signed
from messenger.client.tls import (
    CertificateNotTrusted,
    HostnameMismatch,
    PinnedCertificateMismatch,
    TlsSettingsError,
    client_tls_options,
    describe_tls_failure,
)
from messenger.server.tls import TlsConfigError, server_tls_options

PAYLOAD = b"hello over tls"


class Certs:
    """Self-signed certificates made with certs.generate_self_signed under one folder."""

    def __init__(self, base: Path) -> None:
        self.base = base

    def make(self, name: str, host: str = "localhost", **kwargs) -> tuple[Path, Path]:
        cert, key = self.base / f"{name}.crt", self.base / f"{name}.key"
        generate_self_signed(host, cert, key, **kwargs)
        return cert, key


def make_ca_and_leaf(base: Path, host: str) -> tuple[Path, Path, Path]:
    """A CA certificate and a server certificate for ``host`` issued by it: (ca, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = base / "ca.crt", base / "leaf.crt", base / "leaf.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(paths[2], 0o600)
    return paths


class EchoServer(Protocol):
    def __init__(self) -> None:
        self.lost: defer.Deferred[None] = defer.Deferred()
        self.reason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)

    def connectionLost(self, reason: Failure) -> None:
        self.reason = reason
        self.lost.callback(None)


class EchoFactory(Factory):
    def __init__(self) -> None:
        self.connections: list[EchoServer] = []

    def buildProtocol(self, addr: object) -> EchoServer:
        protocol = EchoServer()
        protocol.factory = self
        self.connections.append(protocol)
        return protocol


class NotTlsServer(Protocol):
    """A plain-TCP server that greets with a length-prefixed JIM challenge frame."""

    def connectionMade(self) -> None:
        self.transport.write(b'\x00\x00\x00\x33{"action": "challenge", "version": 1, '
                             b'"nonce": "AA=="}')


@implementer(IHandshakeListener)
class EchoClient(Protocol):
    def __init__(self) -> None:
        self.handshake: defer.Deferred[None] = defer.Deferred()
        self.echoed: defer.Deferred[bytes] = defer.Deferred()
        self.lost: defer.Deferred[None] = defer.Deferred()
        self.reason: Failure | None = None
        self.received = b""

    def connectionMade(self) -> None:
        self.transport.write(PAYLOAD)       # buffered by TLS until the handshake is done

    def handshakeCompleted(self) -> None:
        self.handshake.callback(None)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if self.received == PAYLOAD:
            self.echoed.callback(self.received)

    def connectionLost(self, reason: Failure) -> None:
        self.reason = reason
        self.lost.callback(None)


@implementer(IOpenSSLClientConnectionCreator)
class RawClientTLS:
    """A bare pyOpenSSL client limited to the given TLS versions, verifying nothing."""

    def __init__(self, lowest: int, highest: int) -> None:
        self.context = SSL.Context(SSL.TLS_METHOD)
        self.context.set_min_proto_version(lowest)
        self.context.set_max_proto_version(highest)
        self.context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")

    def clientConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        connection = SSL.Connection(self.context, None)
        connection.set_app_data(tlsProtocol)
        return connection


class ServerTlsOptionsTests(unittest.TestCase):
    def setUp(self) -> None:
        self.base = Path(self.mktemp())
        self.base.mkdir()
        self.certs = Certs(self.base)
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def messages(self) -> list[str]:
        return [formatEvent(event) for event in self.events]

    def test_builds_server_connection_creator(self) -> None:
        """A matching certificate and key give an IOpenSSLServerConnectionCreator."""
        cert, key = self.certs.make("server")
        options = server_tls_options(cert, key)
        self.assertTrue(IOpenSSLServerConnectionCreator.providedBy(options))
        self.assertIsInstance(options.getContext(), SSL.Context)

    def test_missing_certificate(self) -> None:
        """A missing certificate file is named, with how to make one."""
        _, key = self.certs.make("server")
        missing = self.base / "nope.crt"
        exc = self.assertRaises(TlsConfigError, server_tls_options, missing, key)
        self.assertIn(str(missing), str(exc))
        self.assertIn("does not exist", str(exc))
        self.assertIn("messenger-admin gen-cert", str(exc))

    def test_missing_key(self) -> None:
        """A missing key file is named."""
        cert, _ = self.certs.make("server")
        exc = self.assertRaises(TlsConfigError, server_tls_options, cert, self.base / "k")
        self.assertIn("TLS key file", str(exc))
        self.assertIn("does not exist", str(exc))

    def test_certificate_file_without_certificate(self) -> None:
        """A file holding no PEM certificate is reported as such."""
        _, key = self.certs.make("server")
        junk = self.base / "junk.crt"
        junk.write_text("not a certificate\n")
        exc = self.assertRaises(TlsConfigError, server_tls_options, junk, key)
        self.assertIn("holds no PEM certificate", str(exc))
        exc = self.assertRaises(TlsConfigError, server_tls_options, key, key)
        self.assertIn("holds no PEM certificate", str(exc))

    def test_key_file_without_key(self) -> None:
        """Giving the certificate as the key is reported as no private key."""
        cert, _ = self.certs.make("server")
        exc = self.assertRaises(TlsConfigError, server_tls_options, cert, cert)
        self.assertIn("holds no PEM private key", str(exc))

    def test_mismatched_key(self) -> None:
        """The key of another certificate is refused with a clear message."""
        cert, _ = self.certs.make("server")
        _, other_key = self.certs.make("other")
        exc = self.assertRaises(TlsConfigError, server_tls_options, cert, other_key)
        self.assertIn("does not belong to the certificate", str(exc))
        self.assertIn(str(other_key), str(exc))

    def test_encrypted_key(self) -> None:
        """A passphrase-protected key is refused, saying so."""
        cert, key = self.certs.make("server")
        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
        key.write_bytes(private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret")))
        exc = self.assertRaises(TlsConfigError, server_tls_options, cert, key)
        self.assertIn("passphrase", str(exc))

    def test_readable_key_warns(self) -> None:
        """A key readable by other users is used, with a warning to chmod it."""
        cert, key = self.certs.make("server")
        os.chmod(key, 0o644)
        server_tls_options(cert, key)
        self.assertTrue(any("can be read by other users" in m for m in self.messages()))

    def test_private_key_does_not_warn(self) -> None:
        """A 0600 key and a valid certificate produce no warning."""
        cert, key = self.certs.make("server")
        server_tls_options(cert, key)
        self.assertEqual(self.messages(), [])

    def test_expired_certificate_warns(self) -> None:
        """An expired certificate is served but logged as one clients will refuse."""
        past = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
        cert, key = self.certs.make("old", days=1, now=past)
        server_tls_options(cert, key)
        self.assertTrue(any("expired" in m for m in self.messages()))


class ClientTlsSettingsTests(unittest.TestCase):
    def setUp(self) -> None:
        self.base = Path(self.mktemp())
        self.base.mkdir()
        self.certs = Certs(self.base)

    def test_modes_give_connection_creators(self) -> None:
        """CA file, pinned certificate and platform trust all give client creators."""
        cert, _ = self.certs.make("server")
        for options in (client_tls_options("localhost", ca_file=str(cert)),
                        client_tls_options("localhost", pinned_cert=str(cert)),
                        client_tls_options("localhost")):
            self.assertTrue(IOpenSSLClientConnectionCreator.providedBy(options))

    def test_ca_file_and_pin_are_exclusive(self) -> None:
        """Giving both a CA file and a pinned certificate is refused."""
        cert, _ = self.certs.make("server")
        self.assertRaises(TlsSettingsError, client_tls_options, "localhost", str(cert),
                          str(cert))

    def test_missing_trust_file(self) -> None:
        """A missing CA file is named in the error."""
        exc = self.assertRaises(TlsSettingsError, client_tls_options, "localhost",
                                ca_file=str(self.base / "ca.pem"))
        self.assertIn("does not exist", str(exc))

    def test_trust_file_without_certificate(self) -> None:
        """A pinned file that holds no certificate (here: a key) is refused."""
        _, key = self.certs.make("server")
        exc = self.assertRaises(TlsSettingsError, client_tls_options, "localhost",
                                pinned_cert=str(key))
        self.assertIn("holds no PEM certificate", str(exc))

    def test_pin_must_be_one_certificate(self) -> None:
        """A pinned file with two certificates is refused: a pin is exactly one."""
        first, _ = self.certs.make("one")
        second, _ = self.certs.make("two")
        both = self.base / "both.pem"
        both.write_bytes(first.read_bytes() + second.read_bytes())
        exc = self.assertRaises(TlsSettingsError, client_tls_options, "localhost",
                                pinned_cert=str(both))
        self.assertIn("exactly", str(exc))
        self.assertTrue(IOpenSSLClientConnectionCreator.providedBy(
            client_tls_options("localhost", ca_file=str(both))))

    def test_bad_host(self) -> None:
        """An empty or invalid host name is refused up front."""
        self.assertRaises(TlsSettingsError, client_tls_options, "")
        for host in ("bad\u0000name.example", "a..b", "bad host", "-x.example"):
            self.assertRaises(TlsSettingsError, client_tls_options, host)
        self.assertTrue(IOpenSSLClientConnectionCreator.providedBy(
            client_tls_options("bücher.example.")))


class DescribeTlsFailureTests(unittest.TestCase):
    def test_openssl_errors(self) -> None:
        """OpenSSL reason strings become sentences naming the likely cause."""
        cases = {
            "wrong version number": "did not answer with TLS",
            "tlsv1 alert protocol version": "no TLS version in common",
            "unsupported protocol": "no TLS version in common",
            "sslv3 alert handshake failure": "could not agree",
            "certificate verify failed": "is not trusted",
            "unexpected eof while reading": "closed the connection during the TLS handshake",
            "something new": "TLS handshake with the server failed (something new)",
        }
        for reason, expected in cases.items():
            exc = SSL.Error([("SSL routines", "", reason)])
            self.assertIn(expected, describe_tls_failure(Failure(exc)))
            self.assertIn(expected, describe_tls_failure(exc))

    def test_verification_errors_speak_for_themselves(self) -> None:
        """Our verification errors are already sentences and are returned as they are."""
        exc = HostnameMismatch("chat.example.org", ["other.example"])
        self.assertEqual(describe_tls_failure(Failure(exc)), str(exc))
        self.assertIn("hostname mismatch", str(exc))
        self.assertIn("the certificate is for other.example", str(exc))
        self.assertIn("names no host", str(HostnameMismatch("chat.example.org", [])))
        untrusted = CertificateNotTrusted(18, 0, "'localhost'")
        self.assertIn("is not trusted (self-signed certificate", str(untrusted))
        self.assertIn("pinned certificate", str(untrusted))
        expired = CertificateNotTrusted(10, 0, "'localhost'")
        self.assertIn("certificate has expired", describe_tls_failure(expired))
        self.assertNotIn("If this is the right server", str(expired))

    def test_other_failures(self) -> None:
        """Connection errors that are not TLS still get a sentence."""
        self.assertIn("refused the connection",
                      describe_tls_failure(Failure(error.ConnectionRefusedError())))
        self.assertIn("closed the connection",
                      describe_tls_failure(Failure(error.ConnectionDone())))
        self.assertIn("RuntimeError: odd", describe_tls_failure(RuntimeError("odd")))


class TlsLoopbackTests(unittest.TestCase):
    """A real echo server on 127.0.0.1 with server_tls_options, real TLS clients."""

    timeout = 30

    def setUp(self) -> None:
        self.base = Path(self.mktemp())
        self.base.mkdir()
        self.certs = Certs(self.base)
        self.cert, self.key = self.certs.make("server", "localhost")

    def listen(self, cert: Path | None = None, key: Path | None = None) -> EchoFactory:
        factory = EchoFactory()
        options = server_tls_options(cert or self.cert, key or self.key)
        self.port = reactor.listenSSL(0, factory, options, interface="127.0.0.1")
        self.addCleanup(self.close_server, self.port, factory)
        return factory

    @defer.inlineCallbacks
    def close_server(self, port, factory: EchoFactory):
        yield port.stopListening()
        yield defer.gatherResults([c.lost for c in factory.connections])

    @defer.inlineCallbacks
    def connect(self, creator, port_number: int | None = None):
        if port_number is None:
            port_number = self.port.getHost().port
        client = EchoClient()
        endpoint = SSL4ClientEndpoint(reactor, "127.0.0.1", port_number, creator)
        yield connectProtocol(endpoint, client)
        return client

    @defer.inlineCallbacks
    def assert_echo_works(self, creator):
        client = yield self.connect(creator)
        yield client.handshake
        echoed = yield client.echoed
        self.assertEqual(echoed, PAYLOAD)
        version = client.transport.getHandle().get_protocol_version_name()
        self.assertIn(version, ("TLSv1.2", "TLSv1.3"))
        client.transport.loseConnection()
        yield client.lost
        return client

    @defer.inlineCallbacks
    def refused(self, creator, port_number: int | None = None):
        """Connect, expect the connection to end without a handshake; return the reason
        (in a list: a Deferred whose result is a Failure would errback instead)."""
        client = yield self.connect(creator, port_number)
        yield client.lost
        self.assertFalse(client.handshake.called)
        self.assertFalse(client.echoed.called)
        return [client.reason]

    @defer.inlineCallbacks
    def test_pinned_certificate_connects(self):
        """Pinning the server's generated certificate: the handshake completes, echo works."""
        self.listen()
        yield self.assert_echo_works(client_tls_options("localhost", pinned_cert=str(self.cert)))

    @defer.inlineCallbacks
    def test_ca_file_connects_by_ip(self):
        """The self-signed certificate as CA file works, and by 127.0.0.1 (its IP entry)."""
        self.listen()
        yield self.assert_echo_works(client_tls_options("127.0.0.1", ca_file=str(self.cert)))

    @defer.inlineCallbacks
    def test_certificate_chain_is_sent(self):
        """Certificates after the first in the certificate file are sent as the chain."""
        extra, _ = self.certs.make("intermediate", "ca.example")
        chain = self.base / "fullchain.pem"
        chain.write_bytes(self.cert.read_bytes() + extra.read_bytes())
        self.listen(chain, self.key)
        client = yield self.assert_echo_works(
            client_tls_options("localhost", pinned_cert=str(self.cert)))
        self.assertEqual(len(client.transport.getHandle().get_peer_cert_chain()), 2)

    @defer.inlineCallbacks
    def test_ca_file_trusts_issued_certificates(self):
        """A CA file trusts a server certificate that its CA issued."""
        ca, cert, key = make_ca_and_leaf(self.base, "localhost")
        self.listen(cert, key)
        yield self.assert_echo_works(client_tls_options("localhost", ca_file=str(ca)))

    @defer.inlineCallbacks
    def test_pin_is_exact(self):
        """Pinning a CA certificate does not trust what it issued: a pin is one certificate."""
        ca, cert, key = make_ca_and_leaf(self.base, "localhost")
        self.listen(cert, key)
        [reason] = yield self.refused(client_tls_options("localhost", pinned_cert=str(ca)))
        self.assertIsInstance(reason.value, PinnedCertificateMismatch)

    @defer.inlineCallbacks
    def test_other_ca_file_is_not_trusted(self):
        """A CA file holding a different self-signed certificate: refused as not trusted."""
        other, _ = self.certs.make("other", "localhost")
        self.listen()
        [reason] = yield self.refused(client_tls_options("localhost", ca_file=str(other)))
        self.assertIsInstance(reason.value, CertificateNotTrusted)
        message = describe_tls_failure(reason)
        self.assertIn("The server's TLS certificate is not trusted", message)
        self.assertIn("self-signed certificate", message)

    @defer.inlineCallbacks
    def test_other_pinned_certificate_is_refused(self):
        """Pinning a different certificate: refused, naming both fingerprints."""
        other, _ = self.certs.make("other", "localhost")
        self.listen()
        [reason] = yield self.refused(client_tls_options("localhost", pinned_cert=str(other)))
        self.assertIsInstance(reason.value, PinnedCertificateMismatch)
        message = describe_tls_failure(reason)
        self.assertIn("is not the pinned certificate", message)
        self.assertIn(fingerprint_file(other), message)
        self.assertIn(fingerprint_file(self.cert), message)

    @defer.inlineCallbacks
    def test_hostname_mismatch(self):
        """A trusted certificate for other names: refused as a hostname mismatch."""
        self.listen()
        [reason] = yield self.refused(
            client_tls_options("chat.example.org", pinned_cert=str(self.cert)))
        self.assertIsInstance(reason.value, HostnameMismatch)
        message = describe_tls_failure(reason)
        self.assertIn("hostname mismatch", message)
        self.assertIn("'chat.example.org'", message)
        self.assertIn("localhost", message)

    @defer.inlineCallbacks
    def test_ip_mismatch(self):
        """Connecting by an IP address the certificate does not name is refused."""
        cert, key = self.certs.make("named", "chat.example.org")
        self.listen(cert, key)
        [reason] = yield self.refused(client_tls_options("127.0.0.1", ca_file=str(cert)))
        self.assertIsInstance(reason.value, HostnameMismatch)
        self.assertIn("hostname mismatch", describe_tls_failure(reason))

    @defer.inlineCallbacks
    def test_platform_trust_refuses_self_signed(self):
        """With no CA file or pin, a self-signed certificate is not trusted."""
        self.listen()
        [reason] = yield self.refused(client_tls_options("localhost"))
        self.assertIsInstance(reason.value, CertificateNotTrusted)
        self.assertIn("is not trusted", describe_tls_failure(reason))

    @defer.inlineCallbacks
    def test_expired_pinned_certificate_is_refused(self):
        """Even a pinned certificate is refused once it has expired, saying so."""
        past = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
        cert, key = self.certs.make("old", "localhost", days=1, now=past)
        self.listen(cert, key)
        [reason] = yield self.refused(client_tls_options("localhost", pinned_cert=str(cert)))
        self.assertIsInstance(reason.value, CertificateNotTrusted)
        self.assertIn("certificate has expired", describe_tls_failure(reason))

    @defer.inlineCallbacks
    def test_server_refuses_tls_1_1(self):
        """The server refuses a client that offers at most TLS 1.1 (1.2 is the minimum)."""
        factory = self.listen()
        [reason] = yield self.refused(RawClientTLS(SSL.TLS1_VERSION, SSL.TLS1_1_VERSION))
        self.assertIn("no TLS version in common", describe_tls_failure(reason))
        yield factory.connections[0].lost
        server_reason = factory.connections[0].reason
        self.assertIsInstance(server_reason.value, SSL.Error)
        self.assertIn("unsupported protocol", str(server_reason.value))

    @defer.inlineCallbacks
    def test_server_accepts_tls_1_2(self):
        """The same bare client limited to TLS 1.2 is served."""
        self.listen()
        client = yield self.assert_echo_works(
            RawClientTLS(SSL.TLS1_2_VERSION, SSL.TLS1_2_VERSION))
        self.assertEqual(client.transport.getHandle().get_protocol_version_name(), "TLSv1.2")

    @defer.inlineCallbacks
    def test_plain_server_is_reported(self):
        """A TLS client reaching the plain JIM port is told the server did not speak TLS."""
        port = reactor.listenTCP(0, Factory.forProtocol(NotTlsServer), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        [reason] = yield self.refused(
            client_tls_options("localhost", pinned_cert=str(self.cert)), port.getHost().port)
        self.assertIsInstance(reason.value, SSL.Error)
        self.assertIn("did not answer with TLS", describe_tls_failure(reason))
