"""Tests for messenger.server.mail.compose: RFC 5322 messages and address checks."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

from twisted.trial.unittest import SynchronousTestCase

from messenger.server.mail.compose import (
    check_address,
    compose,
    message_id,
    split_sender,
    to_text,
)

MAIL_ID = "0123456789abcdef0123456789abcdef"
DATE = 1_800_000_000.0     # 2027-01-15 08:00:00 UTC


def build(**changes):
    values = dict(sender="Messenger <noreply@example.org>", to="alice@example.org",
                  subject="Hello", body="Hi Alice.\n", date=DATE, mail_id=MAIL_ID)
    values.update(changes)
    return compose(**values)


def reparse(message):
    return BytesParser(policy=policy.default).parsebytes(to_text(message).encode("ascii"))


class ComposeTests(SynchronousTestCase):
    """compose builds plain-text UTF-8 messages with the standard headers."""

    def test_headers(self) -> None:
        """From, To, Subject, Date, Message-ID and Auto-Submitted are set."""
        message = reparse(build())
        self.assertEqual(message["From"], "Messenger <noreply@example.org>")
        self.assertEqual(message["To"], "alice@example.org")
        self.assertEqual(message["Subject"], "Hello")
        self.assertEqual(message["Date"], "Fri, 15 Jan 2027 08:00:00 +0000")
        self.assertEqual(message["Message-ID"], f"<{MAIL_ID}@example.org>")
        self.assertEqual(message["Auto-Submitted"], "auto-generated")
        self.assertEqual(message["MIME-Version"], "1.0")

    def test_plain_text_utf8(self) -> None:
        """The body is text/plain; charset=utf-8 and reads back exactly."""
        message = reparse(build(body="Grüße, Ωμέγα und 日本語\nline two"))
        self.assertEqual(message.get_content_type(), "text/plain")
        self.assertEqual(message.get_content_charset(), "utf-8")
        self.assertEqual(message.get_content(), "Grüße, Ωμέγα und 日本語\nline two\n")

    def test_ascii_body_is_7bit(self) -> None:
        """A short-lined ASCII body goes as 7bit, readable in any mail file."""
        message = build()
        self.assertEqual(message["Content-Transfer-Encoding"], "7bit")
        self.assertIn("\n\nHi Alice.\n", to_text(message))

    def test_non_ascii_body_is_quoted_printable(self) -> None:
        """Non-ASCII text is quoted-printable, so the message is pure ASCII on the wire."""
        message = build(body="Grüße")
        self.assertEqual(message["Content-Transfer-Encoding"], "quoted-printable")
        self.assertTrue(to_text(message).isascii())

    def test_long_lines_are_encoded(self) -> None:
        """An ASCII line over 78 characters is quoted-printable, not an overlong 7bit line."""
        message = build(body="x" * 300)
        self.assertEqual(message["Content-Transfer-Encoding"], "quoted-printable")
        self.assertLessEqual(max(len(line) for line in to_text(message).splitlines()), 78)
        self.assertEqual(reparse(message).get_content(), "x" * 300 + "\n")

    def test_non_ascii_subject_and_name(self) -> None:
        """Non-ASCII subjects and sender names are RFC 2047 encoded and read back."""
        message = build(subject="Willkommen, Jürgen", sender='"Bötchen, Chat" <bot@example.org>')
        text = to_text(message)
        self.assertTrue(text.isascii())
        parsed = reparse(message)
        self.assertEqual(parsed["Subject"], "Willkommen, Jürgen")
        self.assertEqual(parsed["From"].addresses[0].display_name, "Bötchen, Chat")
        self.assertEqual(parsed["From"].addresses[0].addr_spec, "bot@example.org")

    def test_bare_sender(self) -> None:
        """A From setting without a name is used as it is."""
        self.assertEqual(build(sender="noreply@localhost")["From"], "noreply@localhost")
        self.assertEqual(build(sender="noreply@localhost")["Message-ID"],
                         f"<{MAIL_ID}@localhost>")

    def test_newline_ending(self) -> None:
        """to_text uses \\n line ends only, and the body ends with a newline."""
        text = to_text(build(body="no newline at end"))
        self.assertNotIn("\r", text)
        self.assertTrue(text.endswith("no newline at end\n"))

    def test_subject_injection_refused(self) -> None:
        """A subject with a line break (header injection) is refused."""
        self.assertRaises(ValueError, build, subject="Hi\nBcc: eve@example.org")
        self.assertRaises(ValueError, build, subject="Hi\r")

    def test_bad_recipient_refused(self) -> None:
        """compose refuses a recipient that is not a plain address."""
        self.assertRaises(ValueError, build, to="Alice <alice@example.org>")
        self.assertRaises(ValueError, build, to="alice@example.org, eve@example.org")


class AddressTests(SynchronousTestCase):
    """check_address and split_sender."""

    def test_good_addresses(self) -> None:
        """Ordinary addresses, plus tags and localhost-style domains, are accepted."""
        for address in ("a@b.org", "first.last+tag@mail.example.co.uk", "messenger@localhost",
                        "x_y-z@sub-domain.example"):
            self.assertEqual(check_address(address), address)

    def test_bad_addresses(self) -> None:
        """Spaces, line breaks, missing parts, non-ASCII and overlong addresses fail."""
        bad = ["", "alice", "@example.org", "alice@", "al ice@example.org",
               "alice@example.org\n", "alice@exa mple.org", "jürgen@example.org",
               "a..b@example.org", "alice@-example.org", "<alice@example.org>",
               "a" * 250 + "@example.org", "alice@example.org>", None]
        for address in bad:
            with self.subTest(address=address):
                self.assertRaises(ValueError, check_address, address)

    def test_split_sender(self) -> None:
        """split_sender separates display name and address; it refuses line breaks."""
        self.assertEqual(split_sender("Messenger <m@example.org>"), ("Messenger", "m@example.org"))
        self.assertEqual(split_sender("m@example.org"), ("", "m@example.org"))
        self.assertRaises(ValueError, split_sender, "Messenger\n <m@example.org>")
        self.assertRaises(ValueError, split_sender, "Messenger")

    def test_message_id(self) -> None:
        """The Message-ID is the spool id at the sender's domain."""
        self.assertEqual(message_id("ab" * 16, "noreply@example.org"),
                         "<" + "ab" * 16 + "@example.org>")
