"""The client core against a real server in this process: real sockets on loopback,
real handshake and crypto, real SQLite, and TLS. Every failure arrives as its typed
error (`messenger.client.errors`); the limits come from the login reply."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import defer, reactor
from twisted.trial import unittest

from messenger.admin.certs import generate_self_signed
from messenger.client.core import MessengerClient
from messenger.client.errors import (
    AlreadyConnected,
    ConnectionRefused,
    EmailTaken,
    HmacError,
    MessageTooLong,
    NameTaken,
    NotFound,
    RequestTooLarge,
    ServerKeyChanged,
    TlsRefused,
    WrongCredentials,
)
from messenger.client.reconnect import backoff_policy
from messenger.client.tls import client_tls_options
from messenger.server.config import TlsConfig
from messenger.server.service import MessengerServer
from messenger.wire import keys
from tests.support.keys import rsa_key
from tests.support.server import SECRET, start_server
from tests.support.twistd_server import free_port, wait_for

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
        # Bob's presence reaches Alice on her own connection: wait for it, not for time.
        yield wait_for(lambda: presence, what="bob's presence at alice")
        self.assertEqual([m["message"] for m in history["alert"]], ["hello bob"])
        self.assertEqual([(m.msg_id, m.text) for m in received],
                         [(reply["msg_id"], "hello bob")])
        self.assertEqual([(p.account_name, p.status) for p in presence], [("bob", "away")])

    @defer.inlineCallbacks
    def test_refusals_carry_code_and_text(self):
        """Error replies fail with the error class of their code and the server's text."""
        alice = self.client(self.port)
        yield alice.register("alice", PASSWORD, "alice@example.org")
        error = yield self.assertFailure(alice.add_contact("nobody"), NotFound)
        self.assertEqual((error.code, error.message), (404, "no user named 'nobody'"))
        failed = yield self.assertFailure(alice.send_message("nobody", "hi"), NotFound)
        self.assertEqual(failed.code, 404)

    @defer.inlineCallbacks
    def test_login_refusals_are_typed(self):
        """A wrong password, a live account, a taken name and a taken address each fail
        with their own class, no text to match."""
        alice = self.client(self.port)
        yield alice.register("alice", PASSWORD, "alice@example.org")
        other = self.client(self.port)
        yield self.assertFailure(other.login("alice", "not it"), WrongCredentials)
        self.assertEqual(other.state.name, "login_required")
        yield self.assertFailure(other.login("alice", PASSWORD), AlreadyConnected)
        yield self.assertFailure(other.register("Alice", PASSWORD, "a2@example.org"),
                                 NameTaken)
        yield self.assertFailure(other.register("alice2", PASSWORD, "alice@example.org"),
                                 EmailTaken)

    @defer.inlineCallbacks
    def test_wrong_secret_is_an_hmac_error(self):
        """A client with the wrong shared secret fails with HmacError and stops."""
        client = self.client(self.port, secret=b"wrong secret")
        yield self.assertFailure(client.login("alice", PASSWORD), HmacError)
        self.assertEqual((client.state.name, client.state.reason), ("failed", "hmac error"))

    @defer.inlineCallbacks
    def test_changed_server_key_is_refused_then_accepted_on_purpose(self):
        """A pinned fingerprint that differs from the server's key refuses the connection
        with a message naming both and the way out; accept_new_key re-pins."""
        config_dir = Path(self.mktemp())
        address = f"127.0.0.1:{self.port}"
        config_dir.mkdir()
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

    @defer.inlineCallbacks
    def test_accept_new_key_applies_to_the_next_connection_only(self):
        """accept_new_key is spent by the first connection: a key that changes again
        later in the same client's life is refused loudly."""
        config_dir = Path(self.mktemp())
        config_dir.mkdir()
        pins = config_dir / "known_servers"
        address = f"127.0.0.1:{self.port}"
        first = keys.fingerprint(rsa_key("server-2", 2048).public_key())
        pins.write_text(f"{address} {first}\n")
        client = self.client(self.port, config_dir=config_dir, accept_new_key=True)
        yield client.register("alice", PASSWORD, "alice@example.org")
        self.assertFalse(client.accept_new_key)
        yield client.stop()
        second = keys.fingerprint(rsa_key("server-3", 2048).public_key())
        pins.write_text(f"{address} {second}\n")      # as if the key had changed again
        yield self.assertFailure(client.start(), ServerKeyChanged)
        self.assertEqual(client.state.name, "failed")

    @defer.inlineCallbacks
    def test_limits_come_from_the_login_reply(self):
        """The server announces its limits at login and the client keeps to them: a body
        over max_body and a frame over max_frame are refused before they are sent, and
        the session stays up."""
        server = yield start_server(self, max_body=100, max_frame=4096)
        client = self.client(server.tcp_port)
        yield client.register("alice", PASSWORD, "alice@example.org")
        self.assertEqual((client.limits.max_body, client.limits.max_frame,
                          client.limits.max_payload), (100, 4096, 1048576))
        error = self.assertRaises(MessageTooLong, client.queue_message, "alice", "x" * 101)
        self.assertEqual((error.size, error.limit), (101, 100))
        yield self.assertFailure(client.request("search_users", {"query": "q" * 5000}),
                                 RequestTooLarge)
        contacts = yield client.get_contacts()
        self.assertEqual((contacts["response"], client.state.name), (202, "online"))


class RestartTests(ServerTestCase):
    @defer.inlineCallbacks
    def test_refused_while_down_reconnects_within_a_second_of_the_server(self):
        """While the server is down its host refuses connections: the client keeps its
        next attempt at most a second away (however many failed), so it is back on the
        first attempt after the server is."""
        server = yield start_server(self)
        port = server.tcp_port
        client = self.client(port, backoff=backoff_policy(0.5, 30.0))
        yield client.register("alice", PASSWORD, "alice@example.org")
        waits = []
        client.subscribe("state", lambda state: state.name == "reconnecting"
                         and waits.append((state.retry_in, type(state.error))))
        yield server.stop()
        yield wait_for(lambda: len(waits) >= 4, what="four refused attempts")
        self.assertTrue(all(wait <= 1.0 and kind is ConnectionRefused
                            for wait, kind in waits[1:]), waits)
        server.config.port = port
        restarted = MessengerServer(server.config, reactor)
        yield restarted.start()
        self.addCleanup(restarted.stop)
        attempts = len(waits)
        yield wait_for(lambda: client.state.name == "online", what="online again")
        self.assertLessEqual(len(waits), attempts + 1)


class KeepaliveTests(ServerTestCase):
    @defer.inlineCallbacks
    def test_probes_are_answered(self):
        """With the server probing every 0.1 s and dropping after 0.3 s without an
        answer, an idle client answers ten probes in a row on one connection."""
        server = yield start_server(self, probe_interval=0.1, probe_timeout=0.3)
        client = self.client(server.tcp_port)
        states = []
        client.subscribe("state", lambda state: states.append(state.name))
        yield client.register("alice", PASSWORD, "alice@example.org")
        protocol = client._service.connection.protocol
        yield wait_for(lambda: protocol.probes_answered >= 10, what="ten probes")
        self.assertIs(client._service.connection.protocol, protocol)
        self.assertEqual(states[-1], "online")
        self.assertNotIn("reconnecting", states)

    @defer.inlineCallbacks
    def test_quit_ends_the_session_at_once(self):
        """stop() says quit and the server lets go of the account then, not after its
        probe timeout (30 s here, so nothing else could release it in time)."""
        server = yield start_server(self)
        client = self.client(server.tcp_port)
        yield client.register("alice", PASSWORD, "alice@example.org")
        user_id = next(iter(server.ctx.router._sessions))
        yield client.stop()
        yield wait_for(lambda: not server.ctx.router.is_online(user_id), timeout=10,
                       what="the session released")


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
        """A certificate other than the pinned one fails the login with TlsRefused,
        whose message is TLS's reason."""
        other = Path(self.mktemp())
        generate_self_signed("localhost", other / "o.crt", other / "o.key")
        tls = client_tls_options("localhost", pinned_cert=str(other / "o.crt"))
        client = self.client(self.tls_port, host="localhost", tls=tls)
        error = yield self.assertFailure(client.login("alice", PASSWORD), TlsRefused)
        self.assertIn("pinned certificate", error.message)
        self.assertEqual(client.state.name, "failed")
