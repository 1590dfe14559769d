"""The outbox on disk: saved off the reactor thread in a private file, coalesced,
damaged files set aside; and a client *program* closed with unsent messages that, started
again, delivers each once with its original id, even one that reached the server before
the close (messenger.client.outbox_file, messenger.client.core)."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

from twisted.internet import defer, protocol, reactor, task
from twisted.protocols import portforward
from twisted.trial import unittest

from messenger.client.events import Observers
from messenger.client.outbox import Outbox, OutgoingMessage
from messenger.client.outbox_file import FILE_NAME, DiskOutbox, OutboxFile, read_outbox, saved
from messenger.client.sender import MessageSender
from tests.client.test_integration import PASSWORD, ServerTestCase
from tests.server.people import rows
from tests.support import jimclient
from tests.support.server import start_server
from tests.support.services import OnPostgres
from tests.support.twistd_server import ROOT, wait_for


def entry(n: int, to: str | None = "bob", group: int | None = None) -> OutgoingMessage:
    return OutgoingMessage(f"{n:032x}", to, f"text {n}", 100.0 + n, group)


class Immediate:
    """run_blocking that runs at once, counting the calls (the real one is a thread)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.held: list[defer.Deferred] = []
        self.hold = False

    def __call__(self, fn, *args):
        self.calls.append(fn.__name__)
        if self.hold:
            d = defer.Deferred()
            self.held.append(d)
            d.addCallback(lambda _: fn(*args))
            return d
        return defer.maybeDeferred(fn, *args)


class OutboxFileTests(unittest.TestCase):
    def setUp(self) -> None:
        self.path = Path(self.mktemp()) / FILE_NAME
        self.run = Immediate()
        self.file = OutboxFile(self.path, self.run)

    def test_saved_privately_and_read_back(self):
        """Saved messages are read back by a new OutboxFile per server and account, in
        order; the file is 0600; an account with nothing left is removed."""
        self.successResultOf(self.file.load())
        self.file.save("h:1", "Alice", [saved(entry(1)), saved(entry(2, None, 7))])
        self.file.save("h:2", "alice", [saved(entry(3))])
        self.assertEqual(stat.S_IMODE(self.path.stat().st_mode), 0o600)
        again = OutboxFile(self.path, self.run)
        self.successResultOf(again.load())
        self.assertEqual(again.take("h:1", "ALICE"), [saved(entry(1)), saved(entry(2, None, 7))])
        self.assertEqual(again.take("h:1", "bob"), [])
        again.save("h:1", "alice", [])
        self.assertEqual(read_outbox(self.path), {"h:2": {"alice": [saved(entry(3))]}})

    def test_nothing_is_written_before_the_file_was_read(self):
        """A save before the load would lose the file's messages: it is ignored."""
        self.file.save("h:1", "alice", [saved(entry(1))])
        self.assertFalse(self.path.exists())
        self.assertEqual(self.run.calls, [])

    def test_writes_are_coalesced_and_in_order(self):
        """While a write runs, later saves wait; the newest state is written next, once."""
        self.successResultOf(self.file.load())
        self.run.hold = True
        for n in range(1, 6):
            self.file.save("h:1", "alice", [saved(entry(k)) for k in range(1, n + 1)])
        written = self.file.written()
        self.assertEqual(self.run.calls.count("write_private_file"), 1)
        self.run.held.pop(0).callback(None)
        self.assertEqual(self.run.calls.count("write_private_file"), 2)
        self.assertNoResult(written)
        self.run.held.pop(0).callback(None)
        self.successResultOf(written)
        self.assertEqual(len(read_outbox(self.path)["h:1"]["alice"]), 5)

    def test_a_damaged_file_is_set_aside(self):
        """Bad JSON or a malformed message: the file moves to .damaged; nothing is lost
        silently and the client starts with an empty outbox."""
        for content in (b"{not json", json.dumps({"servers": {"h": {"a": [{"text": 1}]}}})
                        .encode()):
            self.path.parent.mkdir(exist_ok=True)
            self.path.write_bytes(content)
            self.assertEqual(read_outbox(self.path), {})
            self.assertTrue(self.path.with_name(FILE_NAME + ".damaged").exists())
            self.assertFalse(self.path.exists())


class DiskOutboxTests(unittest.TestCase):
    def setUp(self) -> None:
        self.path = Path(self.mktemp()) / FILE_NAME
        self.run = Immediate()
        self.observers = Observers()
        self.sender = MessageSender(Outbox(), self.observers, task.Clock())

    def disk(self) -> DiskOutbox:
        return DiskOutbox(OutboxFile(self.path, self.run), self.sender, self.observers, "h:1")

    def test_queued_before_login_keeps_the_saved_ones(self):
        """Messages queued in a new program before its first login are saved beside the
        ones an earlier run left; after the login the earlier ones come back into the
        outbox (pending, with their ids) and every acknowledgement empties the file."""
        earlier = OutboxFile(self.path, self.run)
        self.successResultOf(earlier.load())
        earlier.save("h:1", "alice", [saved(entry(1)), saved(entry(2))])
        disk = self.disk()
        heard: list[OutgoingMessage] = []
        self.observers.subscribe("message_status", heard.append)
        new = self.sender.queue("alice", "bob", "written offline")
        self.assertEqual(read_outbox(self.path)["h:1"]["alice"],
                         [saved(entry(1)), saved(entry(2))])      # not read yet: no write
        self.successResultOf(disk.load())
        ids = [m["request_id"] for m in read_outbox(self.path)["h:1"]["alice"]]
        self.assertEqual(ids, [entry(1).request_id, entry(2).request_id, new.request_id])
        disk.restore("Alice")
        self.assertEqual(sorted(e.request_id for e in self.sender.outbox.pending()),
                         sorted(ids))
        self.assertEqual([e.request_id for e in heard[1:]], ids[:2])
        for pending in self.sender.outbox.pending():
            self.sender._acked({"msg_id": 9, "time": 1.0}, pending)
        self.assertEqual(read_outbox(self.path), {})
        disk.restore("alice")                                       # once per program
        self.assertEqual(self.sender.outbox.pending(), [])


class Program(protocol.ProcessProtocol):
    """tests/support/outbox_program.py as a child process; its stdout lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.buffer = b""
        self.ended: defer.Deferred = defer.Deferred()
        self.errors = b""

    def outReceived(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        self.lines.extend(line.decode() for line in lines)

    def errReceived(self, data: bytes) -> None:
        self.errors += data

    def processEnded(self, reason) -> None:
        self.ended.callback(reason.value)

    def line(self, prefix: str) -> str | None:
        return next((line for line in self.lines if line.startswith(prefix)), None)


class RestartTests(ServerTestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.server = yield start_server(self)
        self.forward: portforward.ProxyFactory = portforward.ProxyFactory(
            "127.0.0.1", self.server.tcp_port)
        self.listening = reactor.listenTCP(0, self.forward, interface="127.0.0.1")
        self.port = self.listening.getHost().port
        self.addCleanup(lambda: self.listening.stopListening())

    def spawn(self, config: Path, *args: str) -> Program:
        program = Program()
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("PYTHON", "XDG_"))}
        env["PYTHONPATH"] = str(ROOT)
        reactor.spawnProcess(program, sys.executable,
                             [sys.executable, "-m", "tests.support.outbox_program",
                              str(self.port), str(config), *args], env=env, path=str(ROOT))
        self.addCleanup(self.kill, program)
        return program

    def kill(self, program: Program) -> defer.Deferred:
        if not program.ended.called:
            program.transport.signalProcess("KILL")
        return program.ended

    @defer.inlineCallbacks
    def test_closed_with_pending_messages_then_started_again(self):
        """A program that queued three messages while the server was unreachable is
        killed; one of them reached the server meanwhile (same request id). Started
        again, the program sends the saved ones with their ids after login: bob gets
        each message once, and the outbox file ends empty."""
        config = Path(self.mktemp()).resolve()
        bob, _ = yield jimclient.register(self, self.server.tcp_port, "bob")
        alice = self.client(self.port, config_dir=config)
        yield alice.register("alice", PASSWORD, "alice@example.org")
        yield alice.stop()
        yield self.listening.stopListening()
        first = self.spawn(config, "queue", "one", "two", "three")
        try:
            yield wait_for(lambda: first.line("QUEUED") or first.ended.called,
                           what="the queued messages", timeout=20)
        except AssertionError:
            self.fail(first.errors.decode() + "\n".join(first.lines))
        self.assertTrue(first.line("QUEUED"), first.errors.decode())
        ids = first.line("QUEUED").split()[1:]
        yield self.kill(first)                    # the program is closed, abruptly
        on_disk = read_outbox(config / FILE_NAME)
        self.assertEqual([m["request_id"] for m in on_disk[alice.address]["alice"]], ids)
        self.assertEqual(stat.S_IMODE((config / FILE_NAME).stat().st_mode), 0o600)
        # The second message had reached the server before the program closed.
        early = yield jimclient.connect(self, self.server.tcp_port)
        yield early.request("authenticate", user={"account_name": "alice",
                                                  "password": PASSWORD})
        reply = yield early.request("msg", id=ids[1], to="bob", message="two")
        self.assertEqual(reply["response"], 200)
        yield early.request("quit")
        self.listening = reactor.listenTCP(self.port, self.forward, interface="127.0.0.1")
        second = self.spawn(config, "deliver")
        yield wait_for(lambda: second.ended.called, what="the delivery", timeout=60)
        self.assertTrue(second.line("DELIVERED"), second.errors.decode())
        stored = yield rows(self.server, "SELECT body, client_id FROM messages ORDER BY id")
        self.assertEqual(sorted(stored), sorted(zip(["one", "two", "three"], ids)))
        pushed = [p["message"] for p in bob.pushes if p["action"] == "msg"]
        self.assertEqual(sorted(pushed), ["one", "three", "two"])
        self.assertEqual(len(set(second.line("DELIVERED").split()[1:])), 3)
        self.assertEqual(read_outbox(config / FILE_NAME), {})


class RestartTestsOnPostgres(OnPostgres, RestartTests):
    pass
