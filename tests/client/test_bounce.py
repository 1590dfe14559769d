"""The client core against the real server run by twistd as a child process: killed
with SIGKILL while a client sends, restarted on the same port and data dir."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from messenger.client.core import MessengerClient
from messenger.client.errors import PasswordNeeded, ServerKeyChanged, TokenExpired
from messenger.client.reconnect import backoff_policy
from messenger.wire import keys
from tests.support.keys import rsa_key
from tests.support.twistd_server import start_twistd_server, wait_for

PASSWORD = "correct horse"


class BounceTestCase(unittest.TestCase):
    timeout = 120

    def client(self, server: Any, config_dir: Path | None = None,
               **kwargs: Any) -> MessengerClient:
        options = dict(config_dir=config_dir or Path(self.mktemp()),
                       client_key=rsa_key("client", 2048),
                       backoff=backoff_policy(0.1, 0.5))
        options.update(kwargs)
        client = MessengerClient("127.0.0.1", server.port, server.secret, **options)
        self.addCleanup(client.stop)
        return client


class ServerKillTests(BounceTestCase):
    @defer.inlineCallbacks
    def test_sigkill_while_sending_stores_and_delivers_each_message_once_in_order(self):
        """Killed mid-send and restarted, the server ends up with every acknowledged or
        pending message exactly once, and the recipient got each once, in order."""
        server = yield start_twistd_server(self)
        alice, bob = self.client(server), self.client(server)
        yield alice.register("alice", PASSWORD, "alice@example.org")
        yield bob.register("bob", PASSWORD, "bob@example.org")
        received, alice_states = [], []
        bob.subscribe("message", received.append)
        alice.subscribe("state", lambda state: alice_states.append(state.name))
        texts = [f"message {n:03d}" for n in range(150)]
        entries: list[Any] = []
        killed: defer.Deferred[Any] = defer.Deferred()
        at_kill: dict[str, int] = {}

        def kill_mid_send(entry: Any) -> None:
            # SIGKILL at the 40th acknowledgement, from inside the client's own callback:
            # the outbox has a full window of messages on the wire right now.
            if entry.status == "acked" and not at_kill and (
                    sum(e.status == "acked" for e in entries) >= 40):
                at_kill["in_flight"] = sum(e.in_flight for e in entries)
                server.kill().chainDeferred(killed)
        alice.subscribe("message_status", kill_mid_send)

        entries += [alice.queue_message("bob", text) for text in texts[:120]]
        yield killed
        unacked_at_kill = sum(e.status == "pending" for e in entries)
        entries += [alice.queue_message("bob", text) for text in texts[120:]]
        yield wait_for(lambda: alice.state.name == "reconnecting", what="reconnecting")
        yield server.start()

        yield defer.gatherResults([entry.when_done() for entry in entries])
        # A duplicate would have been stored before the last acknowledgement, so before
        # this message: once it is in, anything stored twice would be in too.
        yield alice.send_message("bob", "the end")
        yield wait_for(lambda: received and received[-1].text == "the end",
                       what="bob's messages")
        received.pop()

        # The kill really hit mid-send: messages were on the wire, some were resent.
        self.assertGreater(at_kill["in_flight"], 20)
        self.assertGreater(unacked_at_kill, 0)
        self.assertTrue(any(e.attempts > 1 for e in entries))
        self.assertEqual([m.text for m in received], texts)
        msg_ids = [m.msg_id for m in received]
        self.assertEqual(msg_ids, sorted(set(msg_ids)))
        self.assertEqual(msg_ids, [e.msg_id for e in entries])
        stored = yield bob.history("alice", limit=200)
        self.assertEqual([m["message"] for m in stored["alert"]], [*texts, "the end"])
        self.assertIn("reconnecting", alice_states)
        self.assertEqual(alice.state.name, "online")
        self.assertEqual(bob.state.name, "online")

    @defer.inlineCallbacks
    def test_messages_sent_while_the_recipient_is_away_arrive_after_restart(self):
        """A recipient whose client restarts meanwhile syncs from its saved cursor: the
        old messages are not delivered again, the new ones are."""
        server = yield start_twistd_server(self)
        alice = self.client(server)
        bob_dir = Path(self.mktemp())
        bob = self.client(server, config_dir=bob_dir)
        yield alice.register("alice", PASSWORD, "alice@example.org")
        yield bob.register("bob", PASSWORD, "bob@example.org")
        first = []
        bob.subscribe("message", first.append)
        yield alice.send_message("bob", "before")
        yield wait_for(lambda: first, what="the first message")
        yield bob.stop()
        yield alice.send_message("bob", "while away")
        yield server.kill()
        yield server.start()
        again = self.client(server, config_dir=bob_dir)
        later = []
        again.subscribe("message", later.append)
        yield again.start(fail_fast=False)
        self.assertEqual([(m.text, m.from_sync) for m in later], [("while away", True)])


class TokenExpiryTests(BounceTestCase):
    @defer.inlineCallbacks
    def test_expired_token_asks_for_the_password(self):
        """With a token lifetime of under a second, the reconnect after a server restart
        is refused with 401 'resume token expired': the client reports login_required,
        forgets the token, and a password login works again."""
        server = yield start_twistd_server(self, "--token-days", "0.00001")
        config_dir = Path(self.mktemp())
        alice = self.client(server, config_dir=config_dir)
        reply = yield alice.register("alice", PASSWORD, "alice@example.org")
        yield wait_for(lambda: time.time() > reply["token_expires"], what="the expiry")
        yield server.kill()
        yield server.start()
        yield wait_for(lambda: alice.state.name == "login_required", what="login_required")
        self.assertIn("resume token expired", alice.state.reason)
        self.assertIsInstance(alice.state.error, TokenExpired)
        fresh = self.client(server, config_dir=config_dir)
        yield self.assertFailure(fresh.start(), PasswordNeeded)
        yield alice.login("alice", PASSWORD)
        self.assertEqual(alice.state.name, "online")


class ServerKeyChangeTests(BounceTestCase):
    @defer.inlineCallbacks
    def test_new_server_key_after_restart_is_refused_loudly(self):
        """A server back with another key: the reconnecting client stops with
        ServerKeyChanged (no endless retries); --accept-new-key style accepting works."""
        server = yield start_twistd_server(self)
        config_dir = Path(self.mktemp())
        alice = self.client(server, config_dir=config_dir)
        yield alice.register("alice", PASSWORD, "alice@example.org")
        old = keys.fingerprint(rsa_key("server", 2048).public_key())
        new = keys.fingerprint(rsa_key("server-2", 2048).public_key())
        yield server.stop()
        server.set_server_key(rsa_key("server-2", 2048))
        yield server.start()
        yield wait_for(lambda: alice.state.name == "failed", what="failed")
        error = alice.state.error
        self.assertIsInstance(error, ServerKeyChanged)
        for part in ("server key changed", old, new, "known_servers", "--accept-new-key"):
            self.assertIn(part, alice.state.reason)
        self.assertFalse(alice._service.busy)   # no timer, no connection: nothing more
        accepting = self.client(server, config_dir=config_dir, accept_new_key=True)
        yield accepting.start()
        self.assertEqual(accepting.server_fingerprint, new)
