"""Tests for messenger.client.service: staying connected, one Connection after another,
with fake hooks and connections and a task.Clock. The test plays the connection's part
by calling the lifecycle methods a real `Connection` calls."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.trial import unittest

from messenger.client.connection import Phase
from messenger.client.errors import (
    ConfigDirUnusable,
    ConnectionClosed,
    ConnectionRefused,
    HmacError,
    NoSavedLogin,
    NotConnected,
    TokenExpired,
    WrongCredentials,
)
from messenger.client.events import Observers
from messenger.client.plan import AUTHENTICATE, RESUME, LoginPlan
from messenger.client.reconnect import backoff_policy
from messenger.client.service import ConnectionService


class FakeConnection:
    def __init__(self, plan: LoginPlan) -> None:
        self.plan = plan
        self.calls: list[Any] = []
        self.closed: defer.Deferred = defer.Deferred()

    def start(self) -> None:
        self.calls.append("start")

    def abandon(self) -> None:
        self.calls.append("abandon")

    def close(self, action: str) -> defer.Deferred:
        self.calls.append(("close", action))
        return self.closed


class Hooks:
    def __init__(self) -> None:
        self.loads: list[defer.Deferred] = []
        self.saved: LoginPlan | None = LoginPlan(RESUME, "alice", token="t")
        self.forgotten: list[str] = []
        self.connections: list[FakeConnection] = []

    def prepare(self) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self.loads.append(d)
        return d

    def saved_plan(self, account_name: str | None) -> LoginPlan | None:
        return self.saved

    def forget_token(self, account_name: str) -> None:
        self.forgotten.append(account_name)

    def new_connection(self, plan: LoginPlan) -> FakeConnection:
        connection = FakeConnection(plan)
        self.connections.append(connection)
        return connection


class ServiceTestCase(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.hooks = Hooks()
        self.observers = Observers()
        self.states: list[str] = []
        self.observers.subscribe("state", lambda state: self.states.append(str(state.name)))
        self.service = ConnectionService(self.hooks, self.observers, self.clock,
                                         lambda attempt: [1.0, 2.0, 4.0, 30.0][min(attempt, 3)],
                                         "h:1")

    def password_plan(self) -> LoginPlan:
        return LoginPlan(AUTHENTICATE, "alice", password="pw", explicit=True)

    def connected(self, plan: LoginPlan | None = None) -> FakeConnection:
        """Begin and let the config dir load: the first connection starts."""
        self.service.begin(plan)
        self.hooks.loads[-1].callback(None)
        return self.hooks.connections[-1]

    def online(self, plan: LoginPlan | None = None) -> FakeConnection:
        connection = self.connected(plan)
        self.service.login_reply = {"response": 200}      # the account side's part
        for phase in (Phase.CONNECTING, Phase.HANDSHAKING, Phase.LOGGING_IN,
                      Phase.SYNCING, Phase.ONLINE):
            self.service.connection_phase(phase)
        self.service.connection_online()
        return connection


class StartingTests(ServiceTestCase):
    def test_a_connection_starts_once_the_config_dir_is_loaded(self):
        """begin loads first (no state yet), then starts exactly one connection."""
        waiter = self.service.wait(fail_fast=True)
        self.service.begin(None)
        self.assertEqual((self.hooks.connections, self.states), ([], []))
        self.assertTrue(self.service.busy)
        self.hooks.loads[-1].callback(None)
        self.assertEqual(self.hooks.connections[-1].calls, ["start"])
        self.assertEqual(self.hooks.connections[-1].plan.token, "t")
        self.assertNoResult(waiter)

    def test_the_connections_phases_are_the_public_states(self):
        """Each phase becomes the state front ends see; online fires the waiters."""
        waiter = self.service.wait(fail_fast=True)
        self.online()
        self.assertEqual(self.states, ["connecting", "handshaking", "logging_in",
                                       "syncing", "online"])
        self.assertEqual(self.successResultOf(waiter), {"response": 200})
        self.assertIs(self.service.session(), self.hooks.connections[-1])

    def test_without_a_saved_login_a_password_is_needed(self):
        """Nothing saved: login_required with NoSavedLogin, no connection."""
        self.hooks.saved = None
        waiter = self.service.wait(fail_fast=False)
        self.service.begin(None, "bob")
        self.hooks.loads[-1].callback(None)
        error = self.failureResultOf(waiter, NoSavedLogin).value
        self.assertIn("for bob", error.message)
        self.assertEqual(self.states, ["login_required"])
        self.assertEqual(self.hooks.connections, [])

    def test_an_unusable_config_dir_fails(self):
        """A load that fails: failed with ConfigDirUnusable."""
        waiter = self.service.wait(fail_fast=False)
        self.service.begin(self.password_plan())
        self.hooks.loads[-1].errback(PermissionError("no"))
        self.failureResultOf(waiter, ConfigDirUnusable)
        self.assertEqual(self.states, ["failed"])
        self.assertIsNone(self.service.plan)
        self.flushLoggedErrors(PermissionError)

    def test_a_new_begin_replaces_a_load_under_way(self):
        """The first load finishing late starts nothing: it was cancelled."""
        self.service.begin(None)
        first = self.hooks.loads[-1]
        plan = self.password_plan()
        self.service.begin(plan)
        first.callback(None)                    # finishing late: it was cancelled
        self.assertEqual(self.hooks.connections, [])
        self.hooks.loads[-1].callback(None)
        self.assertEqual([c.plan for c in self.hooks.connections], [plan])

    def test_stop_while_loading_starts_nothing(self):
        """stop() during the load: offline, and the load's end is ignored."""
        waiter = self.service.wait(fail_fast=False)
        self.service.begin(None)
        load = self.hooks.loads[-1]
        self.successResultOf(self.service.stop("quit", "stopped"))
        load.callback(None)
        self.assertEqual(self.hooks.connections, [])
        self.failureResultOf(waiter, NotConnected)
        self.assertFalse(self.service.busy)


class ReconnectingTests(ServiceTestCase):
    def test_a_lost_session_waits_the_backoff_and_connects_again(self):
        """A transient failure: reconnecting with the policy's delay, then a new
        connection with the same plan; online resets the count."""
        first = self.online()
        self.service.connection_closed(ConnectionClosed("closed"), during_login=False)
        state = self.service.state
        self.assertEqual((state.name, state.retry_in, state.attempt), ("reconnecting", 1.0, 1))
        self.assertIsInstance(state.error, ConnectionClosed)
        self.clock.advance(0.99)
        self.assertEqual(len(self.hooks.connections), 1)
        self.clock.advance(0.01)
        second = self.hooks.connections[-1]
        self.assertIsNot(second, first)
        self.assertEqual(second.plan, first.plan)
        self.service.connection_closed(ConnectionClosed("closed"), during_login=False)
        self.assertEqual(self.service.state.retry_in, 2.0)
        self.clock.advance(2.0)
        self.service.connection_online()
        self.service.connection_closed(ConnectionClosed("closed"), during_login=False)
        self.assertEqual(self.service.state.retry_in, 1.0)

    def test_a_refused_connection_is_retried_within_a_second(self):
        """However long the back-off has grown, a refused attempt waits a second at most."""
        self.online()
        for _ in range(5):
            self.service.connection_closed(ConnectionRefused("refused"), during_login=False)
            self.assertLessEqual(self.service.state.retry_in, 1.0)
            self.clock.advance(self.service.state.retry_in)
        self.assertEqual(self.service.state.attempt, 5)

    def test_fail_fast_waiters_hear_of_the_first_failure_others_wait(self):
        """A fail-fast waiter fails on reconnecting; a patient one fires once online."""
        self.online()
        self.service.connection_closed(ConnectionClosed("closed"), during_login=False)
        quick, patient = self.service.wait(True), self.service.wait(False)
        self.clock.advance(1.0)
        self.service.connection_closed(ConnectionRefused("refused"), during_login=False)
        self.failureResultOf(quick, ConnectionRefused)
        self.assertNoResult(patient)
        self.clock.advance(1.0)
        self.service.connection_phase(Phase.ONLINE)
        self.successResultOf(patient)

    def test_stop_while_waiting_cancels_the_next_attempt(self):
        """stop() during the back-off: offline, no timer left, no new connection."""
        self.online()
        self.service.connection_closed(ConnectionClosed("closed"), during_login=False)
        self.successResultOf(self.service.stop("quit", "stopped"))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual((len(self.hooks.connections), self.service.state.name),
                         (1, "offline"))


class EndingTests(ServiceTestCase):
    def test_an_expired_token_needs_the_password_and_is_forgotten(self):
        """A refused resume: login_required, the token forgotten, the plan dropped."""
        waiter = self.service.wait(fail_fast=False)
        self.connected()
        self.service.connection_closed(TokenExpired("resume token expired"),
                                       during_login=True)
        self.failureResultOf(waiter, TokenExpired)
        self.assertEqual((self.service.state.name, self.hooks.forgotten, self.service.plan),
                         ("login_required", ["alice"], None))

    def test_a_wrong_password_asks_again_and_forgets_no_token(self):
        """An explicit login refused: login_required, nothing forgotten."""
        self.connected(self.password_plan())
        self.service.connection_closed(WrongCredentials("wrong"), during_login=True)
        self.assertEqual((self.service.state.name, self.hooks.forgotten),
                         ("login_required", []))

    def test_giving_up_drops_a_password_but_keeps_a_token(self):
        """failed: a password plan is never kept; a resume plan is, for a later start."""
        self.connected(self.password_plan())
        self.service.connection_closed(HmacError("hmac error", 403), during_login=False)
        self.assertEqual((self.service.state.name, self.service.plan), ("failed", None))
        self.connected()
        self.service.connection_closed(HmacError("hmac error", 403), during_login=False)
        self.assertEqual(self.service.plan.kind, RESUME)
        self.assertFalse(self.service.busy)

    def test_stop_says_goodbye_through_the_connection(self):
        """stop() on a live connection closes it with the action given, and fires when
        the connection has closed; the waiters fail with the reason."""
        connection = self.online()
        waiter = self.service.wait(fail_fast=False)
        d = self.service.stop("logout", "logged out")
        self.assertEqual(connection.calls, ["start", ("close", "logout")])
        self.assertNoResult(d)
        connection.closed.callback(None)
        self.successResultOf(d)
        self.assertEqual(self.failureResultOf(waiter, NotConnected).value.message,
                         "logged out")
        self.assertEqual(self.states[-1], "offline")

    def test_a_new_begin_abandons_nothing_when_idle(self):
        """begin after a failure starts afresh; the old connection is not touched."""
        first = self.connected(self.password_plan())
        self.service.connection_closed(HmacError("hmac error", 403), during_login=False)
        self.connected()
        self.assertEqual(first.calls, ["start"])
        self.assertEqual(len(self.hooks.connections), 2)


class BackoffPolicyTests(unittest.TestCase):
    def test_the_default_policy_is_used_as_given(self):
        """A policy of backoff_policy() gives the service its delays (no jitter here)."""
        clock, hooks = task.Clock(), Hooks()
        service = ConnectionService(hooks, Observers(), clock,
                                    backoff_policy(0.5, 30.0, jitter=0.0), "h:1")
        service.begin(None)
        hooks.loads[-1].callback(None)
        service.connection_closed(ConnectionClosed("closed"), during_login=False)
        self.assertEqual(service.state.retry_in, 0.5)
