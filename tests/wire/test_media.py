"""Tests for messenger.wire.media: UDP packet layouts, sealing, replay window."""

from __future__ import annotations

import hmac
import random
import struct
from hashlib import sha256

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from twisted.trial.unittest import SynchronousTestCase

from messenger.wire import media
from messenger.wire.media import (
    AUDIO,
    BYE,
    HELLO,
    HELLO_ACK,
    PROBE,
    PROBE_ACK,
    CallCipher,
    MalformedPacket,
    ReplayWindow,
)

CALL_ID = bytes.fromhex("0102030405060708")
KEY = bytes(range(32))
TOKEN = bytes(range(100, 132))


class ConstantsTests(SynchronousTestCase):
    """The numbers docs/CALLS.md promises."""

    def test_type_bytes(self) -> None:
        """The first byte is version 1 in the high nibble and the type in the low one."""
        self.assertEqual([media.type_byte(t) for t in (HELLO, HELLO_ACK, PROBE, PROBE_ACK,
                                                       AUDIO, BYE)],
                         [0x11, 0x12, 0x13, 0x14, 0x15, 0x16])

    def test_sizes(self) -> None:
        """Call ids, keys, tokens, tags and the sealed header have the documented sizes."""
        self.assertEqual((media.CALL_ID_SIZE, media.KEY_SIZE, media.TOKEN_SIZE,
                          media.TAG_SIZE, media.HEADER_SIZE, media.MIN_SEALED),
                         (8, 32, 32, 16, 20, 36))

    def test_fresh_secrets(self) -> None:
        """new_call_id/new_call_key/new_token are random and of the right size."""
        self.assertEqual(len(media.new_call_id()), 8)
        self.assertEqual(len(media.new_call_key()), 32)
        self.assertEqual(len(media.new_token()), 32)
        self.assertNotEqual(media.new_token(), media.new_token())


class PacketTypeTests(SynchronousTestCase):
    """packet_type reads the first byte and refuses everything else."""

    def test_known_types(self) -> None:
        """Each type byte maps back to its type."""
        for ptype in (HELLO, HELLO_ACK, PROBE, PROBE_ACK, AUDIO, BYE):
            self.assertEqual(media.packet_type(bytes([0x10 | ptype]) + b"x"), ptype)

    def test_refused(self) -> None:
        """Empty, another version, an unknown type and an oversized datagram are malformed."""
        for data in (b"", b"\x21abc", b"\x10abc", b"\x1fabc", b"\x15" + bytes(1500)):
            self.assertRaises(MalformedPacket, media.packet_type, data)


class EndpointTests(SynchronousTestCase):
    """The endpoint encoding: family, port, address."""

    def test_ipv4_layout(self) -> None:
        """An IPv4 endpoint is 04, port, four address bytes."""
        self.assertEqual(media.encode_endpoint(("192.0.2.7", 7777)),
                         b"\x04\x1e\x61\xc0\x00\x02\x07")

    def test_round_trip(self) -> None:
        """IPv4 and IPv6 endpoints decode to what was encoded, with the next offset."""
        for endpoint in (("127.0.0.1", 1), ("2001:db8::1", 65535)):
            data = b"xx" + media.encode_endpoint(endpoint)
            self.assertEqual(media.decode_endpoint(data, 2), (endpoint, len(data)))

    def test_names_refused(self) -> None:
        """A host name or a bad port cannot be encoded."""
        self.assertRaises(ValueError, media.encode_endpoint, ("example.org", 1))
        self.assertRaises(ValueError, media.encode_endpoint, ("127.0.0.1", 70000))

    def test_bad_encodings(self) -> None:
        """Truncated data, an unknown family and port 0 are malformed."""
        for data in (b"\x04\x00", b"\x04\x00\x01\x7f\x00", b"\x06\x00\x01" + bytes(8),
                     b"\x05\x00\x01\x7f\x00\x00\x01", b"\x04\x00\x00\x7f\x00\x00\x01"):
            self.assertRaises(MalformedPacket, media.decode_endpoint, data, 0)


class HelloTests(SynchronousTestCase):
    """HELLO: client to relay, signed with the member's token."""

    def test_layout(self) -> None:
        """A HELLO is 16 header bytes, the endpoints, zero padding up to 160 bytes (so the
        relay's answer is never bigger) and a 16-byte truncated HMAC over all of it."""
        packet = media.encode_hello(CALL_ID, 1, 7, TOKEN)
        self.assertEqual(len(packet), media.HELLO_MIN_SIZE)
        self.assertEqual(packet[:16], b"\x11\x01\x00\x00" + CALL_ID + struct.pack(">I", 7))
        self.assertEqual(packet[16:-16], bytes(128))
        self.assertEqual(packet[-16:], hmac.digest(TOKEN, packet[:-16], sha256)[:16])

    def test_unpadded_still_parses_and_padding_must_be_zero(self) -> None:
        """A HELLO without padding parses; non-zero padding is malformed."""
        body = b"\x11\x01\x00\x00" + CALL_ID + struct.pack(">I", 7)
        short = body + hmac.digest(TOKEN, body, sha256)[:16]
        self.assertEqual(media.parse_hello(short), media.Hello(CALL_ID, 1, 7, ()))
        bad = body + b"\x01" + bytes(20)
        bad += hmac.digest(TOKEN, bad, sha256)[:16]
        self.assertRaises(MalformedPacket, media.parse_hello, bad)

    def test_round_trip(self) -> None:
        """The fields, including announced local endpoints, parse back."""
        endpoints = (("10.0.0.2", 5000), ("fe80::1", 5001))
        packet = media.encode_hello(CALL_ID, 0, 3, TOKEN, endpoints)
        self.assertEqual(media.parse_hello(packet), media.Hello(CALL_ID, 0, 3, endpoints))
        self.assertTrue(media.verify_signed(packet, TOKEN))

    def test_wrong_token(self) -> None:
        """Another member's token does not verify."""
        packet = media.encode_hello(CALL_ID, 0, 3, TOKEN)
        self.assertFalse(media.verify_signed(packet, bytes(32)))

    def test_tampered(self) -> None:
        """Changing any byte breaks the tag."""
        packet = media.encode_hello(CALL_ID, 0, 3, TOKEN, (("10.0.0.2", 5000),))
        for index in range(len(packet)):
            forged = bytearray(packet)
            forged[index] ^= 0x01
            self.assertFalse(media.verify_signed(bytes(forged), TOKEN), index)

    def test_encode_refuses(self) -> None:
        """Bad call ids, member indexes and too many endpoints are programming errors."""
        self.assertRaises(ValueError, media.encode_hello, b"short", 0, 1, TOKEN)
        self.assertRaises(ValueError, media.encode_hello, CALL_ID, 2, 1, TOKEN)
        self.assertRaises(ValueError, media.encode_hello, CALL_ID, 0, 1, TOKEN,
                          (("10.0.0.1", 1),) * 5)

    def test_parse_refuses(self) -> None:
        """Short packets, other types, member 2, endpoint counts that lie are malformed."""
        good = media.encode_hello(CALL_ID, 0, 3, TOKEN, (("10.0.0.2", 5000),))
        bad = [good[:20], b"\x12" + good[1:], good[:1] + b"\x02" + good[2:],
               good[:2] + b"\x02" + good[3:], good[:2] + b"\x00" + good[3:],
               good[:2] + b"\x09" + good[3:]]
        for data in bad:
            self.assertRaises(MalformedPacket, media.parse_hello, data)


class HelloAckTests(SynchronousTestCase):
    """HELLO_ACK: relay to client, what the relay saw, signed with the member's token."""

    def test_round_trip(self) -> None:
        """Observed endpoint, peer presence and the peer's endpoints parse back."""
        peers = (("198.51.100.9", 40000), ("10.0.0.3", 5000))
        packet = media.encode_hello_ack(CALL_ID, 1, 4, TOKEN, ("203.0.113.5", 1234),
                                        True, peers)
        ack = media.parse_hello_ack(packet)
        self.assertEqual(ack, media.HelloAck(CALL_ID, 1, 4, ("203.0.113.5", 1234), True, peers))
        self.assertTrue(media.verify_signed(packet, TOKEN))
        self.assertEqual(packet[:4], b"\x12\x01\x02\x01")

    def test_without_peer(self) -> None:
        """Before the peer said HELLO the ack has no peer endpoints and the flag clear."""
        packet = media.encode_hello_ack(CALL_ID, 0, 1, TOKEN, ("127.0.0.1", 9))
        ack = media.parse_hello_ack(packet)
        self.assertFalse(ack.peer_present)
        self.assertEqual(ack.peer_endpoints, ())

    def test_parse_refuses(self) -> None:
        """A HELLO is not a HELLO_ACK, and truncation is malformed."""
        packet = media.encode_hello_ack(CALL_ID, 0, 1, TOKEN, ("127.0.0.1", 9))
        self.assertRaises(MalformedPacket, media.parse_hello_ack, packet[:30])
        self.assertRaises(MalformedPacket, media.parse_hello_ack,
                          media.encode_hello(CALL_ID, 0, 1, TOKEN, (("10.0.0.1", 2),)))


class SealedTests(SynchronousTestCase):
    """PROBE, PROBE_ACK, AUDIO, BYE: clear header, AES-256-GCM payload."""

    def setUp(self) -> None:
        self.cipher = CallCipher(KEY)

    def test_header_layout(self) -> None:
        """type, sender, codec, flags, call id, seq, stamp at the documented offsets."""
        packet = self.cipher.seal(AUDIO, 1, CALL_ID, 258, 0x01020304, b"voice", codec=1)
        self.assertEqual(packet[:20], b"\x15\x01\x01\x00" + CALL_ID
                         + b"\x00\x00\x01\x02" + b"\x01\x02\x03\x04")
        self.assertEqual(len(packet), 20 + 5 + 16)

    def test_documented_nonce(self) -> None:
        """A third party opens the payload with nonce = type, sender, 6 zeros, seq."""
        packet = self.cipher.seal(AUDIO, 1, CALL_ID, 258, 99, b"voice")
        nonce = b"\x15\x01" + bytes(6) + struct.pack(">I", 258)
        self.assertEqual(AESGCM(KEY).decrypt(nonce, packet[20:], packet[:20]), b"voice")

    def test_round_trip(self) -> None:
        """open gives back the payload; parse_header the clear fields."""
        packet = self.cipher.seal(PROBE_ACK, 0, CALL_ID, 5, 17, b"echo")
        self.assertEqual(self.cipher.open(packet), b"echo")
        self.assertEqual(media.parse_header(packet),
                         media.Header(PROBE_ACK, 0, 0, 0, CALL_ID, 5, 17))

    def test_wrong_key(self) -> None:
        """A packet sealed under another key does not open."""
        packet = CallCipher(bytes(32)).seal(AUDIO, 0, CALL_ID, 1, 0, b"x")
        self.assertIsNone(self.cipher.open(packet))

    def test_tampering(self) -> None:
        """Any changed byte, header included, makes the packet fail to open."""
        packet = self.cipher.seal(AUDIO, 0, CALL_ID, 1, 0, b"payload")
        for index in range(len(packet)):
            forged = bytearray(packet)
            forged[index] ^= 0x80
            self.assertIsNone(self.cipher.open(bytes(forged)), index)

    def test_nonces_differ_by_type_and_sender(self) -> None:
        """Same seq, other type or sender: a different nonce, so a different ciphertext."""
        bodies = {self.cipher.seal(ptype, sender, CALL_ID, 0, 0, bytes(16))[20:]
                  for ptype in (PROBE, PROBE_ACK, AUDIO, BYE) for sender in (0, 1)}
        self.assertEqual(len(bodies), 8)

    def test_seal_refuses(self) -> None:
        """HELLO is not sealed; payloads over 1200 bytes and bad keys are refused."""
        self.assertRaises(ValueError, self.cipher.seal, HELLO, 0, CALL_ID, 0)
        self.assertRaises(ValueError, self.cipher.seal, AUDIO, 0, CALL_ID, 0, 0, bytes(1201))
        self.assertRaises(ValueError, CallCipher, bytes(16))

    def test_parse_header_refuses(self) -> None:
        """Too short, too long, not sealed, sender 2 are malformed."""
        good = self.cipher.seal(AUDIO, 0, CALL_ID, 1, 0, b"")
        for data in (good[:35], good + bytes(1500), b"\x11" + good[1:],
                     good[:1] + b"\x02" + good[2:], b"\x25" + good[1:]):
            self.assertRaises(MalformedPacket, media.parse_header, data)



class FuzzTests(SynchronousTestCase):
    """Garbage never escapes the parsers except as MalformedPacket."""

    def test_random_and_mutated(self) -> None:
        """Random bytes and mutations of valid packets only ever raise MalformedPacket."""
        rng = random.Random(1234)
        cipher = CallCipher(KEY)
        seeds = [media.encode_hello(CALL_ID, 0, 1, TOKEN, (("10.0.0.1", 5),)),
                 media.encode_hello_ack(CALL_ID, 1, 1, TOKEN, ("::1", 5), True,
                                        (("10.0.0.1", 5),)),
                 cipher.seal(AUDIO, 0, CALL_ID, 1, 1, b"abc")]
        parsers = (media.packet_type, media.parse_hello, media.parse_hello_ack,
                   media.parse_header)
        outcomes = {"ok": 0, "malformed": 0}
        for _ in range(3000):
            if rng.random() < 0.3:
                data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 80)))
            else:
                data = bytearray(rng.choice(seeds))
                for _ in range(rng.randrange(1, 4)):
                    data[rng.randrange(len(data))] = rng.getrandbits(8)
                data = bytes(data[:rng.randrange(len(data) + 1)])
            for parse in parsers:
                try:
                    parse(data)
                    outcomes["ok"] += 1
                except MalformedPacket:
                    outcomes["malformed"] += 1
            self.assertIn(media.verify_signed(data, TOKEN), (True, False))
            if len(data) >= media.MIN_SEALED:
                self.assertIsNone(cipher.open(data[:20] + bytes(len(data) - 20)))
        self.assertGreater(outcomes["malformed"], 1000)
        self.assertGreater(outcomes["ok"], 100)


class ReplayWindowTests(SynchronousTestCase):
    """The sliding bitmap over sequence numbers."""

    def test_fresh_once(self) -> None:
        """A number is accepted once, a repeat refused."""
        window = ReplayWindow()
        self.assertTrue(window.accept(0))
        self.assertFalse(window.accept(0))
        self.assertTrue(window.accept(1))

    def test_out_of_order_within_window(self) -> None:
        """Older numbers inside the window are accepted once each, in any order."""
        window = ReplayWindow(64)
        self.assertTrue(window.accept(100))
        self.assertTrue(window.accept(40))
        self.assertTrue(window.accept(99))
        self.assertFalse(window.accept(40))
        self.assertFalse(window.accept(99))

    def test_too_old(self) -> None:
        """A number size or more below the highest is refused."""
        window = ReplayWindow(64)
        window.accept(200)
        self.assertFalse(window.check(136))
        self.assertTrue(window.check(137))

    def test_big_jump(self) -> None:
        """A jump beyond the window forgets the old bitmap but refuses the old numbers."""
        window = ReplayWindow(128)
        for seq in range(10):
            window.accept(seq)
        self.assertTrue(window.accept(1000))
        self.assertFalse(window.check(5))
        self.assertTrue(window.check(999))
        self.assertFalse(window.check(1000))

    def test_check_does_not_record(self) -> None:
        """check alone leaves the window unchanged (a forged packet cannot move it)."""
        window = ReplayWindow()
        window.accept(5)
        self.assertTrue(window.check(500))
        self.assertTrue(window.check(4))
        self.assertEqual(window.top, 5)

    def test_matches_a_set(self) -> None:
        """Against a plain set with the same age limit, on a random stream, it agrees."""
        rng = random.Random(7)
        window = ReplayWindow(128)
        seen: set[int] = set()
        top = -1
        for _ in range(5000):
            seq = max(0, top + rng.randrange(-150, 20))
            expected = seq not in seen and (seq > top or top - seq < 128)
            self.assertEqual(window.accept(seq), expected)
            if expected:
                seen.add(seq)
                top = max(top, seq)


class MappedAddressTests(SynchronousTestCase):
    """Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d."""

    def test_unmap_and_map(self) -> None:
        """Mapped addresses become plain IPv4 and back; others are unchanged."""
        self.assertEqual(media.unmap_endpoint(("::ffff:10.0.0.2", 5)), ("10.0.0.2", 5))
        self.assertEqual(media.unmap_endpoint(("2001:db8::1", 5)), ("2001:db8::1", 5))
        self.assertEqual(media.map_endpoint(("10.0.0.2", 5)), ("::ffff:10.0.0.2", 5))
        self.assertEqual(media.map_endpoint(("::1", 5)), ("::1", 5))
