"""Server side of the optional TLS listener: certificate and key into connection options.

`server_tls_options` reads a PEM certificate file (the server's certificate, optionally
followed by its intermediate certificates, as in a ``fullchain.pem``) and a PEM private
key, checks that they belong together and builds Twisted ``CertificateOptions`` with TLS
1.2 as the lowest version. Every problem an operator can make (a missing or unreadable
file, no certificate in it, an encrypted key, a key of another certificate) is reported
at start-up as a `TlsConfigError` whose message names the file and says what to do.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from OpenSSL import SSL
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.logger import Logger

log = Logger()

MINIMUM_TLS_VERSION = TLSVersion.TLSv1_2
_GEN_CERT_HINT = "make one with `messenger-admin gen-cert HOST`"


class TlsConfigError(ValueError):
    """The TLS certificate or key cannot be used; the message says why and what to do."""


def server_tls_options(cert_path: str | Path, key_path: str | Path, *,
                       now: datetime.datetime | None = None) -> CertificateOptions:
    """TLS options (an ``IOpenSSLServerConnectionCreator``) for ``listenSSL`` or a TLS
    endpoint, serving the certificate chain in ``cert_path`` with the key in ``key_path``.

    The OpenSSL context is built here, so every error shows at start-up, not at the
    first connection. An expired or not yet valid certificate is served anyway (clients
    will refuse it) and logged as a warning; ``now`` only serves that check.
    """
    cert_path, key_path = Path(cert_path), Path(key_path)
    chain = _load_certificates(cert_path)
    key = _load_private_key(key_path)
    leaf = chain[0]
    if _public_der(key.public_key()) != _public_der(leaf.public_key()):
        raise TlsConfigError(
            f"the TLS key {key_path} does not belong to the certificate {cert_path} "
            "(the first certificate in the file must be the server's own, made with this key)")
    _warn_about_validity(leaf, cert_path, now)
    # pyOpenSSL takes cryptography objects (its own X509/PKey are deprecated for this);
    # CertificateOptions hands them straight to the OpenSSL context.
    options = CertificateOptions(
        privateKey=key,                     # type: ignore[arg-type]
        certificate=leaf,                   # type: ignore[arg-type]
        extraCertChain=chain[1:],           # type: ignore[arg-type]
        raiseMinimumTo=MINIMUM_TLS_VERSION,
    )
    try:
        options.getContext()
    except SSL.Error as e:
        raise TlsConfigError(
            f"OpenSSL refuses the TLS certificate {cert_path} or key {key_path}: "
            f"{_ssl_reasons(e)}") from None
    return options


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TlsConfigError(f"the TLS {what} file {path} does not exist "
                             f"({_GEN_CERT_HINT})") from None
    except IsADirectoryError:
        raise TlsConfigError(f"the TLS {what} file {path} is a directory") from None
    except OSError as e:
        raise TlsConfigError(f"cannot read the TLS {what} file {path}: {e.strerror}") from None


def _load_certificates(path: Path) -> list[x509.Certificate]:
    data = _read(path, "certificate")
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError:
        chain = []
    if not chain:
        raise TlsConfigError(
            f"the TLS certificate file {path} holds no PEM certificate "
            "(expected a '-----BEGIN CERTIFICATE-----' block)")
    return chain


def _load_private_key(path: Path) -> PrivateKeyTypes:
    data = _read(path, "key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TlsConfigError(
            f"the TLS key {path} is protected by a passphrase; the server needs it "
            "unencrypted (e.g. `openssl pkey -in KEY -out KEY.plain`), readable by "
            "the server's user only") from None
    except (ValueError, UnicodeError):
        raise TlsConfigError(
            f"the TLS key file {path} holds no PEM private key (expected a "
            "'-----BEGIN PRIVATE KEY-----' block)") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey,
                            ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey,
                            dsa.DSAPrivateKey)):
        raise TlsConfigError(f"the TLS key {path} is of a type TLS cannot use")
    try:
        mode = path.stat().st_mode
    except OSError:
        mode = 0
    if os.name == "posix" and mode & 0o077:
        log.warn("The TLS key {path} can be read by other users (mode {mode:o}); "
                 "chmod 600 it", path=str(path), mode=mode & 0o777)
    return key


def _public_der(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def _warn_about_validity(cert: x509.Certificate, path: Path,
                         now: datetime.datetime | None) -> None:
    if now is None:
        now = datetime.datetime.now(datetime.UTC)
    if now >= cert.not_valid_after_utc:
        log.warn("The TLS certificate {path} expired on {date}; clients will refuse it",
                 path=str(path), date=cert.not_valid_after_utc.isoformat())
    elif now < cert.not_valid_before_utc:
        log.warn("The TLS certificate {path} is not valid before {date}; clients will "
                 "refuse it until then", path=str(path),
                 date=cert.not_valid_before_utc.isoformat())


def _ssl_reasons(error: SSL.Error) -> str:
    """The reason strings of an OpenSSL error, joined ('key values mismatch', ...)."""
    reasons = [entry[2] for entry in (error.args[0] if error.args else [])
               if isinstance(entry, tuple) and len(entry) == 3 and entry[2]]
    return "; ".join(reasons) or str(error)
