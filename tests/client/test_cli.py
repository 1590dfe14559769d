"""Tests for messenger-cli: option handling and messages, then end to end, the CLI run as
child processes (each with its own HOME / XDG_CONFIG_HOME) against the server run by
twistd as a child process."""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path
from typing import Any

from twisted.internet import defer, protocol, reactor, task, utils
from twisted.trial import unittest

from messenger.client import cli
from messenger.client.core import MessengerClient
from messenger.client.credentials import CredentialStore, Sessions
from messenger.client.errors import NotConnected, PasswordNeeded
from messenger.client.events import IncomingMessage, PresenceChange
from messenger.wire import keys
from messenger.wire.errors import Conflict, WrongCredentials
from messenger.wire.handshake import HandshakeError, ServerKeyChanged
from tests.support.keys import rsa_key
from tests.support.twistd_server import ROOT, start_twistd_server, wait_for

PASSWORD = "correct horse"


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


class ExplainTests(unittest.TestCase):
    def test_errors_become_one_line_and_a_status(self):
        """Each kind of failure has its clear line and exit status."""
        cases = [
            (HandshakeError("Server rejected the connection: hmac error", 403),
             "hmac error", cli.EXIT_CONNECTION),
            (WrongCredentials("wrong account name or password"), "wrong account name or"
             " password", cli.EXIT_REFUSED),
            (Conflict("already connected: this account has a live session elsewhere"),
             "already connected", cli.EXIT_REFUSED),
            (ServerKeyChanged("h:1", "sha256:" + "a" * 64, "sha256:" + "b" * 64, "f"),
             "server key changed", cli.EXIT_CONNECTION),
            (PasswordNeeded("resume token expired: log in with your password"),
             "messenger-cli login", cli.EXIT_LOGIN),
            (NotConnected("not connected"), "not connected", cli.EXIT_CONNECTION),
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

    def test_json_output_is_one_object_per_line(self):
        """--json writes each item as one JSON object on its own line."""
        out = io.StringIO()
        cli.Output(True, out=out).line("ignored", {"msg_id": 1, "message": "é"})
        self.assertEqual(out.getvalue(), '{"msg_id": 1, "message": "é"}\n')


class CliRunner:
    """Runs messenger-cli as a child process for one user (own HOME and config dir)."""

    def __init__(self, base: Path, name: str, server: Any) -> None:
        self.home = (base / name).resolve()
        self.config = self.home / ".config" / "messenger"
        self.config.mkdir(parents=True)
        # A ready-made key saves each first run the key generation.
        keys.write_private_key(self.config / "client_key.pem", rsa_key("cli-" + name, 2048))
        self.server = server

    def env(self, **extra: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("PYTHON", "MESSENGER_", "XDG_"))}
        env.update(PYTHONPATH=str(ROOT), HOME=str(self.home),
                   XDG_CONFIG_HOME=str(self.home / ".config"), MESSENGER_PASSWORD=PASSWORD)
        env.update(extra)
        return env

    def run(self, *argv: str, server: bool = True, **env: str) -> defer.Deferred:
        """Fires with (stdout, stderr, exit status) as text."""
        args = ["-m", "messenger.client.cli"]
        if server:
            args += ["--server", f"127.0.0.1:{self.server.port}"]
        d = utils.getProcessOutputAndValue(sys.executable, [*args, *argv],
                                           env=self.env(**env), path=str(ROOT),
                                           reactor=reactor)
        d.addCallback(lambda result: (result[0].decode(), result[1].decode(), result[2]))
        return d


class CliEndToEndTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.server = yield start_twistd_server(self)
        base = Path(self.mktemp())
        self.alice = CliRunner(base, "alice", self.server)
        self.bob = CliRunner(base, "bob", self.server)

    def check(self, result: tuple[str, str, int], status: int = 0) -> str:
        out, err, code = result
        self.assertEqual(code, status, f"exit {code}; stdout {out!r}; stderr {err!r}")
        return out

    @defer.inlineCallbacks
    def register(self, runner: CliRunner, name: str) -> Any:
        out = self.check((yield runner.run("--secret-file", str(self.server.secret_file),
                                           "register", name, "--email",
                                           f"{name}@example.org")))
        self.assertIn(f"registered and logged in as {name}", out)

    @defer.inlineCallbacks
    def test_two_users_exchange_messages_through_the_cli(self):
        """Alice and Bob register, find and add each other, exchange messages with send,
        read them with tail and history: the CLI alone, one process per command."""
        yield self.register(self.alice, "alice")
        yield self.register(self.bob, "bob")
        self.assertEqual(self.check((yield self.alice.run("search", "bo"))), "bob\n")
        self.assertIn("added bob", self.check((yield self.alice.run("add", "bob"))))
        self.assertEqual(self.check((yield self.alice.run("contacts"))), "bob\toffline\n")
        sent = self.check((yield self.alice.run("send", "bob", "hello", "bob")))
        self.assertRegex(sent, r"^sent #\d+ to bob\n$")

        # Bob follows his messages while Alice sends another one.
        tail = self.bob.run("tail", "--count", "2")
        self.check((yield self.alice.run("send", "bob", "are you there?")))
        out = self.check((yield tail))
        lines = out.splitlines()
        self.assertEqual(len(lines), 2, out)
        self.assertTrue(lines[0].endswith("alice -> bob: hello bob"), lines)
        self.assertTrue(lines[1].endswith("alice -> bob: are you there?"), lines)

        self.check((yield self.bob.run("send", "alice", "yes!")))
        history = self.check((yield self.alice.run("history", "bob")))
        self.assertEqual([line.split(": ", 1)[1] for line in history.splitlines()],
                         ["hello bob", "are you there?", "yes!"])
        as_json = self.check((yield self.alice.run("--json", "history", "bob")))
        self.assertIn('"message": "yes!"', as_json.splitlines()[-1])

        # Bob's next tail starts after what he has seen: only the new message.
        self.check((yield self.alice.run("send", "bob", "one more")))
        out = self.check((yield self.bob.run("tail", "--count", "1")))
        self.assertTrue(out.strip().endswith("alice -> bob: one more"), out)

        self.assertIn("logged out alice", self.check((yield self.alice.run("logout"))))
        out, err, code = yield self.alice.run("contacts")
        self.assertEqual(code, cli.EXIT_LOGIN)
        self.assertIn("log in", err)

    @defer.inlineCallbacks
    def test_failures_are_one_clear_line_and_a_nonzero_status(self):
        """hmac error, wrong password, already connected and server key changed each end
        the CLI with one line on stderr and a non-zero exit status."""
        yield self.register(self.alice, "alice")

        wrong_secret = self.alice.home / "wrong-secret"
        wrong_secret.write_text("not the secret\n")
        out, err, code = yield self.bob.run("--secret-file", str(wrong_secret), "login",
                                            "alice")
        self.assertEqual((code, err.count("\n")), (cli.EXIT_CONNECTION, 1), err)
        self.assertIn("error: hmac error", err)

        out, err, code = yield self.bob.run("--secret-file", str(self.server.secret_file),
                                            "login", "alice", MESSENGER_PASSWORD="nope")
        self.assertEqual(code, cli.EXIT_REFUSED)
        self.assertIn("error: wrong account name or password", err)

        tail = self.alice.run("tail", "--count", "1")
        yield self.wait_until_online("alice")
        out, err, code = yield self.bob.run("--secret-file", str(self.server.secret_file),
                                            "login", "alice")
        self.assertEqual(code, cli.EXIT_REFUSED)
        self.assertIn("error: already connected", err)
        yield self.register(self.bob, "bob")
        self.check((yield self.bob.run("send", "alice", "release the tail")))
        self.check((yield tail))

        pins = self.bob.config / "known_servers"
        stale = keys.fingerprint(rsa_key("server-2", 2048).public_key())
        pins.write_text(f"127.0.0.1:{self.server.port} {stale}\n")
        out, err, code = yield self.bob.run("contacts")
        self.assertEqual((code, err.count("\n")), (cli.EXIT_CONNECTION, 1), err)
        self.assertIn("error: server key changed", err)
        self.assertIn("--accept-new-key", err)
        out, err, code = yield self.bob.run("--accept-new-key", "contacts")
        self.assertEqual(code, 0, err)
        self.assertIn("accepted the new server key", err)
        self.assertNotIn(stale, pins.read_text())

    @defer.inlineCallbacks
    def wait_until_online(self, name: str) -> Any:
        """Until the server shows ``name`` online to a third user who added it."""
        watcher = MessengerClient("127.0.0.1", self.server.port, self.server.secret,
                                  config_dir=Path(self.mktemp()),
                                  client_key=rsa_key("client", 2048))
        self.addCleanup(watcher.stop)
        yield watcher.register("watcher", PASSWORD, "watcher@example.org")
        reply = yield watcher.add_contact(name)
        status = [reply["contact"]["status"]]
        watcher.subscribe("presence", lambda change: status.append(change.status))
        yield wait_for(lambda: status[-1] == "online", what=f"{name} online")


class _ChatProcess(protocol.ProcessProtocol):
    """messenger-cli chat as a child: the test types lines into its standard input."""

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
        tail = bob.run("--timeout", "60", "tail", "--count", "6")
        # The kill must not come before bob's tail has connected for the first time (a
        # first connection that fails is an error, not a reconnect).
        yield wait_until_online(server, "bob")
        chat = _ChatProcess()
        argv = [sys.executable, "-m", "messenger.client.cli", "--server",
                f"127.0.0.1:{server.port}", "--timeout", "60", "chat", "bob"]
        reactor.spawnProcess(chat, sys.executable, argv, env=alice.env(), path=str(ROOT))
        yield wait_for(lambda: b"chatting with bob" in chat.err, what="chat to start")
        chat.type("one", "two", "three")
        yield wait_for(lambda: chat.sent() == 3, what="three messages acknowledged")
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
        out, err, code = yield tail
        self.assertEqual(code, 0, err)
        self.assertEqual([line.split(": ", 1)[1] for line in out.splitlines()],
                         ["one", "two", "three", "four", "five", "six"])
        history = yield alice.run("history", "bob")
        self.assertEqual([line.split(": ", 1)[1] for line in history[0].splitlines()],
                         ["one", "two", "three", "four", "five", "six"])


@defer.inlineCallbacks
def wait_until_online(server, name: str, timeout: float = 30.0):
    """Poll the server's control socket (messenger-admin online) until ``name`` is on."""
    from twisted.internet import threads

    from messenger.admin import control
    deadline = reactor.seconds() + timeout
    while True:
        sessions = yield threads.deferToThread(control.online,
                                               server.data_dir / "control.sock")
        if any(entry["account_name"] == name for entry in sessions):
            return
        if reactor.seconds() > deadline:
            raise AssertionError(f"{name} did not come online")
        yield task.deferLater(reactor, 0.05, lambda: None)

