"""Tests for messenger.client.reconnect: back-off, and what each failure means."""

from __future__ import annotations

from twisted.internet import error as net_error
from twisted.trial import unittest

from messenger.client import errors, reconnect
from messenger.client.failures import connection_error, reply_error
from messenger.client.tls import HostnameMismatch
from messenger.wire.handshake import HandshakeError


def reply(action, code, text, **extra):
    """The typed error of an error reply, as the protocol gives it."""
    return reply_error(action, {"response": code, "error": text, **extra})


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


class JudgeTests(unittest.TestCase):
    def judge(self, error, during_login=False, explicit=False):
        error = connection_error(error)     # what the connection reports
        return reconnect.judge(error, during_login=during_login, explicit=explicit)

    def test_connection_failures_are_retried_in_the_background(self):
        """Lost, timed-out connections and broken frames are transient."""
        for error in (net_error.ConnectionLost(), net_error.ConnectionDone(),
                      net_error.TimeoutError(), errors.NotConnected("x"),
                      errors.ProtocolViolation("bad frame")):
            verdict = self.judge(error)
            self.assertEqual((verdict.action, verdict.max_delay), (reconnect.RETRY, None),
                             error)

    def test_refused_connection_is_retried_within_a_second(self):
        """A refused connection (the host is up, the server is not) is tried again at
        least every second: the client is back within a second of the server."""
        verdict = self.judge(net_error.ConnectionRefusedError())
        self.assertEqual((verdict.action, verdict.max_delay), (reconnect.RETRY, 1.0))
        self.assertEqual(verdict.delay(30.0), 1.0)
        self.assertEqual(verdict.delay(0.3), 0.3)

    def test_connection_failures_are_reported_when_a_user_waits(self):
        """On an explicit login the same failures fail at once (no retry with a password)."""
        verdict = self.judge(net_error.ConnectionRefusedError(), explicit=True)
        self.assertEqual(verdict.action, reconnect.FAIL)

    def test_wrong_secret_and_changed_key_stop_the_retries(self):
        """An hmac error or a changed server key will not heal by retrying."""
        hmac = HandshakeError("Server rejected the connection: hmac error", 403)
        self.assertEqual(self.judge(hmac).action, reconnect.FAIL)
        changed = errors.ServerKeyChanged("h:1", "sha256:" + "a" * 64,
                                          "sha256:" + "b" * 64, "f")
        self.assertEqual(self.judge(changed).action, reconnect.FAIL)

    def test_tls_refusals_stop_the_retries(self):
        """A refused certificate or bad TLS settings are permanent."""
        self.assertEqual(self.judge(HostnameMismatch("example.org", ["other.org"])).action,
                         reconnect.FAIL)
        self.assertEqual(self.judge(errors.TlsSettingsInvalid("no CA file")).action,
                         reconnect.FAIL)

    def test_too_many_connections_waits_before_retrying(self):
        """The server's plain 429 during the handshake is retried, not too soon."""
        verdict = self.judge(HandshakeError("Server rejected the connection: too many", 429))
        self.assertEqual(verdict.action, reconnect.RETRY)
        self.assertGreaterEqual(verdict.min_delay, 5.0)

    def test_expired_token_asks_for_a_password_and_forgets_the_token(self):
        """401 on resume means a password login is needed; the saved token is dead."""
        verdict = self.judge(reply("resume", 401, "resume token expired: log in"),
                             during_login=True)
        self.assertEqual((verdict.action, verdict.forget_token), (reconnect.LOGIN, True))

    def test_wrong_password_asks_again_without_touching_tokens(self):
        """402 on a password login asks for the password and forgets nothing."""
        verdict = self.judge(reply("authenticate", 402, "wrong account name or password"),
                             during_login=True, explicit=True)
        self.assertEqual((verdict.action, verdict.forget_token), (reconnect.LOGIN, False))

    def test_conflict_on_resume_is_transient(self):
        """409 after a reconnect (our half-open session still holds the account) is
        retried after at least a second."""
        verdict = self.judge(reply("resume", 409, "already connected: elsewhere"),
                             during_login=True)
        self.assertEqual(verdict.action, reconnect.RETRY)
        self.assertGreaterEqual(verdict.min_delay, 1.0)

    def test_conflict_on_an_explicit_login_is_reported(self):
        """409 when the user logs in is told to the user ("already connected")."""
        verdict = self.judge(reply("authenticate", 409, "already connected: elsewhere"),
                             during_login=True, explicit=True)
        self.assertEqual(verdict.action, reconnect.LOGIN)

    def test_rate_limited_login_waits_for_retry_after(self):
        """429 on resume is retried no sooner than its retry_after; so is a 503 that
        says when."""
        verdict = self.judge(reply("resume", 429, "slow down", retry_after=12.5),
                             during_login=True)
        self.assertEqual((verdict.action, verdict.min_delay), (reconnect.RETRY, 12.5))
        verdict = self.judge(reply("resume", 503, "busy", retry_after=3), during_login=True)
        self.assertEqual((verdict.action, verdict.min_delay), (reconnect.RETRY, 3.0))

    def test_locked_account_and_bad_request_stop(self):
        """403 (locked) and 400 on resume need the user: the client stops retrying."""
        for error in (reply("resume", 403, "account locked by an administrator"),
                      reply("resume", 400, "bad")):
            self.assertEqual(self.judge(error, during_login=True).action, reconnect.FAIL)

    def test_server_error_on_resume_is_retried(self):
        """A 500 answering resume is the server's trouble: try again later."""
        self.assertEqual(self.judge(reply("resume", 500, "oops"), during_login=True).action,
                         reconnect.RETRY)
