"""messenger-cli chat and tail (messenger.client.cli.follow) across a server kill."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from twisted.internet import defer, protocol, reactor
from twisted.trial import unittest

from tests.client.cli.runner import CliRunner
from tests.support.twistd_server import ROOT, start_twistd_server, wait_for


class _CliProcess(protocol.ProcessProtocol):
    """messenger-cli as a child whose output the test watches as it comes (and, for
    chat, types lines into its standard input)."""

    def __init__(self) -> None:
        self.out = b""
        self.err = b""
        self.ended: defer.Deferred[int] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:  # noqa: N802
        self.out += data

    def errReceived(self, data: bytes) -> None:  # noqa: N802
        self.err += data

    def type(self, *lines: str) -> None:
        for line in lines:
            self.transport.write(line.encode() + b"\n")

    def sent(self) -> int:
        return self.err.count(b"  sent #")

    def processEnded(self, reason: Any) -> None:  # noqa: N802
        self.ended.callback(getattr(reason.value, "exitCode", None))


class ChatAcrossRestartTests(unittest.TestCase):
    """Two terminals: one chats, one tails; the server is SIGKILLed and started again."""

    timeout = 120

    @defer.inlineCallbacks
    def test_chat_survives_a_server_kill(self):
        """Lines typed before, during and after a SIGKILL of the server are each stored once
        and reach the other user once, in order, with nobody typing anything to reconnect."""
        server = yield start_twistd_server(self)
        base = Path(self.mktemp())
        alice, bob = CliRunner(base, "alice", server), CliRunner(base, "bob", server)
        for runner, name in ((alice, "alice"), (bob, "bob")):
            result = yield runner.run("--secret-file", str(server.secret_file), "register",
                                      name, "--email", f"{name}@example.org")
            self.assertEqual(result[2], 0, result)
        tail = _CliProcess()
        reactor.spawnProcess(tail, sys.executable, [
            sys.executable, "-m", "messenger.client.cli", "--server",
            f"127.0.0.1:{server.port}", "--timeout", "60", "tail", "--count", "6"],
            env=bob.env(), path=str(ROOT))
        chat = _CliProcess()
        argv = [sys.executable, "-m", "messenger.client.cli", "--server",
                f"127.0.0.1:{server.port}", "--timeout", "60", "chat", "bob"]
        reactor.spawnProcess(chat, sys.executable, argv, env=alice.env(), path=str(ROOT))
        yield wait_for(lambda: b"chatting with bob" in chat.err, what="chat to start")
        chat.type("one", "two", "three")
        yield wait_for(lambda: chat.sent() == 3, what="three messages acknowledged")
        # Both ends are in session before the kill: the tail has printed the three.
        yield wait_for(lambda: tail.out.count(b"\n") == 3, what="the tail following")
        yield server.kill()
        chat.type("four", "five")           # typed while the server is down
        yield server.start()
        yield wait_for(lambda: chat.sent() == 5, what="the outage's lines sent")
        chat.type("six")
        yield wait_for(lambda: chat.sent() == 6, what="the last line sent")
        chat.transport.closeStdin()
        status = yield chat.ended
        self.assertEqual(status, 0, chat.err)
        self.assertIn(b"reconnecting in", chat.err)
        code = yield tail.ended
        self.assertEqual(code, 0, tail.err)
        self.assertEqual([line.split(": ", 1)[1] for line in tail.out.decode().splitlines()],
                         ["one", "two", "three", "four", "five", "six"])
        history = yield alice.run("history", "bob")
        self.assertEqual([line.split(": ", 1)[1] for line in history[0].splitlines()],
                         ["one", "two", "three", "four", "five", "six"])
