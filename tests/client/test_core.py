"""Tests for messenger.client.core: logging in and out, reconnecting, the outbox, the
inbox and the observers, on a scripted network (`tests.client.fakes`: no sockets, no
crypto) and a task.Clock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twisted.internet import defer, task
from twisted.internet.error import ConnectionLost
from twisted.trial import unittest

from messenger.client.core import MessengerClient
from messenger.client.errors import (
    AlreadyConnected,
    AlreadyLoggedIn,
    ConnectionFailed,
    ConnectionRefused,
    HmacError,
    MessageTooLong,
    NoResponse,
    NoSavedLogin,
    NotConnected,
    PasswordNeeded,
    TokenExpired,
    WrongCredentials,
)
from messenger.wire.errors import (
    Conflict,
    NotAuthorised,
    NotFound,
    ServerError,
    TooManyRequests,
)
from messenger.wire.handshake import HandshakeError
from tests.client.fakes import FakeNetwork, FakeProtocol
from tests.support.keys import rsa_key

SECRET = b"secret"
ALICE = {"account_name": "alice", "email": "alice@example.org", "admin": False,
         "premium": False}


def run_now(fn: Any, *args: Any) -> defer.Deferred:
    return defer.maybeDeferred(fn, *args)


class CoreTestCase(unittest.TestCase):
    """A client on a fake network; helpers to bring it online."""

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.net = FakeNetwork(self.clock)
        self.config_dir = Path(self.mktemp()) / "messenger"
        self.client = self.make_client()
        self.states: list[str] = []
        self.client.subscribe("state", lambda state: self.states.append(state.name))

    def make_client(self, **kwargs: Any) -> MessengerClient:
        delays = [1.0, 2.0, 4.0, 8.0]
        options = dict(config_dir=self.config_dir, reactor=self.clock, connect=self.net.connect,
                       run_blocking=run_now, client_key=rsa_key("client", 2048),
                       backoff=lambda n: delays[min(n, 3)], dead_after=90.0,
                       cursor_save_delay=1.0)
        options.update(kwargs)
        return MessengerClient("chat.example.org", 7777, SECRET, **options)

    def sessions_file(self) -> dict[str, Any]:
        return json.loads((self.config_dir / "sessions.json").read_text())

    def saved_account(self, name: str = "alice") -> dict[str, Any]:
        return self.sessions_file()["servers"]["chat.example.org:7777"]["accounts"][name]

    def come_online(self, login_action: str = "authenticate", token: str | None = "tok-1",
                    sync: list[dict[str, Any]] | None = None) -> FakeProtocol:
        """Accept the pending attempt and walk it through handshake, login and sync."""
        connection = self.net.accept()
        connection.establish()
        login = connection.take(login_action)
        reply: dict[str, Any] = {"response": 200, "user": dict(ALICE)}
        if token is not None and login_action != "resume":
            reply.update(token=token, token_expires=10**9)
        connection.answer(login, **reply)
        connection.answer(connection.take("sync"), response=202, alert=sync or [],
                          more=False)
        return connection

    def logged_in(self, **kwargs: Any) -> FakeProtocol:
        d = self.client.login("alice", "correct horse", **kwargs)
        connection = self.come_online()
        self.successResultOf(d)
        return connection

    def tearDown(self) -> None:
        self.client.stop()


def message(msg_id: int, text: str | None = None) -> dict[str, Any]:
    return {"action": "msg", "msg_id": msg_id, "time": float(msg_id), "from": "bob",
            "to": "alice", "message": text or f"m{msg_id}"}


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

    def test_silent_connection_is_dropped_and_remade(self):
        """No frame from the server for dead_after seconds drops the connection."""
        connection = self.logged_in()
        self.clock.advance(60)
        connection.push({"action": "presence", "account_name": "bob", "status": "online"})
        self.clock.advance(60)
        self.assertIsNone(connection.aborted)
        self.clock.advance(31)
        self.assertIsInstance(connection.aborted, NoResponse)
        self.assertIn("no data from the server", str(connection.aborted))
        self.assertEqual(self.client.state.name, "reconnecting")

    def test_handshake_that_never_finishes_is_dropped(self):
        """A server that accepts but never completes the handshake is given up on."""
        self.client.login("alice", "correct horse").addErrback(lambda _: None)
        connection = self.net.accept()
        self.clock.advance(20)
        self.assertIsInstance(connection.aborted, NoResponse)

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


class OutboxCoreTests(CoreTestCase):
    def test_unacknowledged_messages_are_resent_with_their_original_ids(self):
        """Messages whose acknowledgement was lost with the connection are sent again on
        the next session with the same request ids; each Deferred fires once."""
        connection = self.logged_in()
        statuses = []
        self.client.subscribe("message_status", lambda e: statuses.append(e.status))
        sent = [self.client.send_message("bob", f"m{i}") for i in range(3)]
        first = connection.take("msg")
        self.assertEqual(len(connection.pending("msg")), 1)      # cold recipient: alone
        connection.answer(first, response=200, msg_id=10)
        in_flight = connection.pending("msg")
        original_ids = [r.id for r in in_flight]
        self.assertEqual([r.fields["message"] for r in in_flight], ["m1", "m2"])
        connection.lose()
        self.clock.advance(1.0)
        second = self.come_online(login_action="resume")
        second.answer(second.take("msg"), response=200, msg_id=11)
        second.answer(second.take("msg"), response=200, msg_id=12)
        resent = [r for r in second.requests if r.action == "msg"]
        self.assertEqual([r.id for r in resent], original_ids)
        self.assertEqual([self.successResultOf(d)["msg_id"] for d in sent], [10, 11, 12])
        self.assertEqual(statuses, ["pending"] * 3 + ["acked"] * 3)
        self.assertEqual(self.client.pending_messages(), [])

    def test_messages_written_while_away_wait_for_the_session(self):
        """A message queued while reconnecting is sent after the next login."""
        self.logged_in().lose()
        entry = self.client.queue_message("bob", "later")
        self.assertEqual(entry.status, "pending")
        self.clock.advance(1.0)
        connection = self.come_online(login_action="resume")
        self.assertEqual(connection.take("msg").id, entry.request_id)

    def test_refused_message_fails_for_good(self):
        """404 fails the message, reports it, and never resends it."""
        connection = self.logged_in()
        d = self.client.send_message("nobody", "hi")
        connection.refuse(connection.take("msg"), NotFound("no user named 'nobody'"))
        self.failureResultOf(d, NotFound)
        connection.lose()
        self.clock.advance(1.0)
        second = self.come_online(login_action="resume")
        self.assertEqual(second.pending("msg"), [])

    def test_rate_limited_message_is_resent_with_a_fresh_id_after_retry_after(self):
        """429 (nothing stored, and the session refuses the id now) waits retry_after and
        resends with a new id."""
        connection = self.logged_in()
        d = self.client.send_message("bob", "hi")
        first = connection.take("msg")
        connection.refuse(first, TooManyRequests("slow down", 2.0))
        self.assertEqual(connection.pending("msg"), [])
        self.clock.advance(1.9)
        self.assertEqual(connection.pending("msg"), [])
        self.clock.advance(0.1)
        again = connection.take("msg")
        self.assertNotEqual(again.id, first.id)
        connection.answer(again, response=200, msg_id=5)
        self.assertEqual(self.successResultOf(d)["msg_id"], 5)

    def test_server_error_resends_the_same_id_on_a_new_session(self):
        """A 500 leaves it unknown whether the message was stored: the client reconnects
        and resends with the same id, which the server stores at most once."""
        connection = self.logged_in()
        d = self.client.send_message("bob", "hi")
        first = connection.take("msg")
        connection.refuse(first, ServerError("the message could not be stored"))
        self.assertIsInstance(connection.aborted, ConnectionFailed)
        self.clock.advance(1.0)
        second = self.come_online(login_action="resume")
        resent = second.take("msg")
        self.assertEqual(resent.id, first.id)
        second.answer(resent, response=200, msg_id=3)
        self.assertEqual(self.successResultOf(d)["msg_id"], 3)

    def test_sending_needs_a_login(self):
        """Without any login there is no sender: queueing is refused."""
        self.failureResultOf(self.client.send_message("bob", "hi"), NotConnected)
        self.assertRaises(NotConnected, self.client.queue_message, "bob", "hi")

    def test_messages_of_another_account_are_not_sent_as_this_one(self):
        """Messages pending for alice fail when the next login is bob's."""
        self.logged_in().lose()
        d = self.client.send_message("carol", "from alice")
        self.successResultOf(self.client.stop())
        login = self.client.login("bob", "pw")
        connection = self.net.accept()
        connection.establish()
        connection.answer(connection.take("authenticate"), response=200,
                          user=dict(ALICE, account_name="bob"), token="t2")
        self.failureResultOf(d, NotConnected)
        connection.answer(connection.take("sync"), response=202, alert=[], more=False)
        self.successResultOf(login)
        self.assertEqual(connection.pending("msg"), [])


class InboxCoreTests(CoreTestCase):
    def setUp(self):
        super().setUp()
        self.received = []
        self.client.subscribe("message", self.received.append)

    def ids(self):
        return [m.msg_id for m in self.received]

    def test_pushes_during_sync_merge_with_it_once_and_in_order(self):
        """After a reconnect, pushes that arrive while sync runs are held and merged:
        every message once, in msg_id order."""
        connection = self.logged_in()
        connection.push(message(1))
        connection.push(message(2))
        connection.lose()
        self.clock.advance(1.0)
        second = self.net.accept()
        second.establish()
        second.answer(second.take("resume"), response=200, user=ALICE)
        sync = second.take("sync")
        self.assertEqual(sync.fields["since"], 2)
        second.push(message(5))
        second.push(message(4))
        self.assertEqual(self.ids(), [1, 2])
        second.answer(sync, response=202, alert=[message(3), message(4)], more=False)
        second.push(message(5))
        second.push(message(6))
        self.assertEqual(self.ids(), [1, 2, 3, 4, 5, 6])
        self.assertEqual([m.from_sync for m in self.received],
                         [False, False, True, True, False, False])

    def test_sync_follows_more_pages(self):
        """A sync reply with more=True is followed by the next page from its last id."""
        self.client.login("alice", "correct horse")
        connection = self.net.accept()
        connection.establish()
        connection.answer(connection.take("authenticate"), response=200, user=ALICE,
                          token="t")
        connection.answer(connection.take("sync"), response=202,
                          alert=[message(1), message(2)], more=True)
        page2 = connection.take("sync")
        self.assertEqual(page2.fields["since"], 2)
        self.assertEqual(self.client.state.name, "syncing")
        connection.answer(page2, response=202, alert=[message(3)], more=False)
        self.assertEqual(self.ids(), [1, 2, 3])
        self.assertEqual(self.client.state.name, "online")

    def test_cursor_is_saved_and_a_restart_syncs_from_it(self):
        """The last delivered id is saved (debounced) and the next start syncs from it."""
        connection = self.logged_in()
        for msg_id in (3, 7):
            connection.push(message(msg_id))
        self.assertEqual(self.saved_account()["last_msg_id"], 0)
        self.clock.advance(1.0)
        self.assertEqual(self.saved_account()["last_msg_id"], 7)
        self.successResultOf(self.client.stop())
        client = self.make_client()
        started = client.start()
        second = self.net.accept()
        second.establish()
        second.answer(second.take("resume"), response=200, user=ALICE)
        self.assertEqual(second.take("sync").fields["since"], 7)
        self.successResultOf(client.stop())
        self.failureResultOf(started, NotConnected)

    def test_malformed_sync_entries_are_skipped(self):
        """Entries of a sync page that lack fields are dropped, the rest delivered."""
        self.client.login("alice", "correct horse")
        connection = self.net.accept()
        connection.establish()
        connection.answer(connection.take("authenticate"), response=200, user=ALICE,
                          token="t")
        connection.answer(connection.take("sync"), response=202,
                          alert=[{"msg_id": "x"}, message(4)], more=False)
        self.assertEqual(self.ids(), [4])


class PushTests(CoreTestCase):
    def test_each_push_reaches_its_observers(self):
        """presence, broadcast, account, notice and call pushes arrive as records."""
        connection = self.logged_in()
        seen: dict[str, list] = {}
        for kind in ("presence", "broadcast", "account", "notice", "call", "push"):
            self.client.subscribe(kind, seen.setdefault(kind, []).append)
        connection.push({"action": "presence", "account_name": "bob", "status": "away"})
        connection.push({"action": "broadcast", "broadcast_id": 4, "from": "carol",
                         "message": "hello all"})
        connection.push({"action": "account", "user": dict(ALICE, premium=True)})
        connection.push({"action": "notice", "level": 101, "message": "locked"})
        connection.push({"action": "call_ring", "call_id": "ab", "from": "bob"})
        connection.push({"action": "something_new", "x": 1})
        self.assertEqual((seen["presence"][0].account_name, seen["presence"][0].status),
                         ("bob", "away"))
        self.assertEqual(seen["broadcast"][0].text, "hello all")
        self.assertTrue(seen["account"][0].premium and self.client.account.premium)
        self.assertEqual((seen["notice"][0].level, seen["notice"][0].message),
                         (101, "locked"))
        self.assertEqual((seen["call"][0].kind, seen["call"][0].fields["from"]),
                         ("call_ring", "bob"))
        self.assertEqual([p["action"] for p in seen["push"]],
                         ["presence", "broadcast", "account", "notice", "call_ring",
                          "something_new"])

    def test_malformed_push_is_dropped_without_harm(self):
        """A push missing fields is logged and dropped; the next one still arrives."""
        connection = self.logged_in()
        seen = []
        self.client.subscribe("broadcast", seen.append)
        connection.push({"action": "broadcast", "message": "no id"})
        connection.push({"action": "broadcast", "broadcast_id": 1, "from": "c",
                         "message": "ok"})
        self.assertEqual([b.text for b in seen], ["ok"])

    def test_orphan_error_reply_becomes_a_notice(self):
        """The server's id-less error ('login timed out') is shown as a notice."""
        connection = self.logged_in()
        notices = []
        self.client.subscribe("notice", notices.append)
        connection.on_orphan_reply({"response": 401, "error": "login timed out"})
        self.assertEqual((notices[0].level, notices[0].message), (401, "login timed out"))

    def test_actions_send_the_server_field_names(self):
        """Action methods send the handlers' field names and leave out unset options."""
        connection = self.logged_in()
        calls = [self.client.history("bob", limit=20), self.client.add_contact("bob"),
                 self.client.admin_lock("bob"), self.client.call_hangup(call_id="c1")]
        sent = {r.action: r.fields for r in connection.requests[-4:]}
        self.assertEqual(sent, {"history": {"with": "bob", "limit": 20},
                                "add_contact": {"user_id": "bob"},
                                "admin_lock": {"user_id": "bob"},
                                "call_hangup": {"call_id": "c1"}})
        for request in connection.pending():
            connection.answer(request, response=200)
        self.assertEqual([self.successResultOf(d)["response"] for d in calls], [200] * 4)

    def test_set_password_keeps_the_new_token(self):
        """The new token from set_password replaces the saved one."""
        connection = self.logged_in()
        d = self.client.set_password("correct horse", "battery staple")
        connection.answer(connection.take("set_password"), response=200, token="tok-2",
                          token_expires=5)
        self.successResultOf(d)
        self.assertEqual(self.saved_account()["token"], "tok-2")


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
                         (64 * 1024, 16 * 1024))


class AcceptNewKeyTests(CoreTestCase):
    def test_accept_new_key_is_spent_by_one_check(self):
        """The first key check after accept_new_key may replace the pin; the next one
        refuses a change again."""
        from messenger.client.errors import ServerKeyChanged
        from messenger.wire import keys
        client = self.make_client(accept_new_key=True)
        self.successResultOf(client.prepare())
        client._saved.known.pin("chat.example.org:7777",
                                keys.fingerprint(rsa_key("server-2", 2048).public_key()))
        outcome = client.check_server_key(rsa_key("server", 2048).public_key())
        self.assertIsNotNone(outcome.replaced)
        self.assertFalse(client.accept_new_key)
        self.assertRaises(ServerKeyChanged, client.check_server_key,
                          rsa_key("server-3", 2048).public_key())
