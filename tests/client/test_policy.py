"""Tests for messenger.client.reconnect: back-off, the state table, what failures mean."""

from __future__ import annotations

from OpenSSL import SSL
from twisted.internet import error as net_error
from twisted.trial import unittest

from messenger.client import reconnect
from messenger.client.errors import NotConnected, ProtocolViolation
from messenger.client.events import STATES
from messenger.client.tls import HostnameMismatch
from messenger.wire.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotAuthorised,
    ServerError,
    TooManyRequests,
    WrongCredentials,
)
from messenger.wire.handshake import HandshakeError, ServerKeyChanged


class BackoffTests(unittest.TestCase):
    def test_grows_exponentially_then_caps(self):
        """Without jitter the delay doubles from ``initial`` up to ``maximum``."""
        delays = [reconnect.backoff_delay(n, 0.5, 4.0, 2.0, 0.5, 0.0) for n in range(6)]
        self.assertEqual(delays, [0.5, 1.0, 2.0, 4.0, 4.0, 4.0])

    def test_jitter_takes_off_at_most_its_share(self):
        """Equal jitter keeps each delay within [base * (1 - jitter), base]."""
        for value in (0.0, 0.25, 0.999):
            delay = reconnect.backoff_delay(3, 1.0, 60.0, 2.0, 0.5, value)
            self.assertTrue(4.0 <= delay <= 8.0, delay)
        self.assertAlmostEqual(reconnect.backoff_delay(3, 1.0, 60.0, 2.0, 0.5, 0.5), 6.0)

    def test_huge_attempt_counts_stay_at_the_cap(self):
        """Attempt numbers far past the cap neither overflow nor exceed the maximum."""
        self.assertEqual(reconnect.backoff_delay(10**6, 0.5, 30.0, 2.0, 0.5, 0.0), 30.0)

    def test_policy_uses_its_random_source(self):
        """backoff_policy draws one random value per delay from the given source."""
        draws = iter([0.0, 0.999])
        policy = reconnect.backoff_policy(1.0, 10.0, 2.0, 0.5, lambda: next(draws))
        self.assertEqual(policy(0), 1.0)
        self.assertAlmostEqual(policy(1), 2.0 * (1 - 0.5 * 0.999))

    def test_policy_refuses_nonsense(self):
        """Parameters that would give no back-off or negative delays are refused."""
        for args in ((0, 1), (2, 1), (1, 2, 0.5), (1, 2, 2, 1.0)):
            self.assertRaises(ValueError, reconnect.backoff_policy, *args)


class TransitionTests(unittest.TestCase):
    def test_every_state_has_a_way_out_to_offline(self):
        """Each state is in the table and can reach OFFLINE (stop always works)."""
        self.assertEqual(set(reconnect.TRANSITIONS), set(STATES))
        for state, targets in reconnect.TRANSITIONS.items():
            if state != "offline":
                self.assertIn("offline", targets, state)

    def test_reconnecting_only_leads_to_a_new_attempt_or_offline(self):
        """Waiting to reconnect ends in a new connection attempt or a stop."""
        self.assertEqual(reconnect.TRANSITIONS["reconnecting"],
                         frozenset({"connecting", "offline"}))


class JudgeTests(unittest.TestCase):
    def judge(self, error, during_login=False, explicit=False, resuming=True):
        return reconnect.judge(error, during_login=during_login, explicit=explicit,
                               resuming=resuming)

    def test_connection_failures_are_retried_in_the_background(self):
        """Refused, lost, timed-out connections and broken frames are transient."""
        for error in (net_error.ConnectionRefusedError(), net_error.ConnectionLost(),
                      net_error.ConnectionDone(), net_error.TimeoutError(),
                      NotConnected("x"), ProtocolViolation("bad frame")):
            self.assertEqual(self.judge(error).action, reconnect.RETRY, error)

    def test_connection_failures_are_reported_when_a_user_waits(self):
        """On an explicit login the same failures fail at once (no retry with a password)."""
        verdict = self.judge(net_error.ConnectionRefusedError(), explicit=True)
        self.assertEqual(verdict.action, reconnect.FAIL)
        self.assertIn("connection refused", verdict.reason)

    def test_wrong_secret_and_changed_key_stop_the_retries(self):
        """An hmac error or a changed server key will not heal by retrying."""
        hmac = HandshakeError("Server rejected the connection: hmac error", 403)
        verdict = self.judge(hmac)
        self.assertEqual((verdict.action, verdict.reason), (reconnect.FAIL, "hmac error"))
        changed = ServerKeyChanged("h:1", "sha256:" + "a" * 64, "sha256:" + "b" * 64, "f")
        self.assertEqual(self.judge(changed).action, reconnect.FAIL)

    def test_tls_refusals_stop_the_retries(self):
        """A refused certificate or a TLS error is permanent, with a readable reason."""
        verdict = self.judge(HostnameMismatch("example.org", ["other.org"]))
        self.assertEqual(verdict.action, reconnect.FAIL)
        self.assertIn("hostname mismatch", verdict.reason)
        self.assertEqual(self.judge(SSL.Error([])).action, reconnect.FAIL)

    def test_too_many_connections_waits_before_retrying(self):
        """The server's plain 429 during the handshake is retried, not too soon."""
        verdict = self.judge(HandshakeError("Server rejected the connection: too many", 429))
        self.assertEqual(verdict.action, reconnect.RETRY)
        self.assertGreaterEqual(verdict.min_delay, 5.0)

    def test_expired_token_asks_for_a_password_and_forgets_the_token(self):
        """401 on resume means a password login is needed; the saved token is dead."""
        verdict = self.judge(NotAuthorised("resume token expired: log in with your password"),
                             during_login=True)
        self.assertEqual((verdict.action, verdict.forget_token), (reconnect.LOGIN, True))
        self.assertIn("resume token expired", verdict.reason)

    def test_wrong_password_asks_again_without_touching_tokens(self):
        """402 on a password login asks for the password and forgets nothing."""
        verdict = self.judge(WrongCredentials("wrong account name or password"),
                             during_login=True, explicit=True, resuming=False)
        self.assertEqual((verdict.action, verdict.forget_token), (reconnect.LOGIN, False))

    def test_conflict_on_resume_is_transient(self):
        """409 after a reconnect (our half-open session still holds the account) is
        retried after at least a second."""
        verdict = self.judge(Conflict("already connected"), during_login=True)
        self.assertEqual(verdict.action, reconnect.RETRY)
        self.assertGreaterEqual(verdict.min_delay, 1.0)

    def test_conflict_on_an_explicit_login_is_reported(self):
        """409 when the user logs in is told to the user ("already connected")."""
        verdict = self.judge(Conflict("already connected: elsewhere"), during_login=True,
                             explicit=True, resuming=False)
        self.assertEqual(verdict.action, reconnect.LOGIN)
        self.assertIn("already connected", verdict.reason)

    def test_rate_limited_login_waits_for_retry_after(self):
        """429 on resume is retried no sooner than its retry_after."""
        verdict = self.judge(TooManyRequests("slow down", 12.5), during_login=True)
        self.assertEqual((verdict.action, verdict.min_delay), (reconnect.RETRY, 12.5))

    def test_locked_account_and_bad_request_stop(self):
        """403 (locked) and 400 on resume need the user: the client stops retrying."""
        for error in (Forbidden("account locked by an administrator"), BadRequest("bad")):
            self.assertEqual(self.judge(error, during_login=True).action, reconnect.FAIL)

    def test_server_error_on_resume_is_retried(self):
        """A 500 answering resume is the server's trouble: try again later."""
        self.assertEqual(self.judge(ServerError("oops"), during_login=True).action,
                         reconnect.RETRY)

    def test_describe_names_common_failures(self):
        """describe gives one readable line for connection errors and refusals."""
        self.assertIn("refused", reconnect.describe(net_error.ConnectionRefusedError()))
        self.assertIn("closed", reconnect.describe(net_error.ConnectionDone()))
        self.assertEqual(reconnect.describe(Conflict("already connected")),
                         "already connected")
