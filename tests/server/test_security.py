"""Security features end to end: the e-mails (welcome, new location, lockout) through a
real twisted.mail SMTP server on loopback, account lockout with expiry and admin unlock,
rate limits (connections and logins per address, requests per connection), and the TLS
listener with a generated certificate. A real server, real SQLite files, real sockets."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import ISSLTransport
from twisted.trial import unittest

from messenger.admin.certs import generate_self_signed
from messenger.client.tls import (
    CertificateNotTrusted,
    PinnedCertificateMismatch,
    client_tls_options,
    describe_tls_failure,
)
from messenger.server.config import LimitsConfig, MailConfig, TlsConfig
from tests.support import jimclient
from tests.support.jimclient import new_user, raw_connect, wait_closed
from tests.support.server import start_server
from tests.support.services import OnPostgres
from tests.support.smtp import SMTPRelay

PASSWORD = "correct horse"


def credentials(name: str, password: str = PASSWORD) -> dict[str, Any]:
    return {"user": {"account_name": name, "password": password}}


@defer.inlineCallbacks
def wait_for_empty_queue(mailer: Any) -> Any:
    """Until nothing waits in the mail spool (each look is one read of the spool)."""
    while True:
        pending = yield mailer.pending()
        if not pending:
            return
        yield sleep(0.02)


def sleep(seconds: float) -> defer.Deferred[None]:
    return task.deferLater(reactor, seconds, lambda: None)


class MailTests(unittest.TestCase):
    """Each e-mail reaches a real SMTP server with the right recipient, subject and body."""

    timeout = 40

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.relay = SMTPRelay()
        relay_port = yield self.relay.start()
        self.addCleanup(self.relay.stop)
        mail = MailConfig(relay_host="127.0.0.1", relay_port=relay_port,
                          retry_initial=0.1, retry_max=0.5, relay_timeout=5.0,
                          server_name="Testchat", from_address="Testchat <chat@example.org>")
        limits = LimitsConfig(lockout_failures=3, lockout_window=60.0, lockout_duration=3.0)
        self.server = yield start_server(self, mail=mail, limits=limits)
        self.port = self.server.tcp_port

    @defer.inlineCallbacks
    def login(self, name: str, password: str = PASSWORD, bind: str | None = None) -> Any:
        client = yield jimclient.connect(self, self.port, bind=bind)
        reply = yield client.request("authenticate", **credentials(name, password))
        return client, reply

    @defer.inlineCallbacks
    def login_and_quit(self, name: str, bind: str | None = None,
                       password: str = PASSWORD) -> Any:
        client, reply = yield self.login(name, password, bind=bind)
        self.assertEqual(reply["response"], 200)
        yield client.request("quit")
        yield wait_closed(client)

    @defer.inlineCallbacks
    def settle(self, count: int) -> Any:
        """Wait for ``count`` mails, then until the server's mail queue is empty: no more
        can come after that."""
        yield self.relay.wait_for(count, timeout=15)
        yield wait_for_empty_queue(self.server.mailer)
        self.assertEqual(len(self.relay.received), count,
                         [m.message["Subject"] for m in self.relay.received])
        return self.relay.received

    def subjects(self) -> list[str]:
        return sorted(str(m.message["Subject"]) for m in self.relay.received)

    @defer.inlineCallbacks
    def test_welcome(self) -> Any:
        """register sends one welcome e-mail to the new account's address."""
        client, reply = yield jimclient.register(self, self.port, "alice")
        self.assertEqual(reply["response"], 201)
        (mail,) = yield self.settle(1)
        self.assertEqual(mail.rcpt_to, ["alice@example.org"])
        self.assertEqual(mail.mail_from, "chat@example.org")
        self.assertEqual(mail.message["To"], "alice@example.org")
        self.assertEqual(mail.message["Subject"], "Welcome to Testchat, alice")
        self.assertIn("Hello alice,", mail.body)
        self.assertIn("for this e-mail address (alice@example.org)", mail.body)
        self.assertIn("(the registration came from 127.0.0.1)", " ".join(mail.body.split()))
        self.assertNotIn(PASSWORD, mail.raw.decode("utf-8"))

    @defer.inlineCallbacks
    def test_new_location_once_per_new_address(self) -> Any:
        """A login from an address not in the history: one e-mail; the same address again
        or a known one: none; another new address: one more."""
        client, _ = yield jimclient.register(self, self.port, "alice")
        yield client.request("quit")
        yield wait_closed(client)
        yield self.relay.wait_for(1)
        yield self.login_and_quit("alice")                      # 127.0.0.1: known
        yield self.login_and_quit("alice", bind="127.0.0.2")    # new
        yield self.relay.wait_for(2)
        yield self.login_and_quit("alice", bind="127.0.0.2")    # known now
        yield self.login_and_quit("alice")
        yield self.login_and_quit("alice", bind="127.0.0.3")    # new
        mails = yield self.settle(3)
        self.assertEqual(self.subjects(), [
            "New login to your Testchat account from 127.0.0.2",
            "New login to your Testchat account from 127.0.0.3",
            "Welcome to Testchat, alice"])
        new_location = [m for m in mails if "127.0.0.2" in str(m.message["Subject"])][0]
        self.assertEqual(new_location.rcpt_to, ["alice@example.org"])
        self.assertIn("From:  127.0.0.2", new_location.body)
        self.assertIn("your account alice on Testchat was just used", new_location.body)

    @defer.inlineCallbacks
    def test_failed_logins_from_a_new_address_send_nothing(self) -> Any:
        """Only a successful login counts as a location."""
        client, _ = yield jimclient.register(self, self.port, "alice")
        yield client.request("quit")
        _, reply = yield self.login("alice", "wrong password", bind="127.0.0.4")
        self.assertEqual(reply["response"], 402)
        yield self.settle(1)
        self.assertEqual(self.subjects(), ["Welcome to Testchat, alice"])

    @defer.inlineCallbacks
    def test_lockout(self) -> Any:
        """3 failures lock the account: one warning e-mail; the right password while locked
        still gets 403 with the unlock time; the lock expires by itself."""
        client, _ = yield jimclient.register(self, self.port, "alice")
        yield client.request("quit")
        yield wait_closed(client)
        attacker = yield jimclient.connect(self, self.port, bind="127.0.0.5")
        for _ in range(3):
            reply = yield attacker.request("authenticate",
                                           **credentials("alice", "guess"))
            self.assertEqual(reply["response"], 402)
        locked_at = time.time()
        _, reply = yield self.login("alice")
        self.assertEqual(reply["response"], 403)
        self.assertTrue(reply["error"].startswith("account locked until "), reply["error"])
        self.assertTrue(reply["error"].endswith(" UTC"))
        self.assertLess(abs(reply["locked_until"] - (locked_at + 3.0)), 1.0)
        for _ in range(3):   # while locked: refused before the password is even looked at
            reply = yield attacker.request("authenticate", **credentials("alice", "guess"))
            self.assertEqual(reply["response"], 403)
        mails = yield self.settle(2)
        (warning,) = [m for m in mails if "locked" in str(m.message["Subject"])]
        self.assertEqual(warning.rcpt_to, ["alice@example.org"])
        unlock = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(reply["locked_until"]))
        self.assertEqual(warning.message["Subject"],
                         f"Your Testchat account is locked until {unlock}")
        self.assertIn("The last failed attempt came from 127.0.0.5.", warning.body)
        self.assertIn(f"The lock lifts by itself at {unlock}.", warning.body)
        yield sleep(max(0.0, reply["locked_until"] - time.time()) + 0.1)
        client, reply = yield self.login("alice")
        self.assertEqual(reply["response"], 200)
        yield client.request("quit")
        yield wait_closed(client)
        # A second lockout later gets its own warning: one per lockout.
        for _ in range(3):
            yield attacker.request("authenticate", **credentials("alice", "guess"))
        yield self.settle(3)
        self.assertEqual(sum("locked" in s for s in self.subjects()), 2)

    @defer.inlineCallbacks
    def test_no_mail_to_auto_registered_accounts(self) -> Any:
        """Auto-registered accounts have no real address: nothing is queued for them."""
        self.server.config.auto_register = True
        client, reply = yield self.login("ghost", "long enough password")
        self.assertEqual(reply["response"], 201)
        yield client.request("quit")
        yield wait_closed(client)
        yield self.login_and_quit("ghost", bind="127.0.0.6", password="long enough password")
        pending = yield self.server.mailer.pending()
        self.assertEqual(pending, [])
        self.assertEqual(self.relay.received, [])


class MaildirTests(unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def test_welcome_into_the_maildir(self) -> Any:
        """With no relay configured the welcome e-mail lands in DATA_DIR/Maildir/new."""
        server = yield start_server(self)
        yield jimclient.register(self, server.tcp_port, "alice")
        new = Path(server.config.maildir_path) / "new"
        deadline = time.monotonic() + 10
        while not (new.exists() and list(new.iterdir())) and time.monotonic() < deadline:
            yield sleep(0.05)
        (path,) = list(new.iterdir())
        text = path.read_text("utf-8")
        self.assertIn("Delivered-To: alice@example.org", text)
        self.assertIn("Subject: Welcome to Messenger, alice", text)
        self.assertEqual(path.stat().st_mode & 0o077, 0)


class LockoutTests(unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        limits = LimitsConfig(lockout_failures=3, lockout_window=60.0, lockout_duration=600.0)
        self.server = yield start_server(self, limits=limits)
        self.port = self.server.tcp_port
        self.admin, _ = yield jimclient.register(self, self.port, "admin")
        victim, _ = yield jimclient.register(self, self.port, "victim")
        yield victim.request("quit")
        yield wait_closed(victim)

    @defer.inlineCallbacks
    def attempt(self, password: str) -> Any:
        client = yield jimclient.connect(self, self.port)
        reply = yield client.request("authenticate", **credentials("victim", password))
        yield client.close()
        return reply

    @defer.inlineCallbacks
    def test_parallel_guesses_all_count(self) -> Any:
        """Guesses sent in parallel on many connections are all counted: the lock holds."""
        replies = yield defer.gatherResults([self.attempt("guess") for _ in range(6)])
        self.assertEqual(sorted(r["response"] for r in replies)[:3], [402, 402, 402])
        reply = yield self.attempt(PASSWORD)
        self.assertEqual(reply["response"], 403)

    @defer.inlineCallbacks
    def test_success_clears_the_count(self) -> Any:
        """Two failures, a success, two failures: no lock (the count restarted)."""
        for password in ("a guess", "a guess", PASSWORD, "a guess", "a guess"):
            yield self.attempt(password)
        reply = yield self.attempt(PASSWORD)
        self.assertEqual(reply["response"], 200)

    @defer.inlineCallbacks
    def test_admin_unlock(self) -> Any:
        """An admin unlocks a locked account at once; the owner logs in again."""
        for _ in range(3):
            yield self.attempt("guess")
        reply = yield self.attempt(PASSWORD)
        self.assertEqual(reply["response"], 403)
        listed = yield self.admin.request("admin_list_users", query="victim")
        self.assertTrue(listed["alert"][0]["locked"])
        unlocked = yield self.admin.request("admin_unlock", user_id="victim")
        self.assertEqual(unlocked["response"], 200)
        self.assertFalse(unlocked["user"]["locked"])
        reply = yield self.attempt(PASSWORD)
        self.assertEqual(reply["response"], 200)

    @defer.inlineCallbacks
    def test_admin_lock(self) -> Any:
        """An admin lock holds until an admin unlocks: 403 without an unlock time."""
        locked = yield self.admin.request("admin_lock", user_id="victim")
        self.assertEqual(locked["response"], 200)
        reply = yield self.attempt(PASSWORD)
        self.assertEqual((reply["response"], reply["error"], reply["locked_until"]),
                         (403, "account locked by an administrator", None))
        yield self.admin.request("admin_unlock", user_id="victim")
        reply = yield self.attempt(PASSWORD)
        self.assertEqual(reply["response"], 200)

    @defer.inlineCallbacks
    def test_locked_token_login(self) -> Any:
        """A resume token does not get round a lock."""
        client = yield jimclient.connect(self, self.port)
        reply = yield client.request("authenticate", remember=True, **credentials("victim"))
        token = reply["token"]
        yield client.request("quit")
        yield wait_closed(client)
        yield self.admin.request("admin_lock", user_id="victim")
        client = yield jimclient.connect(self, self.port)
        reply = yield client.request("resume", user={"account_name": "victim"}, token=token)
        self.assertEqual(reply["response"], 403)


class RateLimitTests(unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def start(self, **limits: Any) -> Any:
        self.server = yield start_server(self, limits=LimitsConfig(**limits))
        self.port = self.server.tcp_port

    @defer.inlineCallbacks
    def test_connections_per_address(self) -> Any:
        """Past N connections a minute from one address: a plain 429 and a close; other
        addresses are served."""
        yield self.start(connections_per_minute=3)
        clients = []
        for _ in range(3):
            raw = yield raw_connect(self, self.port)
            clients.append(raw)
        refused = yield raw_connect(self, self.port)
        yield wait_closed(refused)
        (frame,) = refused.frames()
        message = json.loads(frame)
        self.assertEqual((message["response"], message["error"]),
                         (429, "too many connections from your address"))
        self.assertGreater(message["retry_after"], 0)
        client, reply = yield jimclient.register(self, self.port, "other", bind="127.0.0.2")
        self.assertEqual(reply["response"], 201)
        for raw in clients:
            self.assertTrue(raw.connected_)

    @defer.inlineCallbacks
    def test_logins_per_address(self) -> Any:
        """Past N login attempts a minute from one address: 429 with retry_after; nothing
        is checked or counted; other addresses log in."""
        yield self.start(logins_per_minute=4, lockout_failures=3)
        client, _ = yield jimclient.register(self, self.port, "alice")   # attempt 1
        yield client.request("quit")
        guesser = yield jimclient.connect(self, self.port)
        for _ in range(3):
            reply = yield guesser.request("authenticate", **credentials("bob", "guess"))
            self.assertEqual(reply["response"], 402)
        reply = yield guesser.request("authenticate", **credentials("alice", "guess"))
        self.assertEqual(reply["response"], 429)
        self.assertEqual(reply["error"],
                         "too many login attempts from your address; try again later")
        self.assertGreater(reply["retry_after"], 0)
        self.assertTrue(guesser.connected_)
        other = yield jimclient.connect(self, self.port, bind="127.0.0.2")
        reply = yield other.request("authenticate", **credentials("alice"))
        self.assertEqual(reply["response"], 200)

    @defer.inlineCallbacks
    def test_requests_per_connection(self) -> Any:
        """A flood: 429s with retry_after, then a drop; other connections are served."""
        yield self.start(requests_per_second=0.1, request_burst=5, strikes_before_drop=3)
        flooder, _ = yield jimclient.register(self, self.port, "flooder")   # request 1
        calm, _ = yield jimclient.register(self, self.port, "calm", bind="127.0.0.2")
        for _ in range(4):                                                  # 2 to 5
            reply = yield flooder.request("get_contacts")
            self.assertEqual(reply["response"], 202)
        # The rest of a flood is refused (nothing done), and the connection is dropped
        # on the 4th refusal in a row: requests after it get no answer.
        results = yield defer.DeferredList(
            [flooder.request("get_contacts") for _ in range(8)], consumeErrors=True)
        replies = [value for ok, value in results if ok]
        self.assertEqual([r["response"] for r in replies], [429] * 4)
        self.assertEqual([r["error"] for r in replies],
                         ["too many requests; slow down"] * 3
                         + ["too many requests; closing the connection"])
        self.assertGreater(replies[0]["retry_after"], 5)
        yield wait_closed(flooder)
        reply = yield calm.request("get_contacts")
        self.assertEqual(reply["response"], 202)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TlsListenerTests(unittest.TestCase):
    """The optional TLS listener: a real TLS handshake with a generated certificate."""

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        base = Path(self.mktemp())
        self.cert, self.key = base / "tls" / "cert.pem", base / "tls" / "key.pem"
        generate_self_signed("127.0.0.1", self.cert, self.key)
        self.other_cert = base / "other" / "cert.pem"
        generate_self_signed("127.0.0.1", self.other_cert, base / "other" / "key.pem")
        for attempt in range(5):
            tls = TlsConfig(port=free_port(), cert=str(self.cert), key=str(self.key))
            try:
                self.server = yield start_server(self, tls=tls)
            except CannotListenError:
                if attempt == 4:
                    raise
                continue
            break
        self.tls_port = self.server.tls_listen_port

    @defer.inlineCallbacks
    def test_jim_over_tls(self) -> Any:
        """A client pinning the generated certificate: TLS, then the JIM handshake and a
        registration, inside TLS 1.2 or newer."""
        creator = client_tls_options("127.0.0.1", pinned_cert=str(self.cert))
        client = yield jimclient.connect(self, self.tls_port, tls=creator)
        self.assertTrue(ISSLTransport.providedBy(client.transport))
        version = client.transport.getHandle().get_protocol_version_name()
        self.assertIn(version, ("TLSv1.2", "TLSv1.3"))
        reply = yield client.request("register", **new_user("alice"))
        self.assertEqual(reply["response"], 201)
        plain, reply = yield jimclient.register(self, self.server.tcp_port, "bob")
        self.assertEqual(reply["response"], 201)

    @defer.inlineCallbacks
    def test_ca_file_mode(self) -> Any:
        """The self-signed certificate also works as the client's CA file."""
        creator = client_tls_options("127.0.0.1", ca_file=str(self.cert))
        client = yield jimclient.connect(self, self.tls_port, tls=creator)
        reply = yield client.request("register", **new_user("alice"))
        self.assertEqual(reply["response"], 201)

    @defer.inlineCallbacks
    def test_wrong_pinned_certificate(self) -> Any:
        """A client pinning another certificate refuses the server, and says why."""
        creator = client_tls_options("127.0.0.1", pinned_cert=str(self.other_cert))
        client = yield jimclient.connect(self, self.tls_port, handshake=False, tls=creator)
        (failure,) = yield client.ready.addCallbacks(lambda _: [None], lambda f: [f])
        self.assertTrue(failure.check(PinnedCertificateMismatch), failure)
        self.assertIn("is not the pinned certificate", describe_tls_failure(failure))
        self.assertIsNone(client.channel)
        yield self.assert_tls_still_serving()

    @defer.inlineCallbacks
    def test_untrusted_certificate(self) -> Any:
        """A client trusting another CA refuses the server's certificate."""
        creator = client_tls_options("127.0.0.1", ca_file=str(self.other_cert))
        client = yield jimclient.connect(self, self.tls_port, handshake=False, tls=creator)
        (failure,) = yield client.ready.addCallbacks(lambda _: [None], lambda f: [f])
        self.assertTrue(failure.check(CertificateNotTrusted), failure)
        yield self.assert_tls_still_serving()

    @defer.inlineCallbacks
    def assert_tls_still_serving(self) -> Any:
        creator = client_tls_options("127.0.0.1", pinned_cert=str(self.cert))
        client = yield jimclient.connect(self, self.tls_port, tls=creator)
        reply = yield client.request("register", **new_user(f"w{int(time.time() * 1e6)}"))
        self.assertEqual(reply["response"], 201)


class LockoutTestsOnPostgres(OnPostgres, LockoutTests):
    """The same on a PostgreSQL store."""
