"""Tests for messenger.client.errors: one class per condition, in a hierarchy a front end
can catch by what it means."""

from __future__ import annotations

from twisted.trial import unittest

from messenger.client import errors


class HierarchyTests(unittest.TestCase):
    def test_everything_is_a_messenger_error_with_a_message(self):
        """A front end can catch one base class and always show ``message``."""
        for name in errors.__all__:
            cls = getattr(errors, name)
            self.assertTrue(issubclass(cls, errors.MessengerError), name)

    def test_unreachable_is_told_apart_from_a_judgement(self):
        """Refused, unknown host, timed out, closed, silent are ServerUnreachable (the
        password was never judged); credentials, locks and handshake refusals are not."""
        for cls in (errors.ConnectionRefused, errors.HostNotFound, errors.ConnectTimedOut,
                    errors.ConnectionClosed, errors.NoResponse):
            self.assertTrue(issubclass(cls, errors.ServerUnreachable), cls)
        for cls in (errors.WrongCredentials, errors.AccountLocked, errors.HmacError,
                    errors.ServerKeyChanged, errors.TlsRefused, errors.PasswordNeeded):
            self.assertFalse(issubclass(cls, errors.ServerUnreachable), cls)

    def test_refinements_keep_the_class_of_their_code(self):
        """Code that catches Conflict or Forbidden still catches the finer classes."""
        self.assertTrue(issubclass(errors.AlreadyConnected, errors.Conflict))
        self.assertTrue(issubclass(errors.NameTaken, errors.Conflict))
        self.assertTrue(issubclass(errors.AccountLocked, errors.Forbidden))
        self.assertTrue(issubclass(errors.TokenExpired, errors.PasswordNeeded))
        self.assertTrue(issubclass(errors.PasswordNeeded, errors.NotAuthorised))
        self.assertTrue(issubclass(errors.AlreadyLoggedIn, errors.NotConnected))

    def test_message_too_long_says_both_sizes(self):
        """MessageTooLong carries the size and the limit, and reads as a refusal."""
        error = errors.MessageTooLong(20000, 16384)
        self.assertEqual((error.size, error.limit, error.code), (20000, 16384, 400))
        self.assertIn("16384", error.message)

    def test_server_key_changed_names_the_way_out(self):
        """The address, both fingerprints, the file and --accept-new-key."""
        error = errors.ServerKeyChanged("h:1", "sha256:aa", "sha256:bb", "/x/known_servers")
        for part in ("h:1", "sha256:aa", "sha256:bb", "/x/known_servers",
                     "--accept-new-key"):
            self.assertIn(part, error.message)
        self.assertEqual((error.pinned, error.presented), ("sha256:aa", "sha256:bb"))

    def test_too_many_connections_may_say_when(self):
        """retry_after from the server's refusal, or None."""
        self.assertEqual(errors.TooManyConnections("x", 429, retry_after=3).retry_after,
                         3.0)
        self.assertIsNone(errors.TooManyConnections("x", 429).retry_after)
