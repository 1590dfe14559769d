"""Tests for messenger.client.tls that are the client's alone: how a host becomes the
name checked and sent (SNI). Trust modes, readable failures and real TLS over loopback
are tested with the server side in tests/server/test_tls.py."""

from __future__ import annotations

from twisted.trial import unittest

from messenger.client.tls import TlsSettingsError, _parse_host, client_tls_options


class HostTests(unittest.TestCase):
    def test_names_are_checked_and_sent_as_sni(self):
        """A DNS name: checked as written (no trailing dot), sent in ASCII."""
        self.assertEqual(_parse_host("chat.example.org."),
                         ("chat.example.org", False, b"chat.example.org"))
        self.assertEqual(_parse_host("bücher.example")[2], b"xn--bcher-kva.example")

    def test_ip_literals_are_checked_as_addresses_without_sni(self):
        """An IP literal (v4 or bracketed v6) is checked as an address, no SNI."""
        self.assertEqual(_parse_host("10.0.0.5"), ("10.0.0.5", True, None))
        self.assertEqual(_parse_host("[::1]"), ("::1", True, None))

    def test_nonsense_hosts_are_settings_errors(self):
        """An empty host or an impossible label is refused before connecting."""
        for host in ("", "  ", "-bad-.example", "a" * 64 + ".example"):
            self.assertRaises(TlsSettingsError, _parse_host, host)
        self.assertRaises(TlsSettingsError, client_tls_options, "")
