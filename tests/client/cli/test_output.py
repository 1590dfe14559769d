"""Tests for messenger.client.cli.output: lines, JSON, and one line and a status per
failure."""

from __future__ import annotations

import io

from twisted.internet import defer
from twisted.internet.error import ConnectionRefusedError
from twisted.trial import unittest

from messenger.client import cli
from messenger.client.errors import (
    MessageTooLong,
    NoSavedLogin,
    NotConnected,
    ServerKeyChanged,
    TokenExpired,
)
from messenger.client.events import IncomingMessage, PresenceChange
from messenger.client.failures import connection_error, reply_error
from messenger.wire.handshake import HandshakeError


class ExplainTests(unittest.TestCase):
    def test_errors_become_one_line_and_a_status(self):
        """Each kind of failure has its clear line and exit status."""
        cases = [
            (connection_error(HandshakeError("Server rejected the connection: hmac error",
                                             403)),
             "hmac error (the shared secret does not match", cli.EXIT_CONNECTION),
            (reply_error("authenticate", {"response": 402, "error": "wrong account name"
                                          " or password"}),
             "wrong account name or password", cli.EXIT_REFUSED),
            (reply_error("authenticate", {"response": 409, "error": "already connected:"
                                          " this account has a live session elsewhere"}),
             "already connected", cli.EXIT_REFUSED),
            (ServerKeyChanged("h:1", "sha256:" + "a" * 64, "sha256:" + "b" * 64, "f"),
             "server key changed", cli.EXIT_CONNECTION),
            (TokenExpired("resume token expired: log in with your password"),
             "messenger-cli login", cli.EXIT_LOGIN),
            (NoSavedLogin("no saved login on h:1"), "messenger-cli login", cli.EXIT_LOGIN),
            (NotConnected("not connected"), "not connected", cli.EXIT_CONNECTION),
            (connection_error(ConnectionRefusedError(), connecting=True),
             "connection refused", cli.EXIT_CONNECTION),
            (MessageTooLong(20000, 16384), "at most 16384", cli.EXIT_REFUSED),
            (defer.TimeoutError(), "timed out", cli.EXIT_CONNECTION),
        ]
        for error, text, status in cases:
            message, code = cli.explain(error)
            self.assertIn(text, message)
            self.assertEqual(code, status, error)
            self.assertNotIn("\n", message)

    def test_event_lines(self):
        """tail prints messages like history does and presence as a '*' line."""
        line = cli.format_event(IncomingMessage(3, 0.0, "alice", "bob", "hi"))
        self.assertTrue(line.startswith("#3 ") and line.endswith("alice -> bob: hi"))
        self.assertEqual(cli.format_event(PresenceChange("bob", "away", 0)), "* bob is away")
        self.assertEqual(cli.format_event(PresenceChange("bob", "deleted", 0)),
                         "* bob's account was deleted")

    def test_group_event_lines_and_json(self):
        """Each group change is one line naming the group and who did it (the server's
        administrator when ``by`` is empty), and as JSON its push's action and fields."""
        from messenger.client.cli.output import event_json, format_event
        from messenger.client.groupevents import (
            GroupInfo,
            GroupMemberAdded,
            GroupMemberRemoved,
            GroupRoleChanged,
            GroupUpdated,
        )
        team = GroupInfo(7, "Team", "maths", True, 0.0, "ann", 3, None, None)
        cases = [
            (GroupMemberAdded(team, "ben", "member", "ann", 1.0),
             "~ group #7 'Team': ben added by ann",
             {"event": "group_member_added", "group_id": 7, "name": "Team",
              "account_name": "ben", "role": "member", "by": "ann", "time": 1.0}),
            (GroupMemberRemoved(7, "ben", "deleted", "", 2.0),
             "~ group #7: ben is gone (account deleted)",
             {"event": "group_member_removed", "group_id": 7, "account_name": "ben",
              "reason": "deleted", "by": "", "time": 2.0}),
            (GroupMemberRemoved(7, "ben", "removed", "ann", 2.0),
             "~ group #7: ben removed by ann", None),
            (GroupRoleChanged(7, "cy", "owner", "", 3.0),
             "~ group #7: cy is now owner (by the server's administrator)", None),
            (GroupUpdated(team, "ann", 4.0), "~ group #7 'Team': changed by ann",
             {"event": "group_updated", "group_id": 7, "name": "Team", "topic": "maths",
              "announce_only": True, "by": "ann", "time": 4.0}),
        ]
        for event, line, data in cases:
            self.assertEqual(format_event(event), line)
            if data is not None:
                self.assertEqual(event_json(event), data)

    def test_json_output_is_one_object_per_line(self):
        """--json writes each item as one JSON object on its own line."""
        out = io.StringIO()
        cli.Output(True, out=out).line("ignored", {"msg_id": 1, "message": "é"})
        self.assertEqual(out.getvalue(), '{"msg_id": 1, "message": "é"}\n')
