"""A self-signed TLS certificate for the server's optional TLS listener.

``messenger-admin gen-cert HOST`` calls `generate_self_signed`. The certificate serves
as the server's certificate (``--tls-cert``/``--tls-key``) and, since it is self-signed,
clients can trust it directly: as a pinned certificate or as their CA file.

What is in it: an RSA key (2048 bits by default), SHA-256 signature, subject CN = HOST,
subjectAltName naming HOST (a DNS name, or an IP address when HOST is an IP literal; for
``localhost`` also 127.0.0.1 and ::1), basicConstraints CA:FALSE (so the key cannot vouch
for any other certificate even where this one is trusted as a root), keyUsage
digitalSignature + keyEncipherment, extendedKeyUsage serverAuth, subject and authority
key identifiers. Valid from an hour ago (clock skew) for ``days`` days; 825 days is the
longest lifetime TLS clients commonly accept.

The fingerprint is ``sha256:`` + the hex SHA-256 of the certificate's DER, the same digits
as ``openssl x509 -noout -fingerprint -sha256 -in CERT`` prints (upper case, with colons).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import re
from pathlib import Path

import idna
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MIN_BITS = 2048
MAX_BITS = 8192
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_MAX_COMMON_NAME = 64


def generate_self_signed(host: str, cert_path: Path, key_path: Path, days: int = 825,
                         bits: int = 2048, *, overwrite: bool = False,
                         now: datetime.datetime | None = None) -> str:
    """Make a key and a self-signed certificate for ``host``; returns its fingerprint.

    The key is written to ``key_path`` readable by its owner only (0600), the certificate
    to ``cert_path`` (0644); both atomically, parent folders created. Refuses with
    FileExistsError to replace an existing file unless ``overwrite`` (a new certificate
    breaks every client that pinned the old one). ValueError for a host that is neither a
    DNS name nor an IP address, ``days`` < 1 or ``bits`` outside 2048..8192.
    """
    cert_path, key_path = Path(cert_path), Path(key_path)
    names = subject_alt_names(host)
    if not isinstance(days, int) or days < 1:
        raise ValueError(f"days must be a positive whole number, not {days!r}")
    if not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"bits must be between {MIN_BITS} and {MAX_BITS}, not {bits!r}")
    if cert_path == key_path:
        raise ValueError("the certificate and the key need two different files")
    if not overwrite:
        for path in (cert_path, key_path):
            if path.exists():
                raise FileExistsError(
                    f"{path} already exists; clients that trust the certificate in it would "
                    "stop trusting the server if it were replaced (overwrite to replace it)")
    if now is None:
        now = datetime.datetime.now(datetime.UTC)

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    common_name = host.strip().strip("[]")
    name_attributes = []
    if len(common_name) <= _MAX_COMMON_NAME:
        name_attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    name = x509.Name(name_attributes)
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_encipherment=True, content_commitment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key),
                       critical=False)
        .sign(key, hashes.SHA256())
    )

    _write_atomically(key_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()), 0o600)
    _write_atomically(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return certificate_fingerprint(cert)


def subject_alt_names(host: str) -> list[x509.GeneralName]:
    """The subjectAltName entries for ``host``; ValueError if it is not a host name.

    An IP literal (``[::1]`` brackets allowed) gives an IP address entry; ``localhost``
    gives DNS localhost plus 127.0.0.1 and ::1; any other name a DNS entry, in its IDNA
    ASCII form, a leading ``*.`` wildcard allowed.
    """
    if not isinstance(host, str) or not host.strip():
        raise ValueError("a host name or IP address is needed")
    text = host.strip()
    try:
        return [x509.IPAddress(ipaddress.ip_address(text.strip("[]")))]
    except ValueError:
        pass
    dns_name = _dns_name(text)
    if dns_name == "localhost":
        return [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1"))]
    return [x509.DNSName(dns_name)]


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """``sha256:`` + the hex SHA-256 of the certificate's DER encoding."""
    return "sha256:" + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def fingerprint_file(cert_path: Path) -> str:
    """The fingerprint of the first certificate in a PEM file."""
    return certificate_fingerprint(x509.load_pem_x509_certificate(Path(cert_path).read_bytes()))


def _dns_name(text: str) -> str:
    """``text`` as a lower-case ASCII DNS name; ValueError when it cannot be one."""
    wildcard = text.startswith("*.")
    name = (text[2:] if wildcard else text).rstrip(".").lower()
    try:
        ascii_name = name if name.isascii() else idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError as e:
        raise ValueError(f"{text!r} is not a valid host name ({e})") from None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{text!r} is not a valid host name or IP address")
    if labels[-1].isdigit():
        raise ValueError(f"{text!r} looks like a malformed IP address")
    return ("*." if wildcard else "") + ascii_name


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` via a temporary file with exactly ``mode``, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)    # the umask may have narrowed it
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
