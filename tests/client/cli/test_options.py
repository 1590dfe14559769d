"""Tests for messenger.client.cli.options: the command line and the settings."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from twisted.trial import unittest

from messenger.client import cli
from messenger.client.credentials import CredentialStore, Sessions


class ParserTests(unittest.TestCase):
    def parse(self, *argv: str) -> argparse.Namespace:
        return cli.build_parser().parse_args(list(argv))

    def test_every_command_of_the_issue_exists(self):
        """register, login, logout, contacts, add, search, send, history, broadcast and
        tail all parse, with their arguments."""
        self.assertEqual(self.parse("send", "bob", "hello", "there").text,
                         ["hello", "there"])
        self.assertEqual(self.parse("history", "bob", "--limit", "5").limit, 5)
        self.assertEqual(self.parse("register", "al", "--email", "a@b.org").email, "a@b.org")
        self.assertEqual(self.parse("tail", "--count", "2").count, 2)
        for argv in (["login", "al"], ["logout"], ["contacts"], ["add", "bob"],
                     ["search", "bo"], ["broadcast", "hi", "all"]):
            self.assertEqual(self.parse(*argv).command, argv[0])

    def test_global_options(self):
        """--server, --secret-file, --tls, --pin-cert, --accept-new-key and --json."""
        args = self.parse("--server", "h:1", "--secret-file", "s", "--tls", "--pin-cert",
                          "c.pem", "--accept-new-key", "--json", "contacts")
        self.assertEqual((args.server, args.secret_file, args.tls, args.pin_cert,
                          args.accept_new_key, args.json),
                         ("h:1", "s", True, "c.pem", True, True))

    def test_ca_file_and_pin_cert_exclude_each_other(self):
        """Only one TLS trust mode can be given."""
        self.patch(sys, "stderr", io.StringIO())
        error = self.assertRaises(SystemExit, self.parse, "--ca-file", "a", "--pin-cert",
                                  "b", "contacts")
        self.assertEqual(error.code, 2)


class SettingsTests(unittest.TestCase):
    def setUp(self):
        self.config = Path(self.mktemp())
        self.store = CredentialStore(self.config)
        self.secret = self.config / "secret"
        self.store.ensure_dir()
        self.secret.write_bytes(b"  s3cret \n")

    def settings(self, *argv: str, environ: dict[str, str] | None = None) -> cli.Settings:
        args = cli.build_parser().parse_args(["--config-dir", str(self.config), *argv])
        return cli.Settings(args, environ or {})

    def test_defaults_come_from_the_last_login(self):
        """Without --server the last server logged in to is used, with its secret file."""
        sessions = Sessions()
        sessions.remember_login("chat.example.org:9000", "alice", "t", None)
        other = self.config / "other-secret"
        other.write_bytes(b"other\n")
        sessions.server("chat.example.org:9000").secret_file = str(other)
        self.store.save_sessions(sessions)
        settings = self.settings("contacts")
        self.assertEqual((settings.host, settings.port), ("chat.example.org", 9000))
        self.assertEqual(settings.secret, b"other")

    def test_secret_is_stripped_and_defaults_to_the_config_dir(self):
        """The secret file's content is stripped; CONFIG_DIR/secret is the last resort."""
        settings = self.settings("--server", "h:1", "contacts")
        self.assertEqual((settings.secret, settings.address), (b"s3cret", "h:1"))

    def test_missing_secret_file_is_a_usage_error(self):
        """No secret file: a one-line error naming the option, exit status 2."""
        error = self.assertRaises(cli.CliError, self.settings, "--secret-file",
                                  str(self.config / "nope"), "contacts")
        self.assertEqual(error.status, cli.EXIT_USAGE)
        self.assertIn("--secret-file", error.message)

    def test_trust_options_need_tls(self):
        """--pin-cert without --tls is refused rather than ignored."""
        error = self.assertRaises(cli.CliError, self.settings, "--pin-cert", "x", "contacts")
        self.assertIn("--tls", error.message)

    def test_bad_server_address(self):
        """A malformed --server is a usage error."""
        error = self.assertRaises(cli.CliError, self.settings, "--server", "h:99999",
                                  "contacts")
        self.assertEqual(error.status, cli.EXIT_USAGE)

    def test_password_from_file_or_environment(self):
        """--password-file wins over $MESSENGER_PASSWORD; only the line end is removed."""
        pw_file = self.config / "pw"
        pw_file.write_text(" spaced pw \n")
        args = cli.build_parser().parse_args(["login", "al", "--password-file", str(pw_file)])
        self.assertEqual(cli.read_password(args, {"MESSENGER_PASSWORD": "env"}), " spaced pw ")
        args = cli.build_parser().parse_args(["login", "al"])
        self.assertEqual(cli.read_password(args, {"MESSENGER_PASSWORD": "env"}), "env")
