"""The client core against a real server in this process: real sockets on loopback,
real handshake and crypto, real SQLite, and TLS."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from messenger.admin.certs import generate_self_signed
from messenger.client.core import MessengerClient
from messenger.client.reconnect import backoff_policy
from messenger.client.tls import PinnedCertificateMismatch, client_tls_options
from messenger.server.config import TlsConfig
from messenger.wire import keys
from messenger.wire.errors import Conflict, NotFound, WrongCredentials
from messenger.wire.handshake import HandshakeError, ServerKeyChanged
from tests.support.keys import rsa_key
from tests.support.server import SECRET, start_server
from tests.support.twistd_server import free_port

PASSWORD = "correct horse"


class ServerTestCase(unittest.TestCase):
    def client(self, port: int, host: str = "127.0.0.1", config_dir: Path | None = None,
               **kwargs) -> MessengerClient:
        options = dict(config_dir=config_dir or Path(self.mktemp()),
                       client_key=rsa_key("client", 2048),
                       backoff=backoff_policy(0.05, 0.2))
        options.update(kwargs)
        client = MessengerClient(host, port, options.pop("secret", SECRET), **options)
        self.addCleanup(client.stop)
        return client


class LiveServerTests(ServerTestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.server = yield start_server(self)
        self.port = self.server.tcp_port

    @defer.inlineCallbacks
    def test_two_clients_exchange_messages_and_presence(self):
        """Alice's message reaches Bob's message observer once; presence flows to her."""
        alice, bob = self.client(self.port), self.client(self.port)
        yield alice.register("alice", PASSWORD, "alice@example.org")
        yield bob.register("bob", PASSWORD, "bob@example.org")
        yield alice.add_contact("bob")
        received, presence = [], []
        bob.subscribe("message", received.append)
        alice.subscribe("presence", presence.append)
        reply = yield alice.send_message("bob", "hello bob")
        self.assertIsInstance(reply["msg_id"], int)
        yield bob.set_presence("away")
        history = yield bob.history("alice")
        self.assertEqual([m["message"] for m in history["alert"]], ["hello bob"])
        self.assertEqual([(m.msg_id, m.text) for m in received],
                         [(reply["msg_id"], "hello bob")])
        self.assertEqual([(p.account_name, p.status) for p in presence], [("bob", "away")])

    @defer.inlineCallbacks
    def test_refusals_carry_code_and_text(self):
        """Error replies fail with the MessengerError subclass of their code and the
        server's text."""
        alice = self.client(self.port)
        yield alice.register("alice", PASSWORD, "alice@example.org")
        error = yield self.assertFailure(alice.add_contact("nobody"), NotFound)
        self.assertEqual((error.code, error.message), (404, "no user named 'nobody'"))
        failed = yield self.assertFailure(alice.send_message("nobody", "hi"), NotFound)
        self.assertEqual(failed.code, 404)

    @defer.inlineCallbacks
    def test_wrong_password_and_already_connected(self):
        """A wrong password fails with 402; a second login of a live account with 409
        'already connected'."""
        alice = self.client(self.port)
        yield alice.register("alice", PASSWORD, "alice@example.org")
        other = self.client(self.port)
        wrong = yield self.assertFailure(other.login("alice", "not it"), WrongCredentials)
        self.assertIn("wrong account name or password", wrong.message)
        self.assertEqual(other.state.name, "login_required")
        busy = yield self.assertFailure(other.login("alice", PASSWORD), Conflict)
        self.assertIn("already connected", busy.message)

    @defer.inlineCallbacks
    def test_wrong_secret_is_an_hmac_error(self):
        """A client with the wrong shared secret fails with 'hmac error' and stops."""
        client = self.client(self.port, secret=b"wrong secret")
        error = yield self.assertFailure(client.login("alice", PASSWORD), HandshakeError)
        self.assertIn("hmac error", error.message)
        self.assertEqual((client.state.name, client.state.reason), ("failed", "hmac error"))

    @defer.inlineCallbacks
    def test_changed_server_key_is_refused_then_accepted_on_purpose(self):
        """A pinned fingerprint that differs from the server's key refuses the connection
        with a message naming both and the way out; accept_new_key re-pins."""
        config_dir = Path(self.mktemp())
        address = f"127.0.0.1:{self.port}"
        (config_dir).mkdir()
        stale = keys.fingerprint(rsa_key("server-2", 2048).public_key())
        (config_dir / "known_servers").write_text(f"{address} {stale}\n")
        client = self.client(self.port, config_dir=config_dir)
        error = yield self.assertFailure(client.register("alice", PASSWORD,
                                                         "alice@example.org"),
                                         ServerKeyChanged)
        for part in (address, stale, "--accept-new-key", str(config_dir)):
            self.assertIn(part, error.message)
        self.assertEqual(client.state.name, "failed")
        accepting = self.client(self.port, config_dir=config_dir, accept_new_key=True)
        events = []
        accepting.subscribe("server_key", events.append)
        yield accepting.register("alice", PASSWORD, "alice@example.org")
        self.assertEqual(events[0].replaced, stale)
        yield accepting.stop()
        self.assertIn(events[0].fingerprint, (config_dir / "known_servers").read_text())


class KeepaliveTests(ServerTestCase):
    @defer.inlineCallbacks
    def test_probes_are_answered_and_quit_ends_the_session_at_once(self):
        """With the server probing every 0.1 s and dropping after 0.3 s without an
        answer, an idle client stays online on one connection; stop() says quit and the
        server lets go of the account at once."""
        server = yield start_server(self, probe_interval=0.1, probe_timeout=0.3)
        client = self.client(server.tcp_port)
        states = []
        client.subscribe("state", lambda state: states.append(state.name))
        yield client.register("alice", PASSWORD, "alice@example.org")
        yield task.deferLater(reactor, 1.5, lambda: None)
        self.assertEqual(states[-1], "online")
        self.assertNotIn("reconnecting", states)
        contacts = yield client.get_contacts()
        self.assertEqual(contacts["response"], 202)
        user_id = next(iter(server.ctx.router._sessions))
        yield client.stop()
        yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertFalse(server.ctx.router.is_online(user_id))


class TlsTests(ServerTestCase):
    @defer.inlineCallbacks
    def setUp(self):
        base = Path(self.mktemp())
        self.cert, key = base / "server.crt", base / "server.key"
        generate_self_signed("localhost", self.cert, key)
        self.tls_port = free_port()
        self.server = yield start_server(self, tls=TlsConfig(self.tls_port, str(self.cert),
                                                             str(key)))

    @defer.inlineCallbacks
    def test_login_and_messages_over_tls(self):
        """With a pinned TLS certificate the whole protocol runs inside TLS."""
        tls = client_tls_options("localhost", pinned_cert=str(self.cert))
        client = self.client(self.tls_port, host="localhost", tls=tls)
        reply = yield client.register("alice", PASSWORD, "alice@example.org")
        self.assertEqual(reply["user"]["account_name"], "alice")
        contacts = yield client.get_contacts()
        self.assertEqual(contacts["alert"], [])

    @defer.inlineCallbacks
    def test_untrusted_certificate_stops_with_its_reason(self):
        """A certificate other than the pinned one fails the login with TLS's reason."""
        other = Path(self.mktemp())
        generate_self_signed("localhost", other / "o.crt", other / "o.key")
        tls = client_tls_options("localhost", pinned_cert=str(other / "o.crt"))
        client = self.client(self.tls_port, host="localhost", tls=tls)
        yield self.assertFailure(client.login("alice", PASSWORD), PinnedCertificateMismatch)
        self.assertEqual(client.state.name, "failed")
        self.assertIn("pinned certificate", client.state.reason)
