"""messenger-cli's receipts commands end to end: the CLI as child processes against the
server run by twistd: ticks from sent to delivered to read, "read by" in a group, and the
read receipts setting (messenger.client.cli.receipts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests.client.cli.runner import CliRunner
from tests.support.twistd_server import start_twistd_server


class ReceiptCommandTests(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        self.server = yield start_twistd_server(self)
        base = Path(self.mktemp())
        self.alice, self.bob, self.cat = (CliRunner(base, name, self.server)
                                          for name in ("alice", "bob", "cat"))
        for runner, name in ((self.alice, "alice"), (self.bob, "bob"), (self.cat, "cat")):
            yield self.run_ok(runner, "--secret-file", str(self.server.secret_file),
                              "register", name, "--email", f"{name}@example.org")

    @defer.inlineCallbacks
    def run_ok(self, runner: CliRunner, *argv: str) -> Any:
        out, err, code = yield runner.run(*argv)
        self.assertEqual(code, 0, f"{argv}: exit {code}; stdout {out!r}; stderr {err!r}")
        return out

    @defer.inlineCallbacks
    def test_ticks_move_from_sent_to_delivered_to_read(self):
        """alice's messages show sent; once bob's client has fetched them, delivered;
        once bob reads the conversation, read. bob's setting turns read receipts off."""
        yield self.run_ok(self.alice, "send", "bob", "first")
        out = yield self.run_ok(self.alice, "receipts", "bob")
        self.assertTrue(out.rstrip().endswith("alice -> bob: first  [✓ sent]"), out)
        yield self.run_ok(self.bob, "contacts")          # logs in: syncs, delivers
        out = yield self.run_ok(self.alice, "receipts", "bob")
        self.assertIn("[✓✓ delivered]", out)
        out = yield self.run_ok(self.bob, "read", "alice")
        self.assertRegex(out, r"^read up to #\d+\n$")
        out = yield self.run_ok(self.alice, "receipts", "bob")
        self.assertIn("first  [✓✓ read]", out)
        out = yield self.run_ok(self.bob, "settings", "--read-receipts", "off")
        self.assertEqual(out, "read receipts: off\n")
        yield self.run_ok(self.alice, "send", "bob", "second")
        yield self.run_ok(self.bob, "read", "alice")
        out = yield self.run_ok(self.alice, "receipts", "bob")
        self.assertIn("first  [✓✓ read]", out)
        self.assertIn("second  [✓✓ delivered]", out)

    @defer.inlineCallbacks
    def test_read_by_in_a_group(self):
        """In a group, alice sees who has read each of her messages."""
        out = yield self.run_ok(self.alice, "group", "create", "Team", "--members", "bob,cat")
        gid = out.splitlines()[-1]
        yield self.run_ok(self.alice, "group", "send", gid, "hello team")
        yield self.run_ok(self.cat, "read", "--group", gid)
        out = yield self.run_ok(self.alice, "receipts", "--group", gid)
        self.assertIn("hello team  [✓✓ read by 1: cat]", out)
