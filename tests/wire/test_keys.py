"""Tests for messenger.wire.keys: key files, PEM parsing, fingerprints."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from twisted.trial.unittest import SynchronousTestCase

from messenger.wire import keys
from tests.support.keys import ec_key, public_key_with_modulus_bits, rsa_key


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class LoadOrCreateTests(SynchronousTestCase):
    """load_or_create() and write_private_key()."""

    def test_creates_0600_then_loads(self) -> None:
        """The first call makes a 0600 key file; the second loads the same key."""
        path = Path(self.mktemp()) / "sub" / "server.key"
        key, created = keys.load_or_create(path, bits=2048)
        self.assertTrue(created)
        self.assertEqual(_mode(path), 0o600)
        self.assertEqual(key.key_size, 2048)
        self.assertTrue(path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----"))
        again, created = keys.load_or_create(path, bits=2048)
        self.assertFalse(created)
        self.assertEqual(keys.fingerprint(again.public_key()),
                         keys.fingerprint(key.public_key()))
        self.assertEqual(again.private_numbers(), key.private_numbers())
        self.assertFalse(path.with_name("server.key.tmp").exists())

    def test_0600_under_a_permissive_umask(self) -> None:
        """The key file is 0600 even when the process umask is 0."""
        old = os.umask(0)
        try:
            path = Path(self.mktemp()) / "key.pem"
            keys.write_private_key(path, rsa_key("server"))
        finally:
            os.umask(old)
        self.assertEqual(_mode(path), 0o600)

    def test_stale_temporary_file_does_not_widen_mode(self) -> None:
        """A leftover world-readable temporary file does not make the key file readable.

        Fails until write_private_key() sets the mode of an existing temporary file
        (os.fchmod after os.open, or O_EXCL after unlinking it); see the report.
        """
        path = Path(self.mktemp()) / "key.pem"
        path.parent.mkdir()
        stale = path.with_name("key.pem.tmp")
        stale.write_bytes(b"junk")
        stale.chmod(0o644)
        keys.write_private_key(path, rsa_key("server"))
        self.assertEqual(_mode(path), 0o600)

    def test_refuses_a_non_rsa_key_file(self) -> None:
        """A key file holding an EC key is refused with ValueError."""
        path = Path(self.mktemp())
        path.write_bytes(ec_key().private_bytes(serialization.Encoding.PEM,
                                                serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
        error = self.assertRaises(ValueError, keys.load_or_create, path)
        self.assertIn("does not hold an RSA private key", str(error))

    def test_private_pem_loads(self) -> None:
        """private_pem() writes unencrypted PKCS#8 that loads back into the same key."""
        key = rsa_key("server")
        loaded = serialization.load_pem_private_key(keys.private_pem(key), password=None)
        self.assertEqual(loaded.private_numbers(), key.private_numbers())


class FingerprintTests(SynchronousTestCase):
    """fingerprint(), public_der() and public_pem()."""

    def test_format(self) -> None:
        """A fingerprint is 'sha256:' + lowercase hex SHA-256 of the DER SubjectPublicKeyInfo."""
        public = rsa_key("server").public_key()
        der = public.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        self.assertEqual(keys.public_der(public), der)
        self.assertEqual(keys.fingerprint(public), "sha256:" + hashlib.sha256(der).hexdigest())
        self.assertRegex(keys.fingerprint(public), r"\Asha256:[0-9a-f]{64}\Z")

    def test_distinct_keys_distinct_fingerprints(self) -> None:
        """Two different keys have different fingerprints."""
        self.assertNotEqual(keys.fingerprint(rsa_key("server").public_key()),
                            keys.fingerprint(rsa_key("client").public_key()))

    def test_public_pem(self) -> None:
        """public_pem() gives a SubjectPublicKeyInfo PEM string that parses back."""
        public = rsa_key("server").public_key()
        pem = keys.public_pem(public)
        self.assertIsInstance(pem, str)
        self.assertTrue(pem.startswith("-----BEGIN PUBLIC KEY-----\n"))
        self.assertEqual(keys.public_der(keys.parse_public_pem(pem)), keys.public_der(public))


class ParsePublicPemTests(SynchronousTestCase):
    """parse_public_pem(): what a peer's key must be."""

    def _pem(self, public) -> str:
        return public.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo
                                   ).decode("ascii")

    def test_accepts_2048_to_4096(self) -> None:
        """RSA moduli of 2048, 3072 and 4096 bits are accepted."""
        for bits in (2048, 3072, 4096):
            key = keys.parse_public_pem(self._pem(public_key_with_modulus_bits(bits)))
            self.assertEqual(key.key_size, bits)

    def test_too_small(self) -> None:
        """A 1024-bit (or 2047-bit) RSA key is refused."""
        for public in (rsa_key("small", 1024).public_key(), public_key_with_modulus_bits(2047)):
            error = self.assertRaises(keys.InvalidPublicKey, keys.parse_public_pem,
                                      self._pem(public))
            self.assertEqual(str(error), "RSA key must have 2048 to 4096 bits")

    def test_too_large(self) -> None:
        """A 4097-bit RSA key is refused."""
        error = self.assertRaises(keys.InvalidPublicKey, keys.parse_public_pem,
                                  self._pem(public_key_with_modulus_bits(4097)))
        self.assertEqual(str(error), "RSA key must have 2048 to 4096 bits")

    def test_not_rsa(self) -> None:
        """EC and Ed25519 keys are refused as not RSA."""
        for public in (ec_key().public_key(),
                       ed25519.Ed25519PrivateKey.generate().public_key()):
            error = self.assertRaises(keys.InvalidPublicKey, keys.parse_public_pem,
                                      self._pem(public))
            self.assertEqual(str(error), "public key must be an RSA key")

    def test_not_pem(self) -> None:
        """Garbage, a private key, a truncated PEM and non-ASCII text are refused."""
        pem = keys.public_pem(rsa_key("server").public_key())
        private = keys.private_pem(rsa_key("server")).decode("ascii")
        for text in ("", "hello", pem[:100], pem.replace("M", "*", 1), private,
                     pem.replace("A", "\u00c4", 1)):
            self.assertRaises(keys.InvalidPublicKey, keys.parse_public_pem, text)

    def test_not_a_string_or_too_long(self) -> None:
        """None, bytes, numbers and strings over 4096 characters are refused first."""
        pem = keys.public_pem(rsa_key("server").public_key())
        for value in (None, pem.encode("ascii"), 5, ["x"], pem + " " * (4097 - len(pem))):
            error = self.assertRaises(keys.InvalidPublicKey, keys.parse_public_pem, value)
            self.assertEqual(str(error), "public key must be a PEM string of at most 4096"
                                         " characters")

    def test_limit_constants(self) -> None:
        """The documented limits: 2048..4096 bits, PEM at most 4096 characters."""
        self.assertEqual((keys.MIN_BITS, keys.MAX_BITS, keys.MAX_PEM_LENGTH),
                         (2048, 4096, 4096))


class PublicExponentTests(SynchronousTestCase):
    """Only the public exponent 65537 is accepted, from a peer and in our own key file."""

    def _pem(self, public) -> str:
        return public.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo
                                   ).decode("ascii")

    def test_65537_accepted(self) -> None:
        """A key with e = 65537 parses; the constant is the documented one."""
        self.assertEqual(keys.PUBLIC_EXPONENT, 65537)
        key = keys.parse_public_pem(self._pem(rsa_key("server").public_key()))
        self.assertEqual(key.public_numbers().e, 65537)

    def test_other_exponents_refused(self) -> None:
        """e = 3, 17, 65539, 2**64 + 1 and e close to n are refused with one clear message."""
        modulus = rsa_key("server").public_key().public_numbers().n
        for exponent in (3, 17, 65539, (1 << 64) + 1, modulus - 2):
            public = rsa.RSAPublicNumbers(exponent, modulus).public_key()
            error = self.assertRaises(keys.InvalidPublicKey, keys.parse_public_pem,
                                      self._pem(public))
            self.assertEqual(str(error), "public exponent must be 65537")

    def test_own_key_with_another_exponent_refused(self) -> None:
        """load_or_create() refuses a key file whose key has e = 3 (peers would refuse it)."""
        path = Path(self.mktemp())
        path.write_bytes(keys.private_pem(rsa.generate_private_key(3, 2048)))
        error = self.assertRaises(ValueError, keys.load_or_create, path)
        self.assertIn("public exponent is not 65537", str(error))

    def test_generated_keys_use_65537(self) -> None:
        """Keys made by load_or_create() have e = 65537."""
        key, created = keys.load_or_create(Path(self.mktemp()) / "k.pem", bits=2048)
        self.assertTrue(created)
        self.assertEqual(key.public_key().public_numbers().e, 65537)
