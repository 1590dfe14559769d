"""messenger-cli end to end (messenger.client.cli.commands): the CLI run as child
processes (each with its own HOME / XDG_CONFIG_HOME) against the server run by twistd as
a child process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial import unittest

from messenger.client import cli
from messenger.client.cli.commands import Session
from messenger.client.core import MessengerClient
from messenger.client.errors import ServerKeyChanged
from messenger.wire import keys
from tests.client.cli.runner import PASSWORD, CliRunner
from tests.support.keys import rsa_key
from tests.support.twistd_server import start_twistd_server, wait_for


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


class AcceptNewKeyTests(unittest.TestCase):
    def test_accept_new_key_is_spent_by_the_first_connection(self):
        """--accept-new-key trusts a changed key for the run's first connection only: a
        key that changes again later in the same run (a long tail) is refused."""
        config = Path(self.mktemp())
        config.mkdir()
        (config / "secret").write_bytes(b"s\n")
        args = cli.build_parser().parse_args(["--config-dir", str(config), "--server",
                                              "h:1", "--accept-new-key", "tail"])
        session = Session(reactor, cli.Settings(args, {}), cli.Output(False))
        client = session.client
        known = client._saved.known
        known.pin("h:1", keys.fingerprint(rsa_key("server-2", 2048).public_key()))
        outcome = client.check_server_key(rsa_key("server", 2048).public_key())
        self.assertIsNotNone(outcome.replaced)
        self.assertRaises(ServerKeyChanged, client.check_server_key,
                          rsa_key("server-3", 2048).public_key())
