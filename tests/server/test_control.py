"""The control socket's protocol: validated requests, answers, and stale sockets."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from messenger.server import control


class FakeCtx:
    def __init__(self) -> None:
        self.changed: list[int] = []

    def account_changed(self, user_id: int) -> Any:
        self.changed.append(user_id)
        return defer.succeed("closed")

    def operator_deleted_account(self, user_id: int, name: str, left: list[Any]) -> Any:
        self.changed.append((user_id, name, left))
        return defer.succeed("forgotten")

    def operator_deleted_group(self, group_id: int, name: str, member_ids: list[int]) -> Any:
        self.changed.append((group_id, name, member_ids))
        return defer.succeed(len(member_ids))

    def online(self) -> list[dict[str, Any]]:
        return [{"account_name": "alice", "address": "127.0.0.1", "since": 1.0,
                 "status": "online"}]


class ControlProtocolTests(unittest.TestCase):
    def setUp(self) -> None:
        self.ctx = FakeCtx()
        self.transport = StringTransport()
        self.proto = control.ControlFactory(self.ctx).buildProtocol(None)
        self.proto.makeConnection(self.transport)

    def ask(self, line: bytes) -> dict[str, Any]:
        self.transport.clear()
        self.proto.dataReceived(line + b"\n")
        return json.loads(self.transport.value())

    def test_account_changed(self) -> None:
        """account_changed goes to the context and its outcome comes back."""
        reply = self.ask(b'{"command": "account_changed", "user_id": 7}')
        self.assertEqual(reply, {"ok": True, "result": "closed"})
        self.assertEqual(self.ctx.changed, [7])

    def test_account_and_group_deleted(self) -> None:
        """account_deleted and group_deleted go to the context with their fields."""
        reply = self.ask(b'{"command": "account_deleted", "user_id": 7,'
                         b' "account_name": "bob"}')
        self.assertEqual(reply, {"ok": True, "result": "forgotten"})
        reply = self.ask(b'{"command": "account_deleted", "user_id": 8, "account_name": "cy",'
                         b' "groups": [[3, "ann"], [5, null]]}')
        self.assertEqual(reply, {"ok": True, "result": "forgotten"})
        reply = self.ask(b'{"command": "group_deleted", "group_id": 3, "name": "Maths 5b",'
                         b' "member_ids": [2, 7]}')
        self.assertEqual(reply, {"ok": True, "result": 2})
        self.assertEqual(self.ctx.changed, [(7, "bob", []), (8, "cy", [(3, "ann"), (5, None)]),
                                            (3, "Maths 5b", [2, 7])])

    def test_a_big_group_fits_in_one_line(self) -> None:
        """A group_deleted naming 5,000 members (seven-digit ids) is one valid line."""
        ids = list(range(1_000_000, 1_005_000))
        line = json.dumps({"command": "group_deleted", "group_id": 1, "name": "School",
                           "member_ids": ids}).encode()
        self.assertEqual(self.ask(line), {"ok": True, "result": 5000})

    def test_online(self) -> None:
        """online answers the context's list."""
        reply = self.ask(b'{"command": "online"}')
        self.assertEqual(reply["result"][0]["account_name"], "alice")

    def test_bad_requests_get_errors(self) -> None:
        """Malformed JSON, a non-object, an unknown command or a bad id: an error answer,
        nothing done, the connection stays."""
        for line in (b"not json", b"[1]", b'{"command": "shutdown"}',
                     b'{"command": "account_changed", "user_id": "7"}',
                     b'{"command": "account_changed", "user_id": true}',
                     b'{"command": "account_changed", "user_id": 0}',
                     b'{"command": "account_deleted", "user_id": 7}',
                     b'{"command": "account_deleted", "user_id": 7, "account_name": ""}',
                     b'{"command": "account_deleted", "user_id": -1, "account_name": "b"}',
                     b'{"command": "account_deleted", "user_id": 7, "account_name": "b",'
                     b' "groups": [[3]]}',
                     b'{"command": "account_deleted", "user_id": 7, "account_name": "b",'
                     b' "groups": [[0, null]]}',
                     b'{"command": "account_deleted", "user_id": 7, "account_name": "b",'
                     b' "groups": [[3, 4]]}',
                     b'{"command": "account_deleted", "user_id": 7, "account_name": "b",'
                     b' "groups": {"3": null}}',
                     b'{"command": "group_deleted", "group_id": 3, "name": "x"}',
                     b'{"command": "group_deleted", "group_id": 3, "name": "x",'
                     b' "member_ids": [1, "2"]}',
                     b'{"command": "group_deleted", "group_id": 3, "name": "x",'
                     b' "member_ids": [0]}',
                     b'{"command": "group_deleted", "group_id": 3, "name": 5,'
                     b' "member_ids": []}',
                     json.dumps({"command": "group_deleted", "group_id": 3, "name": "x",
                                 "member_ids": [1] * (control.MAX_MEMBER_IDS + 1)}).encode()):
            reply = self.ask(line)
            self.assertFalse(reply["ok"], line)
            self.assertTrue(reply["error"])
        self.assertEqual(self.ctx.changed, [])
        self.assertFalse(self.transport.disconnecting)

    def test_overlong_line_closes(self) -> None:
        """A line past the limit gets an error and the connection is closed."""
        self.proto.dataReceived(b"x" * (control.MAX_LINE + 10))
        self.assertIn(b"too long", self.transport.value())
        self.assertTrue(self.transport.disconnecting)


class SocketFileTests(unittest.TestCase):
    def test_stale_socket_removed(self) -> None:
        """A socket file nobody answers on (a crashed server) is removed at start."""
        path = Path(self.mktemp())
        path.parent.mkdir(parents=True, exist_ok=True)
        path = path.parent / "c.sock"
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(control.short_path(path))
        sock.close()
        self.assertTrue(path.exists())
        control.prepare(path)
        self.assertFalse(path.exists())

    def test_live_socket_means_another_server(self) -> None:
        """A socket that answers: another server runs on this data dir."""
        path = Path(self.mktemp())
        path.mkdir(parents=True)
        path = path / "c.sock"
        sock = socket.socket(socket.AF_UNIX)
        self.addCleanup(sock.close)
        sock.bind(control.short_path(path))
        sock.listen(1)
        self.assertRaises(control.AnotherServer, control.prepare, path)

    def test_long_paths_are_shortened(self) -> None:
        """A data dir deeper than a socket address allows still gets a usable address."""
        deep = Path(self.mktemp()).resolve() / ("d" * 60) / ("e" * 60)
        deep.mkdir(parents=True)
        address = control.short_path(deep / "control.sock")
        self.assertLessEqual(len(address), control.SUN_PATH_MAX)
        sock = socket.socket(socket.AF_UNIX)
        self.addCleanup(sock.close)
        sock.bind(address)
        self.assertTrue((deep / "control.sock").exists())
