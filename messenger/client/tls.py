"""Client side of TLS: whom to trust, and what to tell the user when trust fails.

`client_tls_options` makes the connection creator for ``wrapClientTLS``/``connectSSL``
in one of three trust modes:

* **CA file** (``ca_file``): trust the certificates in a PEM file as roots; the server's
  certificate must chain to one of them. A self-signed server certificate may itself be
  given as the CA file.
* **Pinned certificate** (``pinned_cert``): trust exactly one certificate, typically the
  self-signed one made by ``messenger-admin gen-cert``: the server must present that very
  certificate (byte for byte), not merely one issued by it.
* **Platform trust** (neither): the operating system's CA store.

In every mode the host name is checked too (a DNS name against the certificate's DNS
names, an IP literal against its IP addresses): a pinned certificate made for
``chat.example.org`` refuses a connection to a server reached as ``10.0.0.5``, because
the name the user typed is what the certificate must vouch for, and a mistyped address
should fail loudly rather than work by accident. Connect by the name the certificate was
made for (``gen-cert`` can include an IP address).

The lowest TLS version is 1.2. The verification callback follows Twisted's own
``optionsForClientTLS`` (same callback-and-``failVerification`` pattern) but keeps the
reason: a refused certificate ends the connection with a `TlsVerificationError` subclass
as the ``connectionLost`` reason, and `describe_tls_failure` turns that, or any OpenSSL
error, into a sentence for the user. This module imports no Qt.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from pathlib import Path
from typing import Any

import idna
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL
from OpenSSL.crypto import X509
from service_identity import CertificateError, VerificationError
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)
from twisted.internet import error as net_error
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    TLSVersion,
    platformTrust,
    trustRootFromCertificates,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

log = Logger()

MINIMUM_TLS_VERSION = TLSVersion.TLSv1_2
_LABEL = re.compile(rb"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")

# OpenSSL X509_V_ERR_* codes that mean "issued by nobody we trust" (stable since 0.9.x).
_UNTRUSTED_ISSUER = frozenset({
    2,    # unable to get issuer certificate
    18,   # self-signed certificate
    19,   # self-signed certificate in certificate chain
    20,   # unable to get local issuer certificate
    21,   # unable to verify the first certificate
    27,   # certificate not trusted
})
_VERIFY_ERRORS = {
    2: "unable to get issuer certificate",
    7: "certificate signature failure",
    9: "certificate is not yet valid or the system clock is incorrect",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
    23: "certificate revoked",
    26: "unsuitable certificate purpose",
    27: "certificate not trusted",
    28: "certificate rejected",
}


class TlsSettingsError(ValueError):
    """The client's TLS settings cannot be used (a missing or empty trust file, ...)."""


class TlsVerificationError(Exception):
    """The server's certificate was refused; ``str()`` is a sentence for the user."""


class CertificateNotTrusted(TlsVerificationError):
    """The certificate chain does not verify against the trusted roots (or is expired...)."""

    def __init__(self, code: int, depth: int, subject: str) -> None:
        self.code = code
        self.depth = depth
        self.subject = subject
        reason = _verify_error_text(code)
        where = "" if depth == 0 else f" at depth {depth} of its chain"
        advice = ""
        if code in _UNTRUSTED_ISSUER:
            advice = (" If this is the right server, trust its certificate with a CA file "
                      "or a pinned certificate.")
        super().__init__(f"The server's TLS certificate is not trusted ({reason}{where}; "
                         f"issued to {subject}).{advice}")


class HostnameMismatch(TlsVerificationError):
    """The certificate is valid but made for other names than the one connected to."""

    def __init__(self, host: str, names: list[str]) -> None:
        self.host = host
        self.names = names
        listed = (f"is for {', '.join(names)}" if names
                  else "names no host (it has no subjectAltName)")
        super().__init__(f"The server's TLS certificate does not match the host name "
                         f"{host!r} (hostname mismatch: the certificate {listed}).")


class PinnedCertificateMismatch(TlsVerificationError):
    """The server presented another certificate than the pinned one."""

    def __init__(self, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"The server's TLS certificate is not the pinned certificate "
                         f"(expected {expected}, got {actual}). If the server's certificate "
                         "was replaced on purpose, pin the new one.")


def client_tls_options(host: str, ca_file: str | None = None,
                       pinned_cert: str | None = None) -> IOpenSSLClientConnectionCreator:
    """The TLS connection creator for connecting to ``host``.

    ``ca_file``: PEM file of trusted root certificates; ``pinned_cert``: PEM file holding
    exactly the one certificate the server must present; neither: the platform's trust
    store. Giving both is an error. Raises `TlsSettingsError` for an unusable file or a
    host that is neither a DNS name nor an IP address.
    """
    if ca_file and pinned_cert:
        raise TlsSettingsError("give either a CA file or a pinned certificate, not both")
    pinned_der = None
    if pinned_cert:
        certs = _load_certificates(Path(pinned_cert), "pinned certificate")
        if len(certs) != 1:
            raise TlsSettingsError(
                f"the pinned certificate file {pinned_cert} holds {len(certs)} certificates; "
                "it must hold exactly the server's own")
        pinned_der = certs[0].public_bytes(serialization.Encoding.DER)
        trust_root = trustRootFromCertificates([Certificate(X509.from_cryptography(certs[0]))])
    elif ca_file:
        certs = _load_certificates(Path(ca_file), "CA")
        trust_root = trustRootFromCertificates(
            [Certificate(X509.from_cryptography(cert)) for cert in certs])
    else:
        trust_root = platformTrust()
    return _VerifyingClientTLS(host, trust_root, pinned_der)


def describe_tls_failure(failure: Failure | BaseException) -> str:
    """One readable sentence for why a TLS connection failed (for the login window)."""
    exc = failure.value if isinstance(failure, Failure) else failure
    if isinstance(exc, TlsVerificationError):
        return str(exc)
    if isinstance(exc, (VerificationError, CertificateError)):
        return ("The server's TLS certificate does not match the host name "
                "(hostname mismatch).")
    if isinstance(exc, SSL.Error):
        return _describe_ssl_error(exc)
    if isinstance(exc, (net_error.ConnectionLost, net_error.ConnectionDone)):
        return "The server closed the connection."
    if isinstance(exc, net_error.ConnectionRefusedError):
        return "The server refused the connection (is it running, and is this its TLS port?)."
    return f"The connection to the server failed ({type(exc).__name__}: {exc})."


@implementer(IOpenSSLClientConnectionCreator)
class _VerifyingClientTLS:
    """Makes client ``SSL.Connection``s that verify chain, pin and host name, and report
    a refusal as a `TlsVerificationError` through ``failVerification``."""

    def __init__(self, host: str, trust_root: Any, pinned_der: bytes | None) -> None:
        self._host, self._is_ip, self._server_name = _parse_host(host)
        self._pinned_der = pinned_der
        self._options = CertificateOptions(trustRoot=trust_root,
                                           raiseMinimumTo=MINIMUM_TLS_VERSION)

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        connection = self._options.clientConnectionForTLS(tlsProtocol)
        if self._server_name is not None:
            connection.set_tlsext_host_name(self._server_name)
        connection.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                              self._callback_for(tlsProtocol))
        return connection

    def _callback_for(self, tls_protocol: Any) -> Any:
        protocol = tls_protocol

        def verify(connection: SSL.Connection, cert: X509, code: int, depth: int,
                   ok: int) -> bool:
            nonlocal protocol
            try:
                problem = self._judge(cert, code, depth, bool(ok))
            except Exception:
                # An exception must not escape into OpenSSL: it would be lost.
                log.failure("While checking the server's TLS certificate")
                problem = TlsVerificationError(
                    "The server's TLS certificate could not be checked (internal error).")
            if problem is None:
                if depth == 0:
                    protocol = None             # done: drop the reference cycle
                return True
            if protocol is not None:
                protocol.failVerification(Failure(problem))
                protocol = None
            return False

        return verify

    def _judge(self, cert: X509, code: int, depth: int,
               ok: bool) -> TlsVerificationError | None:
        """The reason to refuse the certificate at ``depth``, or None to accept it."""
        leaf = cert.to_cryptography() if depth == 0 else None
        if leaf is not None and self._pinned_der is not None:
            der = leaf.public_bytes(serialization.Encoding.DER)
            if der != self._pinned_der:
                return PinnedCertificateMismatch(_fingerprint(self._pinned_der),
                                                 _fingerprint(der))
        if not ok:
            return CertificateNotTrusted(code, depth, _subject(cert.to_cryptography()))
        if leaf is not None:
            try:
                if self._is_ip:
                    verify_certificate_ip_address(leaf, self._host)
                else:
                    verify_certificate_hostname(leaf, self._host)
            except (VerificationError, CertificateError):
                return HostnameMismatch(self._host, _names(leaf))
        return None


def _parse_host(host: str) -> tuple[str, bool, bytes | None]:
    """``(host, is_ip, server_name)``: the name to verify, whether it is an IP literal,
    and the SNI bytes (None for an IP literal, per RFC 6066)."""
    if not isinstance(host, str) or not host.strip():
        raise TlsSettingsError("a host name is needed to check the server's certificate")
    text = host.strip().strip("[]")
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return text, True, None
    text = text.rstrip(".")
    try:
        server_name = text.encode("ascii") if text.isascii() else idna.encode(text, uts46=True)
    except idna.IDNAError as e:
        raise TlsSettingsError(f"{host!r} is not a valid host name ({e})") from None
    if len(server_name) > 253 or not all(map(_LABEL.match, server_name.split(b"."))):
        raise TlsSettingsError(f"{host!r} is not a valid host name or IP address")
    return text, False, server_name


def _load_certificates(path: Path, what: str) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TlsSettingsError(f"the {what} file {path} does not exist") from None
    except OSError as e:
        raise TlsSettingsError(f"cannot read the {what} file {path}: {e.strerror}") from None
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise TlsSettingsError(f"the {what} file {path} holds no PEM certificate")
    return certs


def _fingerprint(der: bytes) -> str:
    return "sha256:" + hashlib.sha256(der).hexdigest()


def _names(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses a certificate is for (its subjectAltName)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return ([str(name) for name in san.get_values_for_type(x509.DNSName)]
            + [str(address) for address in san.get_values_for_type(x509.IPAddress)])


def _subject(cert: x509.Certificate) -> str:
    common_names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if common_names:
        return repr(str(common_names[0].value))
    return cert.subject.rfc4514_string() or "an unnamed subject"


def _verify_error_text(code: int) -> str:
    """OpenSSL's own text for an X509_V_ERR code (its numbers move between versions)."""
    try:
        # pyOpenSSL's private bindings, as Twisted's own _sslverify uses them.
        from OpenSSL._util import ffi, lib
        text = ffi.string(lib.X509_verify_cert_error_string(code)).decode("ascii", "replace")
    except Exception:
        text = ""
    return text or _VERIFY_ERRORS.get(code, f"verification error {code}")


_SSL_REASONS = (
    (("wrong version number", "packet length too long", "http request",
      "record layer failure", "unknown protocol"),
     "The server did not answer with TLS (is this its TLS port, and is TLS enabled?)."),
    (("unsupported protocol", "protocol version", "no protocols available"),
     "The server and this client have no TLS version in common (TLS 1.2 or newer is "
     "required)."),
    (("handshake failure", "no shared cipher", "no suitable signature algorithm"),
     "The server and this client could not agree on TLS parameters (handshake failure)."),
    (("certificate verify failed",),
     "The server's TLS certificate is not trusted (certificate verify failed)."),
    (("unexpected eof",),
     "The server closed the connection during the TLS handshake."),
)


def _describe_ssl_error(exc: SSL.Error) -> str:
    entries = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
    reasons = [str(entry[2]) for entry in entries
               if isinstance(entry, tuple) and len(entry) == 3 and entry[2]]
    text = "; ".join(reasons).lower()
    for needles, sentence in _SSL_REASONS:
        if any(needle in text for needle in needles):
            return sentence
    return f"The TLS handshake with the server failed ({'; '.join(reasons) or exc})."
