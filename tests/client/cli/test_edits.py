"""messenger-cli's edit, delete, search-messages and send --reply-to end to end: the CLI
as child processes (each with its own config dir) against the server run by twistd as a
child process (messenger.client.cli.edits)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests.client.cli.runner import CliRunner
from tests.support.twistd_server import start_twistd_server


class EditCommandTests(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        self.server = yield start_twistd_server(self)
        base = Path(self.mktemp())
        self.alice, self.bob = (CliRunner(base, name, self.server) for name in ("alice", "bob"))
        for runner, name in ((self.alice, "alice"), (self.bob, "bob")):
            yield self.run_ok(runner, "--secret-file", str(self.server.secret_file),
                              "register", name, "--email", f"{name}@example.org")

    @defer.inlineCallbacks
    def run_ok(self, runner: CliRunner, *argv: str, status: int = 0) -> Any:
        out, err, code = yield runner.run(*argv)
        self.assertEqual(code, status, f"{argv}: exit {code}; stdout {out!r}; stderr {err!r}")
        return out if status == 0 else err

    @defer.inlineCallbacks
    def test_reply_edit_delete_and_search(self):
        """send --reply-to quotes, edit and delete report the change, history marks
        them, and search-messages prints the matches highlighted (JSON: the offsets)."""
        out = yield self.run_ok(self.alice, "send", "bob", "quarterly", "budget", "draft")
        first = out.split("#")[1].split()[0]
        out = yield self.run_ok(self.bob, "send", "alice", "looks", "fine", "--reply-to", first)
        second = out.split("#")[1].split()[0]
        out = yield self.run_ok(self.alice, "search-messages", "budg")
        self.assertTrue(out.strip().endswith("alice -> bob: quarterly [budget] draft"), out)
        out = yield self.run_ok(self.alice, "--json", "search-messages", "budget", "draft")
        record = json.loads(out)
        self.assertEqual((record["msg_id"], record["matches"]), (int(first), [[10, 6], [17, 5]]))
        out = yield self.run_ok(self.alice, "edit", first, "yearly", "budget")
        self.assertEqual(out, f"~ #{first} edited: yearly budget (by alice)\n")
        err = yield self.run_ok(self.alice, "edit", second, "mine", status=1)
        self.assertIn("you may only edit your own messages", err)
        out = yield self.run_ok(self.bob, "delete", second)
        self.assertEqual(out, f"~ #{second} deleted (by bob)\n")
        out = yield self.run_ok(self.alice, "history", "bob")
        lines = out.strip().splitlines()
        self.assertTrue(lines[0].endswith("alice -> bob: yearly budget (edited)"), lines)
        self.assertTrue(lines[1].endswith(f"bob -> alice: [re #{first}] (message deleted)"),
                        lines)
        err = yield self.run_ok(self.alice, "search-messages", "--", "--", status=1)
        self.assertIn("'query' has no words to search for", err)
