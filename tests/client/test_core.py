"""Tests for messenger.client.core: logging in and out, reconnecting, the limits of the
login reply, accept_new_key, on a scripted network (`tests.client.core_case`: no sockets,
no crypto) and a task.Clock. Messages in and out: test_core_messages."""

from __future__ import annotations

from twisted.internet.error import ConnectionLost

from messenger.client.errors import (
    AlreadyConnected,
    AlreadyLoggedIn,
    ConnectionRefused,
    HmacError,
    MessageTooLong,
    NoResponse,
    NoSavedLogin,
    NotConnected,
    PasswordNeeded,
    ServerKeyChanged,
    TokenExpired,
    WrongCredentials,
)
from messenger.wire import keys
from messenger.wire.errors import (
    Conflict,
    NotAuthorised,
    TooManyRequests,
)
from messenger.wire.handshake import HandshakeError
from tests.client.core_case import ALICE, CoreTestCase
from tests.support.keys import rsa_key


class LoginTests(CoreTestCase):
    def test_login_walks_through_the_states(self):
        """A password login goes connecting, handshaking, logging in, syncing, online, and
        fires with the login reply once synced."""
        d = self.client.login("alice", "correct horse")
        self.assertEqual(self.states, ["connecting"])
        connection = self.net.accept()
        self.assertEqual(self.states[-1], "handshaking")
        connection.establish()
        login = connection.take("authenticate")
        self.assertEqual(login.fields, {"user": {"account_name": "alice",
                                                 "password": "correct horse"},
                                        "remember": True})
        connection.answer(login, response=200, user=ALICE, token="tok-1", token_expires=9)
        self.assertNoResult(d)
        connection.answer(connection.take("sync"), response=202, alert=[], more=False)
        self.assertEqual(self.successResultOf(d)["user"]["account_name"], "alice")
        self.assertEqual(self.states, ["connecting", "handshaking", "logging_in", "syncing",
                                       "online"])
        self.assertEqual(self.client.account.account_name, "alice")

    def test_token_is_saved_and_the_password_is_not(self):
        """After login the token is in the 0600 sessions file; the password nowhere."""
        self.logged_in()
        self.assertEqual(self.saved_account()["token"], "tok-1")
        text = (self.config_dir / "sessions.json").read_text()
        self.assertNotIn("correct horse", text)
        self.assertEqual((self.config_dir / "sessions.json").stat().st_mode & 0o777, 0o600)
        self.assertIsNone(self.client._service.plan.password)

    def test_register_sends_the_account_fields(self):
        """register sends name, password, e-mail and the premium code, asking for a token."""
        d = self.client.register("alice", "correct horse", "alice@example.org",
                                 premium_code="ABCD-EFGH")
        connection = self.net.accept()
        connection.establish()
        request = connection.take("register")
        self.assertEqual(request.fields["user"]["email"], "alice@example.org")
        self.assertEqual((request.fields["premium_code"], request.fields["remember"]),
                         ("ABCD-EFGH", True))
        connection.answer(request, response=201, user=ALICE, token="t")
        connection.answer(connection.take("sync"), response=202, alert=[], more=False)
        self.assertEqual(self.successResultOf(d)["response"], 201)

    def test_start_without_a_saved_token_needs_a_password(self):
        """start() with nothing saved fails with NoSavedLogin and reports login_required."""
        error = self.failureResultOf(self.client.start(), NoSavedLogin).value
        self.assertIn("log in with a password", error.message)
        self.assertEqual(self.states, ["login_required"])
        self.assertFalse(self.net.attempts)

    def test_start_resumes_with_the_saved_token(self):
        """A new client on the same config dir logs in with the saved token by itself."""
        self.logged_in()
        self.successResultOf(self.client.stop())
        client = self.make_client()
        d = client.start()
        connection = self.net.accept()
        connection.establish()
        resume = connection.take("resume")
        self.assertEqual(resume.fields, {"user": {"account_name": "alice"},
                                         "token": "tok-1"})
        connection.answer(resume, response=200, user=ALICE)
        connection.answer(connection.take("sync"), response=202, alert=[], more=False)
        self.successResultOf(d)
        self.assertEqual(client.state.name, "online")
        self.successResultOf(client.stop())

    def test_wrong_password_is_reported_and_not_retried(self):
        """402 fails the login with WrongCredentials, says quit, and waits for the user."""
        d = self.client.login("alice", "wrong")
        connection = self.net.accept()
        connection.establish()
        connection.refuse(connection.take("authenticate"),
                          WrongCredentials("wrong account name or password"))
        self.failureResultOf(d, WrongCredentials)
        self.assertEqual(self.client.state.name, "login_required")
        self.assertIn("quit", [r.action for r in connection.requests])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertIsNone(self.client._service.plan)

    def test_already_connected_is_reported_on_an_explicit_login(self):
        """409 "already connected" on a password login fails it with AlreadyConnected."""
        d = self.client.login("alice", "correct horse")
        connection = self.net.accept()
        connection.establish()
        connection.refuse(connection.take("authenticate"), Conflict("already connected"))
        self.failureResultOf(d, AlreadyConnected)

    def test_unreachable_server_fails_an_explicit_login_at_once(self):
        """A refused connection fails login() with ConnectionRefused (a
        ServerUnreachable: the password was never judged) and is not retried with it."""
        d = self.client.login("alice", "correct horse")
        self.net.refuse()
        self.failureResultOf(d, ConnectionRefused)
        self.assertEqual(self.client.state.name, "failed")
        self.assertIn("connection refused", self.client.state.reason)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertIsNone(self.client._service.plan)

    def test_wrong_secret_stops_for_good(self):
        """A handshake refused with 'hmac error' fails with it and is not retried."""
        d = self.client.login("alice", "correct horse")
        connection = self.net.accept()
        connection.lose(HandshakeError("Server rejected the connection: hmac error", 403))
        self.failureResultOf(d, HmacError)
        self.assertEqual((self.client.state.name, self.client.state.reason),
                         ("failed", "hmac error"))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_login_while_logged_in_is_refused(self):
        """A second login on a live session fails instead of tearing it down."""
        self.logged_in()
        self.failureResultOf(self.client.login("bob", "pw"), AlreadyLoggedIn)
        self.assertEqual(self.client.state.name, "online")


class ReconnectTests(CoreTestCase):
    def test_lost_connection_reconnects_and_resumes(self):
        """A lost session waits out the back-off, reconnects, resumes with the token and
        syncs, by itself."""
        first = self.logged_in()
        first.lose(ConnectionLost())
        state = self.client.state
        self.assertEqual((state.name, state.retry_in, state.attempt), ("reconnecting", 1.0, 1))
        self.assertEqual(state.retry_at, self.clock.seconds() + 1.0)
        self.clock.advance(0.9)
        self.assertFalse(self.net.waiting)
        self.clock.advance(0.1)
        self.assertTrue(self.net.waiting)
        second = self.come_online(login_action="resume")
        self.assertEqual(second.requests[0].fields["token"], "tok-1")
        self.assertEqual(self.states[-6:], ["reconnecting", "connecting", "handshaking",
                                            "logging_in", "syncing", "online"])

    def test_backoff_grows_and_resets_once_online(self):
        """Each attempt that times out waits longer; a success resets the count."""
        first = self.logged_in()
        first.lose()
        delays = [self.client.state.retry_in]
        for _ in range(3):
            self.clock.advance(self.client.state.retry_in)
            self.net.time_out()
            delays.append(self.client.state.retry_in)
        self.assertEqual(delays, [1.0, 2.0, 4.0, 8.0])
        self.clock.advance(8.0)
        self.come_online(login_action="resume").lose()
        self.assertEqual(self.client.state.retry_in, 1.0)

    def test_refused_connections_are_retried_every_second_at_most(self):
        """While the server's host refuses connections (the server is down, the machine
        up), the next attempt is never more than a second away, so the client is back
        within a second of the server; a timeout backs off as usual."""
        self.logged_in().lose()
        delays = []
        for _ in range(5):
            self.clock.advance(self.client.state.retry_in)
            self.net.refuse()
            delays.append(self.client.state.retry_in)
        self.assertEqual(delays, [1.0] * 5)
        self.assertIsInstance(self.client.state.error, ConnectionRefused)
        self.clock.advance(1.0)
        self.net.time_out()
        self.assertEqual(self.client.state.retry_in, 8.0)

    def test_conflict_on_resume_is_retried(self):
        """409 on resume (a half-open old session) backs off and tries again."""
        self.logged_in().lose()
        self.clock.advance(1.0)
        connection = self.net.accept()
        connection.establish()
        connection.refuse(connection.take("resume"), Conflict("already connected"))
        self.assertEqual(self.client.state.name, "reconnecting")
        self.assertIn("quit", [r.action for r in connection.requests])
        self.clock.advance(self.client.state.retry_in)
        self.come_online(login_action="resume")
        self.assertEqual(self.client.state.name, "online")

    def test_rate_limited_resume_waits_for_retry_after(self):
        """429 on resume waits at least retry_after before the next attempt."""
        self.logged_in().lose()
        self.clock.advance(1.0)
        connection = self.net.accept()
        connection.establish()
        connection.refuse(connection.take("resume"), TooManyRequests("slow down", 30.0))
        self.assertEqual(self.client.state.retry_in, 30.0)

    def test_expired_token_reports_that_a_password_is_needed(self):
        """401 'resume token expired' on reconnect: state login_required with the server's
        reason, the token deleted from the config dir, no more attempts."""
        self.logged_in().lose()
        self.clock.advance(1.0)
        connection = self.net.accept()
        connection.establish()
        connection.refuse(connection.take("resume"),
                          NotAuthorised("resume token expired: log in with your password"))
        state = self.client.state
        self.assertEqual(state.name, "login_required")
        self.assertIn("resume token expired", state.reason)
        self.assertIsInstance(state.error, TokenExpired)
        self.assertIsNone(self.saved_account()["token"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_start_fails_fast_but_keeps_trying(self):
        """start() fails on the first refused attempt, while the client retries and
        reaches online by itself."""
        self.logged_in()
        self.successResultOf(self.client.stop())
        client = self.make_client()
        states = []
        client.subscribe("state", lambda s: states.append(s.name))
        d = client.start()
        self.net.refuse()
        self.failureResultOf(d, ConnectionRefused)
        self.assertEqual(client.state.name, "reconnecting")
        self.clock.advance(1.0)
        self.come_online(login_action="resume")
        self.assertEqual(client.state.name, "online")
        later = client.start()
        self.assertEqual(self.successResultOf(later)["user"]["account_name"], "alice")
        self.successResultOf(client.stop())

    def test_patient_start_waits_through_failures(self):
        """start(fail_fast=False) fires once online, however many attempts it takes."""
        self.logged_in()
        self.successResultOf(self.client.stop())
        client = self.make_client()
        d = client.start(fail_fast=False)
        self.net.refuse()
        self.clock.advance(1.0)
        self.net.refuse()
        self.assertNoResult(d)
        self.clock.advance(2.0)
        self.come_online(login_action="resume")
        self.successResultOf(d)
        self.successResultOf(client.stop())

    def test_silent_connection_is_remade(self):
        """A connection silent for dead_after seconds is dropped and the client
        reconnects (the watchdog itself: test_connection)."""
        connection = self.logged_in()
        self.clock.advance(90)
        self.assertIsInstance(connection.aborted, NoResponse)
        self.assertEqual(self.client.state.name, "reconnecting")

    def test_requests_fail_fast_while_reconnecting(self):
        """A request while not logged in fails at once with NotConnected."""
        self.logged_in().lose()
        error = self.failureResultOf(self.client.get_contacts(), NotConnected).value
        self.assertIn("reconnecting", error.message)

    def test_pending_request_fails_when_the_connection_goes(self):
        """A request in flight when the connection drops fails with NotConnected."""
        connection = self.logged_in()
        d = self.client.search_users("bo")
        connection.lose()
        self.failureResultOf(d, NotConnected)

    def test_presence_is_restored_after_a_reconnect(self):
        """'away' set before a reconnect is sent again after the login."""
        connection = self.logged_in()
        self.client.set_presence("away")
        connection.answer(connection.take("presence"), response=200)
        connection.lose()
        self.clock.advance(1.0)
        second = self.come_online(login_action="resume")
        self.assertEqual(second.take("presence").fields, {"status": "away"})


class StopAndLogoutTests(CoreTestCase):
    def test_stop_says_quit_and_goes_offline(self):
        """stop() sends quit, closes, and leaves no timers behind."""
        connection = self.logged_in()
        d = self.client.stop()
        self.successResultOf(d)
        self.assertEqual(connection.requests[-1].action, "quit")
        self.assertFalse(connection.open)
        self.assertEqual(self.client.state.name, "offline")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_of_an_unremembered_login_revokes_the_token(self):
        """A session not to be remembered ends with logout, so its token dies with it."""
        connection = self.logged_in(remember=False)
        self.assertFalse((self.config_dir / "sessions.json").exists()
                         and self.saved_account().get("token"))
        self.successResultOf(self.client.stop())
        self.assertEqual(connection.requests[-1].action, "logout")

    def test_stop_while_reconnecting_cancels_the_retry(self):
        """stop() during the back-off cancels the next attempt."""
        self.logged_in().lose()
        self.successResultOf(self.client.stop())
        self.clock.advance(100)
        self.assertFalse(self.net.waiting)
        self.assertEqual(self.client.state.name, "offline")

    def test_stop_fails_waiting_logins(self):
        """A login still in progress fails with NotConnected when stopped."""
        d = self.client.login("alice", "correct horse")
        self.net.accept()
        self.client.stop()
        self.failureResultOf(d, NotConnected)

    def test_logout_deletes_the_saved_token(self):
        """logout() sends logout, deletes the token, and goes offline."""
        connection = self.logged_in()
        self.successResultOf(self.client.logout())
        self.assertEqual(connection.requests[-1].action, "logout")
        self.assertIsNone(self.saved_account()["token"])
        self.assertEqual(self.client.state.name, "offline")
        self.assertIsNone(self.client.account)
        self.failureResultOf(self.client.start(), PasswordNeeded)

    def test_logout_fails_unacknowledged_messages(self):
        """Messages still pending at logout fail (they will not be sent as anyone)."""
        self.logged_in()
        d = self.client.send_message("bob", "never")
        self.successResultOf(self.client.logout())
        self.failureResultOf(d, NotConnected)

    def test_observer_may_stop_the_client_from_a_state_change(self):
        """An observer calling stop() on 'syncing' leaves the client offline, no error."""
        self.client.subscribe("state", lambda s: s.name == "syncing" and self.client.stop())
        d = self.client.login("alice", "correct horse")
        connection = self.net.accept()
        connection.establish()
        connection.answer(connection.take("authenticate"), response=200, user=ALICE,
                          token="t")
        self.failureResultOf(d, NotConnected)
        self.assertEqual(self.client.state.name, "offline")
        self.assertEqual(connection.requests[-1].action, "quit")


class LimitsTests(CoreTestCase):
    def test_the_limits_of_the_login_reply_are_kept(self):
        """The login reply's limits bound what the client sends: a body over max_body is
        refused at once, frames over max_frame by the protocol; defaults before."""
        self.assertEqual(self.client.limits.max_body, 16 * 1024)
        d = self.client.login("alice", "correct horse")
        connection = self.net.accept()
        connection.establish()
        connection.answer(connection.take("authenticate"), response=200, user=ALICE,
                          token="t", limits={"max_frame": 4096, "max_body": 10,
                                             "max_payload": 1048576, "future": 1})
        connection.answer(connection.take("sync"), response=202, alert=[], more=False)
        self.successResultOf(d)
        self.assertEqual((self.client.limits.max_frame, self.client.limits.max_body),
                         (4096, 10))
        self.assertEqual(connection.max_send, 4096)
        self.assertRaises(MessageTooLong, self.client.queue_message, "bob", "é" * 6)
        self.failureResultOf(self.client.send_message("bob", "x" * 11), MessageTooLong)
        self.assertEqual(self.client.queue_message("bob", "x" * 10).status, "pending")

    def test_nonsense_limits_keep_the_defaults(self):
        """A limit that is not a positive whole number is ignored."""
        self.client.login("alice", "correct horse").addErrback(lambda _: None)
        connection = self.net.accept()
        connection.establish()
        connection.answer(connection.take("authenticate"), response=200, user=ALICE,
                          token="t", limits={"max_frame": "big", "max_body": -1})
        self.assertEqual((self.client.limits.max_frame, self.client.limits.max_body),
                         (128 * 1024, 16 * 1024))


class AcceptNewKeyTests(CoreTestCase):
    def test_accept_new_key_is_spent_by_one_check(self):
        """The first key check after accept_new_key may replace the pin; the next one
        refuses a change again."""
        client = self.make_client(accept_new_key=True)
        self.successResultOf(client.prepare())
        client._saved.known.pin("chat.example.org:7777",
                                keys.fingerprint(rsa_key("server-2", 2048).public_key()))
        outcome = client.check_server_key(rsa_key("server", 2048).public_key())
        self.assertIsNotNone(outcome.replaced)
        self.assertFalse(client.accept_new_key)
        self.assertRaises(ServerKeyChanged, client.check_server_key,
                          rsa_key("server-3", 2048).public_key())
