"""Tests for messenger.client.known_servers: pinning server keys per address."""

from __future__ import annotations

import stat
from pathlib import Path

from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

from messenger.client.errors import ServerKeyChanged
from messenger.client.known_servers import KnownServers, format_address, parse_address
from messenger.wire import keys
from tests.support.keys import rsa_key


def logged(testcase: unittest.TestCase) -> list[str]:
    """The text of every log event from now until the test ends."""
    texts: list[str] = []

    def observe(event: dict) -> None:
        texts.append(formatEvent(event))
    globalLogPublisher.addObserver(observe)
    testcase.addCleanup(globalLogPublisher.removeObserver, observe)
    return texts


class AddressTests(unittest.TestCase):
    def test_format_lowercases_and_brackets_ipv6(self):
        """Addresses are keyed lowercase, IPv6 in brackets, with the port."""
        self.assertEqual(format_address("Chat.Example.ORG.", 7777), "chat.example.org:7777")
        self.assertEqual(format_address("2001:DB8::7", 7777), "[2001:db8::7]:7777")
        self.assertEqual(format_address("[::1]", 1), "[::1]:1")
        self.assertEqual(format_address("127.0.0.1", 80), "127.0.0.1:80")

    def test_parse_forms(self):
        """host, host:port, [v6]:port and bare IPv6 all parse; the port defaults to 7777."""
        self.assertEqual(parse_address("chat.example.org"), ("chat.example.org", 7777))
        self.assertEqual(parse_address("localhost:9000"), ("localhost", 9000))
        self.assertEqual(parse_address("[::1]:9000"), ("::1", 9000))
        self.assertEqual(parse_address("[::1]"), ("::1", 7777))
        self.assertEqual(parse_address("2001:db8::7"), ("2001:db8::7", 7777))

    def test_parse_refuses_bad_ports(self):
        """A port that is not 1 to 65535, or no host, is an error that says so."""
        for text in ("host:0", "host:70000", "host:http", ":7777", "[::1]x"):
            self.assertRaises(ValueError, parse_address, text)


class KnownServersTests(unittest.TestCase):
    def setUp(self):
        self.path = Path(self.mktemp()) / "messenger" / "known_servers"
        self.key1 = rsa_key("server", 2048).public_key()
        self.key2 = rsa_key("server-2", 2048).public_key()

    def test_first_use_pins_the_key(self):
        """An unknown address accepts the key and records it."""
        known = KnownServers(self.path).load()
        outcome = known.check("host:1", self.key1)
        self.assertTrue(outcome.first_use)
        self.assertEqual(known.pinned("host:1"), keys.fingerprint(self.key1))

    def test_same_key_passes_quietly(self):
        """The pinned key is accepted without changing anything."""
        known = KnownServers(self.path).load()
        known.pin("host:1", keys.fingerprint(self.key1))
        outcome = known.check("HOST:1", self.key1)
        self.assertFalse(outcome.changed_file)

    def test_changed_key_is_refused_with_a_helpful_message(self):
        """Another key is refused; the message names the address, both fingerprints, the
        file and how to accept the new key on purpose."""
        known = KnownServers(self.path).load()
        known.pin("host:1", keys.fingerprint(self.key1))
        error = self.assertRaises(ServerKeyChanged, known.check, "host:1", self.key2)
        text = str(error)
        for part in ("server key changed", "host:1", keys.fingerprint(self.key1),
                     keys.fingerprint(self.key2), str(self.path), "--accept-new-key"):
            self.assertIn(part, text)
        self.assertEqual(known.pinned("host:1"), keys.fingerprint(self.key1))

    def test_accept_new_key_replaces_the_pin(self):
        """With accept_new_key the new key is pinned and the old one reported."""
        known = KnownServers(self.path).load()
        known.pin("host:1", keys.fingerprint(self.key1))
        outcome = known.check("host:1", self.key2, accept_new_key=True)
        self.assertEqual(outcome.replaced, keys.fingerprint(self.key1))
        self.assertEqual(known.pinned("host:1"), keys.fingerprint(self.key2))

    def test_save_and_load_round_trip_with_mode_0600(self):
        """Pins survive a save and a load; the file is kept readable by its owner only."""
        known = KnownServers(self.path).load()
        known.check("a:1", self.key1)
        known.check("[::1]:2", self.key2)
        known.save()
        self.assertEqual(stat.S_IMODE(self.path.stat().st_mode), 0o600)
        self.path.chmod(0o644)
        again = KnownServers(self.path).load()
        self.assertEqual(stat.S_IMODE(self.path.stat().st_mode), 0o600)
        self.assertEqual(again.pinned("a:1"), keys.fingerprint(self.key1))
        self.assertEqual(again.pinned("[::1]:2"), keys.fingerprint(self.key2))

    def test_rewrite_keeps_comments_and_drops_forgotten_lines(self):
        """A rewrite keeps the user's comments, updates changed pins in place and drops
        removed ones; lines it cannot read are kept and ignored."""
        fp1, fp2 = keys.fingerprint(self.key1), keys.fingerprint(self.key2)
        self.path.parent.mkdir(parents=True)
        self.path.write_text(f"# my servers\nwork:1 {fp1}\nhome:2 {fp1}\ngarbage line\n")
        log = logged(self)
        known = KnownServers(self.path).load()
        self.assertTrue(any("Ignoring line 4" in text for text in log))
        self.assertIsNone(known.pinned("garbage"))
        known.pin("work:1", fp2)
        known.forget("home:2")
        known.save()
        self.assertEqual(self.path.read_text(),
                         f"# my servers\nwork:1 {fp2}\ngarbage line\n")

    def test_missing_file_means_nothing_pinned(self):
        """No file yet: every address is unknown."""
        self.assertIsNone(KnownServers(self.path).load().pinned("host:1"))

    def test_pin_refuses_a_malformed_fingerprint(self):
        """Only sha256:<64 hex> fingerprints can be pinned."""
        known = KnownServers(self.path)
        self.assertRaises(ValueError, known.pin, "host:1", "md5:abc")
