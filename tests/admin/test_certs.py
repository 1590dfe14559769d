"""Tests for messenger.admin.certs: the self-signed certificate behind `gen-cert`."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from service_identity import VerificationError
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)
from twisted.trial import unittest

from messenger.admin.certs import fingerprint_file, generate_self_signed, subject_alt_names


class GenerateSelfSignedTests(unittest.TestCase):
    def make(self, host: str, **kwargs) -> tuple[str, x509.Certificate, Path, Path]:
        base = Path(self.mktemp())
        cert_path, key_path = base / "tls" / "cert.pem", base / "tls" / "key.pem"
        fingerprint = generate_self_signed(host, cert_path, key_path, **kwargs)
        return (fingerprint, x509.load_pem_x509_certificate(cert_path.read_bytes()),
                cert_path, key_path)

    def san(self, cert: x509.Certificate) -> x509.SubjectAlternativeName:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value

    def test_fingerprint_is_sha256_of_der(self) -> None:
        """The returned fingerprint is sha256: + hex SHA-256 of the certificate's DER."""
        fingerprint, cert, cert_path, _ = self.make("chat.example.org")
        der = cert.public_bytes(serialization.Encoding.DER)
        self.assertEqual(fingerprint, "sha256:" + hashlib.sha256(der).hexdigest())
        self.assertEqual(fingerprint_file(cert_path), fingerprint)

    def test_file_modes(self) -> None:
        """The key is written 0600 and the certificate 0644, whatever the umask."""
        old = os.umask(0o077)
        try:
            _, _, cert_path, key_path = self.make("chat.example.org")
        finally:
            os.umask(old)
        self.assertEqual(stat.S_IMODE(key_path.stat().st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(cert_path.stat().st_mode), 0o644)
        self.assertEqual(sorted(p.name for p in cert_path.parent.iterdir()),
                         ["cert.pem", "key.pem"])

    def test_key_matches_certificate(self) -> None:
        """The key file holds the unencrypted RSA key of the certificate, of `bits` bits."""
        _, cert, _, key_path = self.make("chat.example.org", bits=3072)
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        self.assertIsInstance(key, rsa.RSAPrivateKey)
        self.assertEqual(key.key_size, 3072)
        self.assertEqual(key.public_key().public_numbers(), cert.public_key().public_numbers())

    def test_self_signed(self) -> None:
        """Issuer equals subject and the certificate's signature verifies with its own key."""
        _, cert, _, _ = self.make("chat.example.org")
        self.assertEqual(cert.issuer, cert.subject)
        cert.verify_directly_issued_by(cert)
        self.assertEqual(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,
                         "chat.example.org")

    def test_dns_name(self) -> None:
        """A host name becomes the only subjectAltName and verifies with service_identity."""
        _, cert, _, _ = self.make("Chat.Example.org")
        self.assertEqual(self.san(cert).get_values_for_type(x509.DNSName), ["chat.example.org"])
        self.assertEqual(self.san(cert).get_values_for_type(x509.IPAddress), [])
        verify_certificate_hostname(cert, "chat.example.org")
        self.assertRaises(VerificationError, verify_certificate_hostname, cert, "localhost")
        self.assertRaises(VerificationError, verify_certificate_ip_address, cert, "127.0.0.1")

    def test_ipv4_literal(self) -> None:
        """An IPv4 literal host becomes an IP address subjectAltName."""
        _, cert, _, _ = self.make("192.0.2.10")
        self.assertEqual(self.san(cert).get_values_for_type(x509.IPAddress),
                         [ipaddress.ip_address("192.0.2.10")])
        self.assertEqual(self.san(cert).get_values_for_type(x509.DNSName), [])
        verify_certificate_ip_address(cert, "192.0.2.10")

    def test_ipv6_literal(self) -> None:
        """An IPv6 literal, with or without brackets, becomes an IP address entry."""
        _, cert, _, _ = self.make("[2001:db8::1]")
        self.assertEqual(self.san(cert).get_values_for_type(x509.IPAddress),
                         [ipaddress.ip_address("2001:db8::1")])
        verify_certificate_ip_address(cert, "2001:db8::1")

    def test_localhost_adds_loopback_addresses(self) -> None:
        """localhost also names 127.0.0.1 and ::1, so clients may connect by either."""
        _, cert, _, _ = self.make("localhost")
        self.assertEqual(self.san(cert).get_values_for_type(x509.DNSName), ["localhost"])
        self.assertEqual(self.san(cert).get_values_for_type(x509.IPAddress),
                         [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")])

    def test_other_names_get_no_loopback(self) -> None:
        """Only localhost gets the loopback addresses."""
        for host in ("chat.example.org", "10.0.0.5"):
            self.assertNotIn(x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                             subject_alt_names(host))

    def test_idn_and_wildcard(self) -> None:
        """Internationalised names are stored as IDNA A-labels; a *. wildcard is kept."""
        self.assertEqual(subject_alt_names("bücher.example"),
                         [x509.DNSName("xn--bcher-kva.example")])
        self.assertEqual(subject_alt_names("*.example.org"), [x509.DNSName("*.example.org")])

    def test_usable_as_server_and_trust_anchor(self) -> None:
        """Not a CA; key usage and EKU fit a TLS server certificate."""
        _, cert, _, _ = self.make("chat.example.org")
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        self.assertFalse(constraints.value.ca)
        self.assertTrue(constraints.critical)
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        self.assertTrue(usage.digital_signature)
        self.assertFalse(usage.key_cert_sign)
        self.assertEqual(list(cert.extensions.get_extension_for_class(
            x509.ExtendedKeyUsage).value), [ExtendedKeyUsageOID.SERVER_AUTH])
        cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)

    def test_validity_period(self) -> None:
        """Valid from an hour before now for `days` days."""
        now = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.UTC)
        _, cert, _, _ = self.make("chat.example.org", days=30, now=now)
        self.assertEqual(cert.not_valid_before_utc, now - datetime.timedelta(hours=1))
        self.assertEqual(cert.not_valid_after_utc, now + datetime.timedelta(days=30))

    def test_default_lifetime_is_825_days(self) -> None:
        """Without `days`, the certificate lasts 825 days."""
        now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
        _, cert, _, _ = self.make("chat.example.org", now=now)
        self.assertEqual(cert.not_valid_after_utc - now, datetime.timedelta(days=825))

    def test_refuses_to_overwrite(self) -> None:
        """An existing certificate or key is kept unless overwrite is asked for."""
        fingerprint, _, cert_path, key_path = self.make("chat.example.org")
        self.assertRaises(FileExistsError, generate_self_signed, "chat.example.org",
                          cert_path, key_path)
        self.assertEqual(fingerprint_file(cert_path), fingerprint)
        key_path.unlink()
        self.assertRaises(FileExistsError, generate_self_signed, "chat.example.org",
                          cert_path, key_path)
        self.assertFalse(key_path.exists())

    def test_overwrite_replaces(self) -> None:
        """overwrite=True makes a new key and certificate in place."""
        fingerprint, _, cert_path, key_path = self.make("chat.example.org")
        new = generate_self_signed("chat.example.org", cert_path, key_path, overwrite=True)
        self.assertNotEqual(new, fingerprint)
        self.assertEqual(fingerprint_file(cert_path), new)
        self.assertEqual(stat.S_IMODE(key_path.stat().st_mode), 0o600)

    def test_bad_arguments(self) -> None:
        """Bad hosts, lifetimes and key sizes are refused before anything is written."""
        base = Path(self.mktemp())
        cert_path, key_path = base / "c.pem", base / "k.pem"
        for host in ("", "  ", "bad host", "-x.example", "a..b", "999.1.1.1", "x" * 64 + ".org"):
            self.assertRaises(ValueError, generate_self_signed, host, cert_path, key_path)
        self.assertRaises(ValueError, generate_self_signed, "h.example", cert_path, key_path,
                          days=0)
        self.assertRaises(ValueError, generate_self_signed, "h.example", cert_path, key_path,
                          bits=1024)
        self.assertRaises(ValueError, generate_self_signed, "h.example", cert_path, cert_path)
        self.assertFalse(base.exists())
