#!/usr/bin/env python3
"""A worked example of the messenger/2 wire protocol, for docs/PROTOCOL.md.

Runs the real `ServerHandshake` and `ClientHandshake` of ``messenger.wire`` against each
other with fixed inputs and prints every frame of phases 1 and 2 (4-byte big-endian length
prefix + payload, in hex, and the JSON), the HMAC digests, the X25519 shares and shared
secret, the signed DER transcript and the session id, the HKDF-derived keys, and the first
encrypted phase-3 frame in each direction, for each suite.

Fixed inputs: the TEST-ONLY RSA keys in docs/example-keys/ (2048-bit; published, so never
use them for anything real), the shared secret, both nonces, both ephemeral X25519 private
keys and the RSA-carried session secret below (passed to the handshakes as their
``random`` callables), and the phase-3 request and reply.

RSA-OAEP encryption and RSA-PSS signatures are randomized, so the encrypted session secret,
the signature, the transcript (which contains the encrypted secret), the session id (its
hash) and every rsa-oaep phase-3 frame differ from run to run; everything else is the same
on every run. The script
checks each randomized value with the example keys (decrypts, verifies) and prints the
result, and exits non-zero if any check fails.

    scripts/protocol_example.py                    # both suites
    scripts/protocol_example.py --suite rsa-oaep   # one suite
    scripts/protocol_example.py --generate-keys    # make docs/example-keys/ (once)
"""

from __future__ import annotations

import argparse
import base64
import hmac
import json
import struct
import sys
from hashlib import sha256
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

from messenger.wire import handshake, jim, kex, keys, suites  # noqa: E402

KEY_DIR = ROOT / "docs" / "example-keys"
SERVER_KEY_FILE = KEY_DIR / "server.TEST-ONLY.key.pem"
CLIENT_KEY_FILE = KEY_DIR / "client.TEST-ONLY.key.pem"
KEY_WARNING = (
    "TEST-ONLY KEY for the worked example in docs/PROTOCOL.md (scripts/protocol_example.py).\n"
    "It is published: never use it for a real server or client.\n\n"
)

SHARED_SECRET = b"example shared secret"
SERVER_NONCE = bytes(range(0x00, 0x20))
CLIENT_NONCE = bytes(range(0x20, 0x40))
SESSION_SECRET = bytes(range(0x40, 0x60))
CLIENT_X25519 = bytes(range(0x60, 0x80))   # the client's ephemeral X25519 private key
SERVER_X25519 = bytes(range(0x80, 0xa0))   # the server's ephemeral X25519 private key
REQUEST_ID = "9f86d081884c7d659a2feaa0c55ad015"
REQUEST = {"action": "register", "id": REQUEST_ID, "time": 1767225600,
           "user": {"account_name": "alice", "password": "correct horse battery",
                    "email": "alice@example.org"}}
REPLY = {"response": 201, "id": REQUEST_ID, "time": 1767225600.5}

WIDTH = 64  # hex digits per line


class Report:
    """Prints the example and remembers whether every check passed."""

    def __init__(self) -> None:
        self.failures = 0

    def line(self, text: str = "") -> None:
        print(text)

    def hex(self, label: str, data: bytes, indent: int = 4) -> None:
        """``label`` and the lowercase hex of ``data``, 32 bytes per line."""
        digits = data.hex()
        pad = " " * indent
        head = f"{pad}{label} ({len(data)} bytes):"
        if len(digits) <= WIDTH and len(head) + 1 + len(digits) <= 100:
            print(f"{head} {digits}")
            return
        print(head)
        for start in range(0, len(digits), WIDTH):
            print(f"{pad}  {digits[start:start + WIDTH]}")

    def check(self, what: str, ok: bool) -> None:
        if not ok:
            self.failures += 1
        print(f"    check: {what}: {'ok' if ok else 'FAILED'}")


def load_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def generate_keys() -> None:
    """Write the two TEST-ONLY key files unless they exist."""
    KEY_DIR.mkdir(parents=True, exist_ok=True)
    for path in (SERVER_KEY_FILE, CLIENT_KEY_FILE):
        if path.exists():
            print(f"{path.relative_to(ROOT)} exists; not replaced")
            continue
        path.write_bytes(KEY_WARNING.encode("ascii") + keys.private_pem(keys.generate(2048)))
        print(f"wrote {path.relative_to(ROOT)}")


def scripted(*values: bytes):
    """A ``random`` callable for the handshakes that hands out the fixed values in order."""
    pending = list(values)

    def random(size: int) -> bytes:
        value = pending.pop(0)
        assert len(value) == size
        return value

    return random


def frame(report: Report, number: int, title: str, payload: bytes,
          varies: bool = False) -> None:
    """Print one plain handshake frame: its JSON and its bytes on the wire."""
    report.line(f"[{number}] {title}{'   (varies per run)' if varies else ''}")
    report.line(f"    json: {payload.decode('utf-8')}")
    report.hex("wire = length || payload", struct.pack(">I", len(payload)) + payload)


def outline_der(report: Report, der: bytes) -> None:
    """Print the offset, header and size of each element of the transcript SEQUENCE."""
    names = ("protocol", "serverNonce", "clientNonce", "clientKey", "serverKey",
             "offeredSuites", "suite", "encryptedSecret", "clientShare", "serverShare")

    def header(at: int) -> tuple[int, int, int]:
        tag, first = der[at], der[at + 1]
        if first < 0x80:
            return tag, 2, first
        count = first & 0x7F
        return tag, 2 + count, int.from_bytes(der[at + 2:at + 2 + count], "big")

    tag, size, length = header(0)
    report.line(f"    outline: 0000 {der[:size].hex()} SEQUENCE, {length} content bytes")
    at = size
    for name in names:
        tag, size, length = header(at)
        kind = {0x0C: "UTF8String", 0x04: "OCTET STRING", 0x30: "SEQUENCE OF UTF8String"}[tag]
        value = der[at + size:at + size + length]
        shown = f" = {value.decode('utf-8')!r}" if tag == 0x0C else ""
        if tag == 0x30:
            shown = " = " + repr(list(handshake.parse_transcript(der).offered_suites))
        report.line(f"             {at:04x} {der[at:at + size].hex():<8} {name}: {kind},"
                    f" {length} bytes{shown}")
        at += size + length


def x25519_share(private: bytes) -> bytes:
    """The public share of a raw X25519 private key."""
    return kex.share_of(X25519PrivateKey.from_private_bytes(private))


def phase1(report: Report, server: handshake.ServerHandshake,
           client: handshake.ClientHandshake) -> bytes:
    """Frames [1] to [3]; returns frame [3] (for the client)."""
    report.line()
    report.line("Phase 1: HMAC challenge (plain frames)")
    report.line()
    challenge = server.start()
    frame(report, 1, "S->C challenge", challenge)
    response, _ = client.receive(challenge)
    report.line()
    report.line("    HMAC-SHA256(key = shared secret, message = the 32 raw bytes of the server"
                " nonce):")
    report.hex("shared secret", SHARED_SECRET, 6)
    report.hex("server nonce", SERVER_NONCE, 6)
    report.line(f"      digest: {hmac.new(SHARED_SECRET, SERVER_NONCE, sha256).hexdigest()}")
    frame(report, 2, "C->S challenge_response", response)
    digest, _ = server.receive(response)
    report.line()
    report.line("    HMAC-SHA256(key = shared secret, message = the 32 raw bytes of the client"
                " nonce):")
    report.hex("client nonce", CLIENT_NONCE, 6)
    report.line(f"      digest: {hmac.new(SHARED_SECRET, CLIENT_NONCE, sha256).hexdigest()}")
    frame(report, 3, "S->C digest", digest)
    return digest


def phase2(report: Report, server: handshake.ServerHandshake,
           client: handshake.ClientHandshake, digest: bytes, offered: list[str], suite: str,
           server_key: rsa.RSAPrivateKey, client_key: rsa.RSAPrivateKey):
    """Frames [4] and [5], the transcript and its checks; returns both Established."""
    report.line()
    report.line("Phase 2: key exchange (plain frames)")
    report.line()
    report.hex("client's ephemeral X25519 private key (fixed here; random in real use)",
               CLIENT_X25519)
    report.hex("client share = its X25519 public key", x25519_share(CLIENT_X25519))
    exchange, _ = client.receive(digest)
    frame(report, 4, "C->S key_exchange", exchange)
    reply, server_side = server.receive(exchange)
    report.line()
    frame(report, 5, "S->C key exchange reply", reply, varies=True)
    nothing, client_side = client.receive(reply)
    assert nothing is None and client_side is not None and server_side is not None

    message = jim.decode(reply)
    encrypted = base64.b64decode(message["secret"])
    signature = base64.b64decode(message["signature"])
    server_share = base64.b64decode(message["share"])
    report.line()
    report.hex("server share = X25519 public key of the server's ephemeral private key",
               server_share)
    report.check("server share is that of the fixed server X25519 key",
                 server_share == x25519_share(SERVER_X25519))
    report.hex("encrypted secret = RSA-OAEP-SHA256(client key, session secret)   (varies)",
               encrypted)
    recovered = client_key.decrypt(encrypted, suites.OAEP)
    report.hex("session secret S (decrypted with the client's private key)", recovered)
    report.check("session secret decrypts to the fixed value", recovered == SESSION_SECRET)

    fields = handshake.TranscriptFields(
        SERVER_NONCE, CLIENT_NONCE, keys.public_der(client_key.public_key()),
        keys.public_der(server_key.public_key()), tuple(offered), suite, encrypted,
        x25519_share(CLIENT_X25519), server_share)
    der = handshake.transcript(fields)
    report.line()
    report.hex("transcript DER   (varies: it holds the encrypted secret)", der)
    outline_der(report, der)
    report.check("transcript parses back to its fields",
                 handshake.parse_transcript(der) == fields)
    report.hex("signature = RSA-PSS(SHA-256, MGF1-SHA-256, salt 32) by the server key"
               "   (varies)", signature)
    try:
        server_key.public_key().verify(signature, der, handshake.PSS, hashes.SHA256())
        verified = True
    except Exception:
        verified = False
    report.check("signature verifies with the server's public key", verified)
    session = sha256(der).digest()
    report.hex("session id = SHA-256(transcript DER)   (varies)", session)
    report.check("both sides hold this session id",
                 server_side.session_id == client_side.session_id == session)
    report.line(f"    server fingerprint: {client_side.server_fingerprint}")
    return server_side, client_side, session


def key_derivation(report: Report, suite: str) -> dict[str, bytes]:
    """Z, IKM and the suite's HKDF keys (nothing here varies from run to run)."""
    report.line()
    report.line("Key derivation: HKDF-SHA256, length 32, IKM = S || Z, salt = server nonce ||"
                " client nonce, info = 'messenger/2 ' + label")
    report.hex("S = the RSA-carried session secret", SESSION_SECRET)
    client_private = X25519PrivateKey.from_private_bytes(CLIENT_X25519)
    server_private = X25519PrivateKey.from_private_bytes(SERVER_X25519)
    report.hex("client's ephemeral X25519 private key", CLIENT_X25519)
    report.hex("server's ephemeral X25519 private key", SERVER_X25519)
    z = kex.shared_secret(client_private, x25519_share(SERVER_X25519))
    report.hex("Z = X25519(client private key, server share)", z)
    report.check("X25519(server private key, client share) is the same Z",
                 kex.shared_secret(server_private, x25519_share(CLIENT_X25519)) == z)
    ikm = SESSION_SECRET + z
    report.hex("IKM = S || Z", ikm)
    report.hex("salt", SERVER_NONCE + CLIENT_NONCE)
    labels = (("aes-256-gcm c2s", "aes-256-gcm s2c") if suite == suites.AES_GCM
              else ("rsa-oaep mac c2s", "rsa-oaep mac s2c", "rsa-oaep enc c2s",
                    "rsa-oaep enc s2c"))
    derived = {}
    for label in labels:
        derived[label] = handshake.derive_key(ikm, SERVER_NONCE, CLIENT_NONCE, label)
        report.hex(f"info {('messenger/2 ' + label)!r} ->", derived[label])
    return derived


def gcm_frame(report: Report, derived: dict[str, bytes], direction: int, plaintext: bytes,
              sealed: bytes) -> None:
    key = derived[f"aes-256-gcm {'c2s' if direction == 1 else 's2c'}"]
    nonce = bytes([direction, 0, 0, 0]) + struct.pack(">Q", 0)
    report.hex("nonce = direction || 000000 || counter (uint64 BE)", nonce)
    report.hex("ciphertext", sealed[:-16])
    report.hex("GCM tag", sealed[-16:])
    report.check("payload = AES-256-GCM(key, nonce, plaintext, no AAD)",
                 sealed == AESGCM(key).encrypt(nonce, plaintext, None))


def oaep_frame(report: Report, derived: dict[str, bytes], direction: int, plaintext: bytes,
               sealed: bytes, session: bytes, receiver_key: rsa.RSAPrivateKey) -> None:
    way = "c2s" if direction == 1 else "s2c"
    size = (receiver_key.key_size + 7) // 8
    iv = suites.ctr_iv(direction, 0)
    report.hex("CTR initial block = direction || 000000 || counter (uint64 BE) || 00000000",
               iv)
    cipher = Cipher(algorithms.AES(derived[f"rsa-oaep enc {way}"]), modes.CTR(iv))
    masked = cipher.encryptor().update(plaintext)
    report.hex(f"masked = AES-256-CTR(key 'rsa-oaep enc {way}', block, plaintext)", masked)
    ciphertext, tag = sealed[:-32], sealed[-32:]
    report.line(f"    receiver modulus k = {size} bytes: chunks of at most"
                f" {size - 66} masked bytes, {len(ciphertext) // size} chunk(s)")
    pieces = []
    for index in range(len(ciphertext) // size):
        label = suites.oaep_label(session, direction, 0, index)
        report.hex(f"label of chunk {index} = session id || direction || counter (uint64 BE)"
                   " || index (uint32 BE)", label)
        chunk = ciphertext[index * size:(index + 1) * size]
        report.hex(f"chunk {index} = RSA-OAEP-SHA256(receiver key, label, piece)", chunk)
        pieces.append(receiver_key.decrypt(chunk, suites.oaep_padding(label)))
    report.hex(f"tag = HMAC-SHA256(key 'rsa-oaep mac {way}', direction || counter64 ||"
               " chunks)", tag)
    expected = hmac.new(derived[f"rsa-oaep mac {way}"], bytes([direction])
                        + struct.pack(">Q", 0) + ciphertext, sha256).digest()
    report.check("tag matches", hmac.compare_digest(tag, expected))
    report.check("chunks decrypt, each with its label, to the masked plaintext",
                 b"".join(pieces) == masked)
    try:
        receiver_key.decrypt(ciphertext[:size], suites.oaep_padding(
            suites.oaep_label(session, direction, 1, 0)))
        moved = True
    except ValueError:
        moved = False
    report.check("chunk 0 does not decrypt with frame 1's label", not moved)


def phase3(report: Report, suite: str, derived: dict[str, bytes], session: bytes,
           server_side, client_side, server_key: rsa.RSAPrivateKey,
           client_key: rsa.RSAPrivateKey) -> None:
    report.line()
    report.line("Phase 3: the first encrypted frame in each direction")
    request = jim.encode(REQUEST)
    answer = jim.encode(REPLY)
    for number, (direction, name, plaintext, sender, receiver) in enumerate((
            (suites.CLIENT_TO_SERVER, "C->S", request, client_side, server_side),
            (suites.SERVER_TO_CLIENT, "S->C", answer, server_side, client_side)), start=6):
        sealed = sender.channel.seal(plaintext)
        report.line()
        report.line(f"[{number}] {name} frame 0 (direction {direction}, counter 0)"
                    f"{'   (varies per run)' if suite == suites.RSA_OAEP else ''}")
        report.line(f"    plaintext json: {plaintext.decode('utf-8')}")
        report.line(f"    plaintext length: {len(plaintext)} bytes")
        if suite == suites.AES_GCM:
            gcm_frame(report, derived, direction, plaintext, sealed)
        else:
            oaep_frame(report, derived, direction, plaintext, sealed, session,
                       server_key if direction == 1 else client_key)
        report.hex("wire = length || payload", struct.pack(">I", len(sealed)) + sealed)
        report.check("the receiving side opens it", receiver.channel.open(sealed) == plaintext)
    report.line()


def run_suite(report: Report, suite: str, server_key: rsa.RSAPrivateKey,
              client_key: rsa.RSAPrivateKey) -> None:
    # The aes-256-gcm run offers what the client offers by default (both suites, so the
    # server's preference decides); the rsa-oaep run offers rsa-oaep alone.
    offered = list(suites.SUITES) if suite == suites.AES_GCM else [suite]
    report.line("=" * 96)
    report.line(f"Suite {suite}: the client offers {json.dumps(offered)}")
    report.line("=" * 96)
    server = handshake.ServerHandshake(
        SHARED_SECRET, server_key, random=scripted(SERVER_NONCE, SESSION_SECRET, SERVER_X25519))
    client = handshake.ClientHandshake(SHARED_SECRET, client_key, suites=offered,
                                       random=scripted(CLIENT_NONCE, CLIENT_X25519))
    digest = phase1(report, server, client)
    server_side, client_side, session = phase2(report, server, client, digest, offered, suite,
                                               server_key, client_key)
    derived = key_derivation(report, suite)
    phase3(report, suite, derived, session, server_side, client_side, server_key, client_key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=[*suites.SUITES, "all"], default="all")
    parser.add_argument("--generate-keys", action="store_true",
                        help="write the TEST-ONLY key files if they are missing, then exit")
    options = parser.parse_args(argv)
    if options.generate_keys:
        generate_keys()
        return 0
    server_key, client_key = load_key(SERVER_KEY_FILE), load_key(CLIENT_KEY_FILE)
    report = Report()
    report.line("messenger/2 worked example (scripts/protocol_example.py)")
    report.line(f"server key: {SERVER_KEY_FILE.relative_to(ROOT)}  (TEST ONLY, 2048-bit)")
    report.line(f"  fingerprint {keys.fingerprint(server_key.public_key())}")
    report.line(f"client key: {CLIENT_KEY_FILE.relative_to(ROOT)}  (TEST ONLY, 2048-bit)")
    report.line(f"  fingerprint {keys.fingerprint(client_key.public_key())}")
    report.line(f"shared secret: {SHARED_SECRET!r} (hex {SHARED_SECRET.hex()})")
    report.line(f"server nonce: {SERVER_NONCE.hex()}")
    report.line(f"client nonce: {CLIENT_NONCE.hex()}")
    report.line(f"session secret: {SESSION_SECRET.hex()}")
    report.line(f"client X25519 private key: {CLIENT_X25519.hex()}")
    report.line(f"server X25519 private key: {SERVER_X25519.hex()}")
    report.line("Hex is lowercase; 'wire' shows the 4-byte big-endian length then the payload.")
    report.line()
    for suite in (suites.SUITES if options.suite == "all" else (options.suite,)):
        run_suite(report, suite, server_key, client_key)
    report.line("all checks passed" if not report.failures
                else f"{report.failures} check(s) FAILED")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
