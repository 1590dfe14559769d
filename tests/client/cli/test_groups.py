"""messenger-cli's group commands end to end: the CLI as child processes (each with its
own config dir) against the server run by twistd as a child process
(messenger.client.cli.groups)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from messenger.client.cli.output import format_event
from messenger.client.groupevents import GroupDeleted
from tests.admin.test_cli import run_admin
from tests.client.cli.runner import CliRunner
from tests.support.twistd_server import start_twistd_server


class GroupCommandTests(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        self.server = yield start_twistd_server(self)
        base = Path(self.mktemp())
        self.teacher, self.ann, self.ben = (CliRunner(base, name, self.server)
                                            for name in ("teacher", "ann", "ben"))
        for runner, name in ((self.teacher, "teacher"), (self.ann, "ann"),
                             (self.ben, "ben")):
            yield self.run_ok(runner, "--secret-file", str(self.server.secret_file),
                              "register", name, "--email", f"{name}@example.org")

    @defer.inlineCallbacks
    def run_ok(self, runner: CliRunner, *argv: str, status: int = 0) -> Any:
        out, err, code = yield runner.run(*argv)
        self.assertEqual(code, status, f"{argv}: exit {code}; stdout {out!r}; stderr {err!r}")
        return out if status == 0 else err

    @defer.inlineCallbacks
    def test_a_class_through_the_cli(self):
        """create prints the id alone on its last line; list, info, add, remove, leave,
        send and history do what the issue lists; a student cannot post in the channel
        and a removed one cannot read it."""
        out = yield self.run_ok(self.teacher, "group", "create", "Class 5b", "--members",
                                "ann,ben", "--announce-only")
        lines = out.splitlines()
        self.assertRegex(lines[-1], r"^\d+$")
        self.assertIn("announcement channel 'Class 5b' with 3 members", lines[0])
        gid = lines[-1]
        out = yield self.run_ok(self.teacher, "group", "send", gid, "Homework:", "page", "12")
        self.assertRegex(out, rf"^sent #\d+ to group #{gid}\n$")
        err = yield self.run_ok(self.ann, "group", "send", gid, "may I?", status=1)
        self.assertIn("announcement channel", err)
        out = yield self.run_ok(self.ann, "group", "list")
        self.assertEqual(out.split("\t")[:4], [gid, "Class 5b", "member", "3 members"])
        self.assertIn("1 unread", out)
        out = yield self.run_ok(self.ann, "group", "history", gid)
        self.assertTrue(out.strip().endswith(f"teacher -> group #{gid}: Homework: page 12"),
                        out)
        out = yield self.run_ok(self.ann, "group", "info", gid)
        self.assertEqual(out.splitlines()[1:], ["ann\tmember", "ben\tmember",
                                                "teacher\towner"])
        out = yield self.run_ok(self.teacher, "group", "remove", gid, "ben")
        self.assertEqual(out, f"removed ben from group #{gid}\n")
        err = yield self.run_ok(self.ben, "group", "history", gid, status=1)
        self.assertIn("you are not a member of this group", err)
        out = yield self.run_ok(self.teacher, "group", "add", gid, "ben")
        self.assertEqual(out, f"added ben to group #{gid}\n")
        out = yield self.run_ok(self.ann, "group", "leave", gid)
        self.assertEqual(out, f"left group #{gid}\n")
        self.assertEqual((yield self.run_ok(self.ann, "group", "list")), "")

    @defer.inlineCallbacks
    def test_tail_prints_group_messages_with_mentions(self):
        """tail prints a group message with its group and the members it mentions."""
        out = yield self.run_ok(self.teacher, "group", "create", "Team", "--members", "ann")
        gid = out.splitlines()[-1]
        tail = self.ann.run("tail", "--count", "1")
        yield self.run_ok(self.teacher, "group", "send", gid, "@ann", "please", "check")
        out, err, code = yield tail
        self.assertEqual(code, 0, err)
        self.assertTrue(out.strip().endswith(
            f"teacher -> group #{gid}: @ann please check [mentions: ann]"), out)
        as_json = yield self.run_ok(self.teacher, "--json", "group", "create", "Other")
        self.assertIn('"group_id":', as_json)

    @defer.inlineCallbacks
    def test_tail_prints_group_changes(self):
        """tail prints the changes to the user's groups as they come: a member added by
        the owner, the group deleted by the server's operator with messenger-admin (and,
        with --json, each as its push's action and fields)."""
        out = yield self.run_ok(self.teacher, "group", "create", "Team", "--members", "ann")
        gid = out.splitlines()[-1]
        tail = self.ann.run("--json", "tail", "--count", "1")
        online = ""
        while "ann" not in online:          # tail logged in: pushes reach it from now on
            code, online, err = yield run_admin(self.server.data_dir, "online")
            self.assertEqual(code, 0, err)
        yield self.run_ok(self.teacher, "group", "add", gid, "ben")
        code, out, err = yield run_admin(self.server.data_dir, "groups", "delete", gid,
                                         "--yes")
        self.assertEqual(code, 0, err)
        yield self.run_ok(self.teacher, "send", "ann", "the group is gone")
        out, err, code = yield tail
        self.assertEqual(code, 0, err)
        events = [json.loads(line) for line in out.splitlines()]
        self.assertEqual([(e["event"], e.get("account_name"), e["by"]) for e in events
                          if e["event"].startswith("group_")],
                         [("group_member_added", "ben", "teacher"),
                          ("group_deleted", None, "")])
        self.assertEqual(events[-1]["message"], "the group is gone")
        self.assertEqual(
            format_event(GroupDeleted(int(gid), "Team", "", 0.0)),
            f"~ group #{gid} 'Team': deleted by the server's administrator")
