"""Log output: JSON lines, bounded rotation, and nothing secret in a whole session's log."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from twisted.trial import unittest

from messenger.server.logs import output
from tests.support import jimclient
from tests.support.twistd_server import TwistdServer


class JsonLineTests(unittest.SynchronousTestCase):
    def test_fields_and_text(self) -> None:
        """One object per line: time, level, namespace, the text and the event's fields."""
        lines: list[str] = []
        observer = output.make_observer("json", _Collect(lines))
        Logger(namespace="messenger.test", observer=observer).warn(
            "Refused {address}: {count} tries", address="192.0.2.1", count=3,
            where=object())
        (line,) = lines
        self.assertTrue(line.endswith("\n"))
        record = json.loads(line)
        self.assertEqual(record["level"], "warn")
        self.assertEqual(record["namespace"], "messenger.test")
        self.assertEqual(record["text"], "Refused 192.0.2.1: 3 tries")
        self.assertEqual((record["address"], record["count"]), ("192.0.2.1", 3))
        self.assertIsInstance(record["where"], str)
        self.assertRegex(record["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")

    def test_failure_has_traceback(self) -> None:
        """A logged failure carries its traceback in one field (still one line)."""
        lines: list[str] = []
        log = Logger(observer=output.make_observer("json", _Collect(lines)))
        try:
            1 / 0
        except ZeroDivisionError:
            log.failure("It broke", Failure(), level=LogLevel.error)
        record = json.loads(lines[0])
        self.assertIn("ZeroDivisionError", record["traceback"])
        self.assertEqual(len(lines[0].splitlines()), 1)

    def test_unknown_format(self) -> None:
        self.assertRaises(ValueError, output.make_observer, "xml", _Collect([]))


class RotationTests(unittest.SynchronousTestCase):
    def test_old_files_are_deleted(self) -> None:
        """Past max_files rotated files the oldest goes: the disk use is bounded."""
        base = Path(self.mktemp())
        base.mkdir()
        log_file = output.open_log_file(str(base / "server.log"), 4096, 3)
        log = Logger(observer=output.make_observer("text", log_file))
        for n in range(2000):
            log.info("line {n} " + "x" * 80, n=n)
        log_file.close()
        names = sorted(os.listdir(base))
        self.assertEqual(names, ["server.log", "server.log.1", "server.log.2",
                                 "server.log.3"])
        self.assertIn("line 1999", (base / "server.log").read_text())
        self.assertLessEqual(sum((base / name).stat().st_size for name in names),
                             4 * (4096 + 200))


class _Collect:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def write(self, text: str) -> None:
        self.lines.append(text)

    def flush(self) -> None:
        pass


class TwistdLogTests(unittest.TestCase):
    """The server under twistd with --logfile: the observer we install is the one used."""

    timeout = 60

    @defer.inlineCallbacks
    def test_whole_session_json_log_holds_no_secret(self) -> Any:
        """--log-format json: every line is one JSON object, and a whole session (register,
        log in with a resume token, chat, resume, change the password) leaves neither
        password, token nor message body in the log."""
        base = Path(self.mktemp()).resolve()
        log_path = base / "messenger.log"
        server = _LogFileServer(base, log_path, ("--log-format", "json"))
        self.addCleanup(server.stop)
        yield server.start()
        secrets = ["first Password 1", "second Password 2", "Tell no one: the body"]
        alice = yield jimclient.connect(self, server.port)
        reply = yield alice.request("register", remember=True, **jimclient.new_user(
            "alice", password=secrets[0]))
        self.assertEqual(reply["response"], 201)
        secrets.append(reply["token"])
        bob, _ = yield jimclient.register(self, server.port, "bob")
        reply = yield alice.request("msg", to="bob", message=secrets[2])
        self.assertEqual(reply["response"], 200)
        yield bob.wait_push("msg")
        again = yield jimclient.connect(self, server.port)
        reply = yield again.request("authenticate", user={"account_name": "alice",
                                                          "password": "wrong guess 3"})
        self.assertEqual(reply["response"], 402)
        secrets.append("wrong guess 3")
        reply = yield alice.request("set_password", old_password=secrets[0],
                                    new_password=secrets[1])
        self.assertEqual(reply["response"], 200)
        secrets.append(reply["token"])
        yield server.stop()
        text = log_path.read_text("utf-8")
        records = [json.loads(line) for line in text.splitlines()]
        self.assertTrue(any("Messenger listening" in r["text"] for r in records))
        self.assertTrue(any(r.get("account") == "alice" for r in records))
        for secret in secrets:
            self.assertNotIn(secret, text)

    @defer.inlineCallbacks
    def test_twistd_log_rotation_is_bounded(self) -> Any:
        """With --logfile, --log-max-bytes and --log-max-files, twistd's log rotates and
        the oldest files are deleted (twistd alone keeps every one)."""
        base = Path(self.mktemp()).resolve()
        log_path = base / "messenger.log"
        server = _LogFileServer(base, log_path, ("--log-max-bytes", "4096",
                                                 "--log-max-files", "2",
                                                 "--connections-per-minute", "0",
                                                 "--logins-per-minute", "0"))
        self.addCleanup(server.stop)
        yield server.start()
        for n in range(40):                     # a registration logs a few lines
            client, reply = yield jimclient.register(self, server.port, f"user{n}")
            self.assertEqual(reply["response"], 201)
            yield client.request("quit")
        yield server.stop()
        names = sorted(name for name in os.listdir(base) if name.startswith("messenger.log"))
        self.assertEqual(names, ["messenger.log", "messenger.log.1", "messenger.log.2"])
        self.assertIn("Messenger stopped", "".join((base / name).read_text() for name in names))


class _LogFileServer(TwistdServer):
    """A twistd child that logs to a file (--logfile) instead of standard output; it
    reports "listening" by the log file's content."""

    def __init__(self, base: Path, log_path: Path, extra: tuple[str, ...]) -> None:
        super().__init__(base, extra)
        self.log_file_path = log_path

    def args(self) -> list[str]:
        args = super().args()
        at = args.index("messenger")
        return [*args[:at], "--logfile", str(self.log_file_path), *args[at:]]

    def start(self, timeout: float = 30.0) -> Any:
        from tests.support.twistd_server import wait_for
        self.log_file_path.parent.mkdir(parents=True, exist_ok=True)
        super().start(timeout).addErrback(lambda _: None)
        d = wait_for(lambda: self.log_file_path.exists()
                     and b"Messenger listening" in self.log_file_path.read_bytes(),
                     timeout, "the server to log that it listens")
        d.addCallback(lambda _: self)
        return d
