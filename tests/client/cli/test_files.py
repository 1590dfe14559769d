"""messenger-cli send-file, group send-file and download end to end: the CLI as child
processes against ``twistd messenger`` as a child process, real files on both sides
(messenger.client.cli.files)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from twisted.internet import defer
from twisted.trial import unittest

from messenger.client import cli
from tests.client.cli.runner import CliRunner
from tests.support.twistd_server import start_twistd_server


class CliFileTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.server = yield start_twistd_server(self)
        self.base = Path(self.mktemp()).resolve()
        self.runners = {name: CliRunner(self.base, name, self.server)
                        for name in ("alice", "bob", "carol")}
        for name, runner in self.runners.items():
            out, err, code = yield runner.run("--secret-file", str(self.server.secret_file),
                                              "register", name, "--email",
                                              f"{name}@example.org")
            self.assertEqual(code, 0, err)

    def check(self, result, status=0):
        out, err, code = result
        self.assertEqual(code, status, f"exit {code}; stdout {out!r}; stderr {err!r}")
        return out

    @defer.inlineCallbacks
    def test_send_file_and_download(self):
        """send-file prints the file id alone on its last line; the recipient downloads
        it into a folder under its name, intact; a third user is refused (exit 1) and
        nothing is written."""
        alice, bob, carol = (self.runners[n] for n in ("alice", "bob", "carol"))
        data = os.urandom(3_000_000)
        source = self.base / "report 2026.pdf"
        source.write_bytes(data)
        out = self.check((yield alice.run("send-file", "bob", str(source),
                                          "--caption", "the report")))
        file_id = out.splitlines()[-1]
        self.assertRegex(file_id, r"^\d+$")
        history = self.check((yield bob.run("--json", "history", "alice")))
        self.assertIn(f'"file_id": {file_id}', history)
        folder = self.base / "downloads"
        folder.mkdir()
        out = self.check((yield bob.run("download", file_id, str(folder))))
        saved = Path(out.strip())
        self.assertEqual(saved, folder / "report 2026.pdf")
        self.assertEqual(hashlib.sha256(saved.read_bytes()).digest(),
                         hashlib.sha256(data).digest())
        out, err, code = yield carol.run("download", file_id, str(self.base / "stolen"))
        self.assertEqual(code, cli.EXIT_REFUSED)
        self.assertIn("cannot download this file", err)
        self.assertFalse((self.base / "stolen").exists())

    @defer.inlineCallbacks
    def test_group_send_file(self):
        """group send-file prints the file id alone on its last line; a member downloads
        it intact and sees it in the group's history; carol, no member, is refused."""
        alice, bob, carol = (self.runners[n] for n in ("alice", "bob", "carol"))
        out = self.check((yield alice.run("group", "create", "Team", "--members", "bob")))
        group_id = out.splitlines()[-1]
        data = os.urandom(200_000)
        source = self.base / "plan.txt"
        source.write_bytes(data)
        out = self.check((yield alice.run("group", "send-file", group_id, str(source),
                                          "--caption", "the plan")))
        file_id = out.splitlines()[-1]
        self.assertRegex(file_id, r"^\d+$")
        history = self.check((yield bob.run("group", "history", group_id)))
        self.assertIn(f"[file {file_id}: plan.txt, 200000 bytes]", history)
        target = self.base / "bobs-plan.txt"
        self.check((yield bob.run("download", file_id, str(target))))
        self.assertEqual(target.read_bytes(), data)
        out, err, code = yield carol.run("download", file_id, str(self.base / "stolen"))
        self.assertEqual(code, cli.EXIT_REFUSED)

    @defer.inlineCallbacks
    def test_bad_paths(self):
        """A missing file to send is a usage error (exit 2); nothing is sent."""
        out, err, code = yield self.runners["alice"].run("send-file", "bob",
                                                         str(self.base / "missing"))
        self.assertEqual(code, cli.EXIT_USAGE)
        self.assertIn("not a file", err)
