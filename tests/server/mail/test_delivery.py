"""Tests for messenger.server.mail.delivery: failure policy, Maildir, SMTP over loopback."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.internet import defer, protocol, reactor
from twisted.internet.error import ConnectionRefusedError
from twisted.mail import smtp
from twisted.trial.unittest import SynchronousTestCase, TestCase

from messenger.server.config import MailConfig
from messenger.server.mail import delivery
from messenger.server.mail.compose import compose, to_text
from messenger.server.mail.delivery import (
    DeliveryError,
    MaildirDeliverer,
    SMTPDeliverer,
    classify_failure,
    maildir_name,
    make_deliverer,
    write_to_maildir,
)
from messenger.server.mail.spool import SpoolEntry, new_mail_id
from tests.support.smtp import SMTPRelay, make_certificate

SESSION_LOG = b">>> AUTH PLAIN AHVzZXIAczNjcjN0\n<<< 535 no"


def sync_io(function, *args):
    return defer.maybeDeferred(function, *args)


def make_entry(to: str = "alice@example.org", subject: str = "Hello",
               body: str = "Hi there.\n", created: float = 1_800_000_000.0) -> SpoolEntry:
    mail_id = new_mail_id()
    message = compose(sender="Messenger <noreply@example.org>", to=to, subject=subject,
                      body=body, date=created, mail_id=mail_id)
    return SpoolEntry(mail_id=mail_id, created=created, sender="noreply@example.org", to=to,
                      subject=subject, message=to_text(message), next_attempt=created)


class ClassifyFailureTests(SynchronousTestCase):
    """classify_failure: which SMTP failures are worth a retry."""

    def test_connection_refused_is_temporary(self) -> None:
        """A refused connection (relay down) is retried."""
        exc = smtp.SMTPConnectError(-1, b"Unable to connect to SMTP server: refused")
        error = classify_failure(exc)
        self.assertFalse(error.permanent)
        self.assertIn("relay unavailable", error.message)
        self.assertIsNone(error.code)

    def test_timeout_is_temporary(self) -> None:
        """A relay that stops answering is retried."""
        error = classify_failure(smtp.SMTPTimeoutError(-1, b"Timeout waiting"))
        self.assertFalse(error.permanent)

    def test_recipient_5xx_is_permanent(self) -> None:
        """A 550 for the only recipient fails the mail for good and names the reply."""
        exc = smtp.SMTPDeliveryError(550, b"No recipients accepted", SESSION_LOG,
                                     [(b"bob@example.org", 550, b"No such user")])
        error = classify_failure(exc)
        self.assertTrue(error.permanent)
        self.assertEqual(error.code, 550)
        self.assertIn("bob@example.org", error.message)
        self.assertIn("550 No such user", error.message)

    def test_recipient_4xx_is_temporary(self) -> None:
        """A 450 (mailbox busy, greylisting) for the recipient is retried."""
        exc = smtp.SMTPDeliveryError(450, b"No recipients accepted", SESSION_LOG,
                                     [(b"bob@example.org", 450, b"Try later")])
        error = classify_failure(exc)
        self.assertFalse(error.permanent)
        self.assertEqual(error.code, 450)

    def test_message_5xx_is_permanent(self) -> None:
        """A 554 after DATA (message refused) fails the mail for good."""
        exc = smtp.SMTPDeliveryError(554, b"Message looks like spam", SESSION_LOG,
                                     [(b"bob@example.org", 250, b"OK")])
        error = classify_failure(exc)
        self.assertTrue(error.permanent)
        self.assertIn("refused the message: 554 Message looks like spam", error.message)

    def test_message_4xx_is_temporary(self) -> None:
        """A 451 after DATA (local error at the relay) is retried."""
        exc = smtp.SMTPDeliveryError(451, b"Local error", SESSION_LOG,
                                     [(b"bob@example.org", 250, b"OK")])
        self.assertFalse(classify_failure(exc).permanent)

    def test_sender_refused_is_temporary(self) -> None:
        """A refused MAIL FROM is a configuration problem shared by every mail: retried."""
        exc = smtp.SMTPDeliveryError(550, b"Unauthenticated senders not allowed",
                                     SESSION_LOG, [])
        error = classify_failure(exc)
        self.assertFalse(error.permanent)
        self.assertIn("refused the sender", error.message)

    def test_starttls_missing_is_temporary(self) -> None:
        """STARTTLS required but not offered keeps the mail queued, with a clear reason."""
        error = classify_failure(smtp.TLSRequiredError(502, b"no TLS", SESSION_LOG))
        self.assertFalse(error.permanent)
        self.assertIn("does not offer STARTTLS", error.message)

    def test_auth_declined_is_temporary(self) -> None:
        """Wrong relay credentials keep the mail queued until the configuration is fixed."""
        error = classify_failure(smtp.AUTHDeclinedError(535, b"Authentication failed",
                                                        SESSION_LOG))
        self.assertFalse(error.permanent)
        self.assertIn("username/password", error.message)

    def test_session_log_never_copied(self) -> None:
        """The SMTP session log (with the AUTH exchange) never reaches the error text."""
        for exc in (smtp.AUTHDeclinedError(535, b"no", SESSION_LOG),
                    smtp.SMTPDeliveryError(550, b"no", SESSION_LOG,
                                           [(b"bob@example.org", 550, b"no")]),
                    smtp.SMTPConnectError(-1, b"refused", SESSION_LOG)):
            self.assertNotIn("AHVzZXIAczNjcjN0", classify_failure(exc).message)
            self.assertNotIn(">>>", classify_failure(exc).message)

    def test_unknown_exception_is_temporary(self) -> None:
        """Anything else is taken as temporary (never lose a mail over a surprise)."""
        error = classify_failure(ConnectionRefusedError("nope"))
        self.assertFalse(error.permanent)
        self.assertIn("ConnectionRefusedError", error.message)

    def test_delivery_error_passes_through(self) -> None:
        """A DeliveryError is returned as it is."""
        original = DeliveryError("x", permanent=True, code=554)
        self.assertIs(classify_failure(original), original)

    def test_long_reply_is_cut(self) -> None:
        """A huge relay reply is cut to MAX_ERROR characters."""
        exc = smtp.SMTPConnectError(-1, b"x" * 5000)
        self.assertEqual(len(classify_failure(exc).message), delivery.MAX_ERROR)


class MaildirDelivererTests(SynchronousTestCase):
    """MaildirDeliverer writes standard Maildir files, once per mail."""

    def setUp(self) -> None:
        self.maildir = Path(self.mktemp()) / "Maildir"
        self.deliverer = MaildirDeliverer(self.maildir, run_io=sync_io, hostname="mx.test")

    def test_delivers_into_new(self) -> None:
        """A delivered mail is a file in new/ named time.id.host; tmp/ is left empty."""
        entry = make_entry()
        self.assertIsNone(self.successResultOf(self.deliverer.deliver(entry)))
        self.assertEqual(sorted(os.listdir(self.maildir)), ["cur", "new", "tmp"])
        for path in (self.maildir, self.maildir / "new"):
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o700)
        self.assertEqual(os.listdir(self.maildir / "new"),
                         [f"{int(entry.created)}.{entry.mail_id}.mx.test"])
        self.assertEqual(os.listdir(self.maildir / "tmp"), [])

    def test_file_content(self) -> None:
        """The file holds Return-Path and Delivered-To, then the message unchanged."""
        entry = make_entry()
        self.successResultOf(self.deliverer.deliver(entry))
        (name,) = os.listdir(self.maildir / "new")
        text = (self.maildir / "new" / name).read_text()
        self.assertEqual(text, "Return-Path: <noreply@example.org>\n"
                               "Delivered-To: alice@example.org\n" + entry.message)
        self.assertEqual(os.stat(self.maildir / "new" / name).st_mode & 0o777, 0o600)

    def test_second_delivery_is_skipped(self) -> None:
        """Delivering the same spool entry again (after a crash) makes no second copy."""
        entry = make_entry()
        self.successResultOf(self.deliverer.deliver(entry))
        self.successResultOf(self.deliverer.deliver(entry))
        self.assertEqual(len(os.listdir(self.maildir / "new")), 1)

    def test_read_copy_counts_as_delivered(self) -> None:
        """A copy a mail client moved to cur/ with flags also stops a second delivery."""
        entry = make_entry()
        self.successResultOf(self.deliverer.deliver(entry))
        (name,) = os.listdir(self.maildir / "new")
        os.rename(self.maildir / "new" / name, self.maildir / "cur" / (name + ":2,S"))
        self.successResultOf(self.deliverer.deliver(entry))
        self.assertEqual(os.listdir(self.maildir / "new"), [])
        self.assertEqual(os.listdir(self.maildir / "cur"), [name + ":2,S"])

    def test_two_mails_two_files(self) -> None:
        """Different mails get different names."""
        for _ in range(3):
            self.successResultOf(self.deliverer.deliver(make_entry()))
        self.assertEqual(len(os.listdir(self.maildir / "new")), 3)

    def test_unwritable_maildir_is_temporary(self) -> None:
        """When the Maildir cannot be written the failure is a temporary DeliveryError."""
        self.maildir.parent.mkdir(parents=True)
        self.maildir.write_text("a file, not a directory")
        failure = self.failureResultOf(self.deliverer.deliver(make_entry()), DeliveryError)
        self.assertFalse(failure.value.permanent)
        self.assertIn("cannot write to the Maildir", failure.value.message)

    def test_name_escapes_host(self) -> None:
        """'/' and ':' in the host name are escaped as the Maildir convention says."""
        self.assertEqual(maildir_name(12.9, "ab" * 16, "a/b:c"),
                         "12." + "ab" * 16 + ".a\\057b\\072c")

    def test_write_to_maildir_returns_path(self) -> None:
        """write_to_maildir returns the path in new/ both the first and second time."""
        first = write_to_maildir(self.maildir, "1.x.h", b"Subject: x\n\nbody\n")
        again = write_to_maildir(self.maildir, "1.x.h", b"other")
        self.assertEqual(first, again)
        self.assertEqual(first.read_bytes(), b"Subject: x\n\nbody\n")


class MaildirThreadTests(TestCase):
    """The Maildir deliverer with its default thread runner."""

    def test_default_runner(self) -> None:
        """Without an injected runner the file is written in a thread and appears in new/."""
        maildir = Path(self.mktemp())
        entry = make_entry()
        d = MaildirDeliverer(maildir).deliver(entry)

        def check(_: object) -> None:
            (name,) = os.listdir(maildir / "new")
            self.assertIn(entry.mail_id, name)

        return d.addCallback(check)


class MakeDelivererTests(SynchronousTestCase):
    """make_deliverer picks the deliverer from the configuration."""

    def test_no_relay_means_maildir(self) -> None:
        """With no relay host the mail goes to the Maildir."""
        deliverer = make_deliverer(MailConfig(), Path("Maildir"), reactor)
        self.assertIsInstance(deliverer, MaildirDeliverer)
        self.assertEqual(deliverer.description, "maildir")

    def test_relay_means_smtp(self) -> None:
        """With a relay host the mail goes over SMTP; the description names the relay."""
        deliverer = make_deliverer(MailConfig(relay_host="127.0.0.1", relay_port=2525),
                                   Path("Maildir"), reactor)
        self.assertIsInstance(deliverer, SMTPDeliverer)
        self.assertEqual(deliverer.description, "smtp://127.0.0.1:2525")


class SMTPDelivererTests(TestCase):
    """SMTPDeliverer against a real twisted.mail relay on loopback."""

    timeout = 30

    @defer.inlineCallbacks
    def start_relay(self, **options):
        relay = SMTPRelay(**options)
        yield relay.start()
        self.addCleanup(relay.stop)
        return relay

    def deliverer(self, relay_port: int, **options) -> SMTPDeliverer:
        config = MailConfig(relay_host="127.0.0.1", relay_port=relay_port,
                            relay_timeout=5.0, **options)
        return SMTPDeliverer(config, reactor)

    def ca_file(self, cert_pem: bytes) -> str:
        path = Path(self.mktemp())
        path.write_bytes(cert_pem)
        return str(path)

    @defer.inlineCallbacks
    def test_plain_delivery(self):
        """A mail reaches the relay with the right envelope, headers and body."""
        relay = yield self.start_relay()
        entry = make_entry(body="Grüße aus Berlin.\n")
        result = yield self.deliverer(relay.port).deliver(entry)
        self.assertIsNone(result)
        (mail,) = relay.received
        self.assertEqual(mail.mail_from, "noreply@example.org")
        self.assertEqual(mail.rcpt_to, ["alice@example.org"])
        self.assertEqual(mail.message["Subject"], "Hello")
        self.assertEqual(mail.message["Message-ID"], f"<{entry.mail_id}@example.org>")
        self.assertEqual(mail.body, "Grüße aus Berlin.\n")
        self.assertFalse(mail.tls)

    @defer.inlineCallbacks
    def test_dot_lines_survive(self):
        """A body line that starts with '.' arrives intact (dot-stuffing works)."""
        relay = yield self.start_relay()
        yield self.deliverer(relay.port).deliver(make_entry(body=".\n..two\nend\n"))
        self.assertEqual(relay.received[0].body, ".\n..two\nend\n")

    @defer.inlineCallbacks
    def test_relay_down(self):
        """With nothing listening the attempt fails with a temporary DeliveryError."""
        relay = yield self.start_relay()
        port = relay.port
        yield relay.stop()
        error = yield self.assertFailure(self.deliverer(port).deliver(make_entry()),
                                         DeliveryError)
        self.assertFalse(error.permanent)
        self.assertIn("refused", error.message.lower())

    @defer.inlineCallbacks
    def test_silent_relay_times_out(self):
        """A relay that accepts the connection but never greets fails after relay_timeout."""
        factory = protocol.ServerFactory.forProtocol(protocol.Protocol)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        config = MailConfig(relay_host="127.0.0.1", relay_port=port.getHost().port,
                            relay_timeout=0.3)
        error = yield self.assertFailure(SMTPDeliverer(config, reactor).deliver(make_entry()),
                                         DeliveryError)
        self.assertFalse(error.permanent)
        self.assertIn("Timeout", error.message)

    @defer.inlineCallbacks
    def test_rejected_recipient_permanent(self):
        """A 550 for the recipient is a permanent DeliveryError; nothing is stored."""
        relay = yield self.start_relay(reject=(550, "No such user here"))
        error = yield self.assertFailure(self.deliverer(relay.port).deliver(make_entry()),
                                         DeliveryError)
        self.assertTrue(error.permanent)
        self.assertEqual(error.code, 550)
        self.assertIn("No such user here", error.message)
        self.assertEqual(relay.received, [])

    @defer.inlineCallbacks
    def test_rejected_recipient_temporary(self):
        """A 451 for the recipient is a temporary DeliveryError."""
        relay = yield self.start_relay(reject=(451, "Greylisted, try later"))
        error = yield self.assertFailure(self.deliverer(relay.port).deliver(make_entry()),
                                         DeliveryError)
        self.assertFalse(error.permanent)
        self.assertEqual(error.code, 451)

    @defer.inlineCallbacks
    def test_starttls_required_and_offered(self):
        """With starttls the mail goes inside TLS, verified against relay_ca_file."""
        cert_pem, key_pem = make_certificate("127.0.0.1")
        relay = yield self.start_relay(tls=(cert_pem, key_pem))
        deliverer = self.deliverer(relay.port, starttls=True,
                                   relay_ca_file=self.ca_file(cert_pem))
        yield deliverer.deliver(make_entry())
        (mail,) = relay.received
        self.assertTrue(mail.tls)

    @defer.inlineCallbacks
    def test_starttls_required_not_offered(self):
        """Without STARTTLS at the relay nothing is sent and the failure is temporary."""
        cert_pem, _ = make_certificate("127.0.0.1")
        relay = yield self.start_relay()
        deliverer = self.deliverer(relay.port, starttls=True,
                                   relay_ca_file=self.ca_file(cert_pem))
        error = yield self.assertFailure(deliverer.deliver(make_entry()), DeliveryError)
        self.assertFalse(error.permanent)
        self.assertIn("STARTTLS", error.message)
        self.assertEqual(relay.received, [])

    @defer.inlineCallbacks
    def test_starttls_untrusted_certificate(self):
        """A relay certificate not signed by relay_ca_file stops delivery (temporary)."""
        relay = yield self.start_relay(tls=make_certificate("127.0.0.1"))
        other_cert, _ = make_certificate("127.0.0.1")
        deliverer = self.deliverer(relay.port, starttls=True,
                                   relay_ca_file=self.ca_file(other_cert))
        error = yield self.assertFailure(deliverer.deliver(make_entry()), DeliveryError)
        self.assertFalse(error.permanent)
        self.assertIn("certificate was not accepted", error.message)
        self.assertIn("certificate verify failed", error.message)
        self.assertEqual(relay.received, [])

    @defer.inlineCallbacks
    def test_starttls_wrong_host_name(self):
        """A trusted certificate for another host name is refused too (temporary)."""
        cert_pem, key_pem = make_certificate("mail.example.org")
        relay = yield self.start_relay(tls=(cert_pem, key_pem))
        deliverer = self.deliverer(relay.port, starttls=True,
                                   relay_ca_file=self.ca_file(cert_pem))
        error = yield self.assertFailure(deliverer.deliver(make_entry()), DeliveryError)
        self.assertFalse(error.permanent)
        self.assertIn("certificate was not accepted", error.message)
        self.assertIn("IPAddressMismatch", error.message)
        self.assertEqual(relay.received, [])

    @defer.inlineCallbacks
    def test_no_starttls_means_plain_text(self):
        """With starttls off the mail is sent without TLS even if the relay offers it."""
        relay = yield self.start_relay(tls=make_certificate("127.0.0.1"))
        yield self.deliverer(relay.port).deliver(make_entry())
        self.assertFalse(relay.received[0].tls)

    @defer.inlineCallbacks
    def test_auth_login(self):
        """With username/password the deliverer logs in (LOGIN) before sending."""
        cert_pem, key_pem = make_certificate("127.0.0.1")
        relay = yield self.start_relay(tls=(cert_pem, key_pem), users={"mailer": "s3cr3t"})
        deliverer = self.deliverer(relay.port, starttls=True, username="mailer",
                                   password="s3cr3t", relay_ca_file=self.ca_file(cert_pem))
        yield deliverer.deliver(make_entry())
        (mail,) = relay.received
        self.assertEqual(mail.username, "mailer")
        self.assertTrue(mail.tls)

    @defer.inlineCallbacks
    def test_auth_plain(self):
        """AUTH PLAIN is used when it is the relay's only mechanism."""
        relay = yield self.start_relay(users={"mailer": "s3cr3t"}, mechanisms=(b"PLAIN",))
        deliverer = self.deliverer(relay.port, username="mailer", password="s3cr3t")
        yield deliverer.deliver(make_entry())
        self.assertEqual(relay.received[0].username, "mailer")

    @defer.inlineCallbacks
    def test_auth_wrong_password(self):
        """Refused credentials: temporary, nothing sent, the password not in the error."""
        relay = yield self.start_relay(users={"mailer": "s3cr3t"})
        deliverer = self.deliverer(relay.port, username="mailer", password="wrong-pw")
        error = yield self.assertFailure(deliverer.deliver(make_entry()), DeliveryError)
        self.assertFalse(error.permanent)
        self.assertIn("username/password", error.message)
        self.assertNotIn("wrong-pw", error.message)
        self.assertEqual(relay.received, [])

    @defer.inlineCallbacks
    def test_auth_required_but_not_configured(self):
        """A relay that wants AUTH refuses the sender: temporary, nothing sent."""
        relay = yield self.start_relay(users={"mailer": "s3cr3t"})
        error = yield self.assertFailure(self.deliverer(relay.port).deliver(make_entry()),
                                         DeliveryError)
        self.assertFalse(error.permanent)
        self.assertIn("refused the sender", error.message)

    @defer.inlineCallbacks
    def test_ca_file_with_several_certificates(self):
        """relay_ca_file may hold several PEM certificates; any of them is trusted."""
        first, _ = make_certificate("127.0.0.1", common_name="First test CA")
        second, second_key = make_certificate("127.0.0.1", common_name="Second test CA")
        relay = yield self.start_relay(tls=(second, second_key))
        deliverer = self.deliverer(relay.port, starttls=True,
                                   relay_ca_file=self.ca_file(first + second))
        yield deliverer.deliver(make_entry())
        self.assertTrue(relay.received[0].tls)
