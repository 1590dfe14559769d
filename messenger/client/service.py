"""Staying connected: `ConnectionService` makes one `Connection` after another.

The model is Twisted's ``ClientService``: a machine that, while it is wanted, keeps a
connection up, waiting a back-off between attempts; what a failure means (retry, ask for
a password, give up) is decided by `messenger.client.reconnect.judge`. Its modes::

    IDLE --begin--> PREPARING --prepared--> CONNECTED --retry--> WAITING --timer--> CONNECTED
                               --no_login / unusable--> IDLE     --ask_login / give_up--> IDLE
    any mode --stop--> IDLE

PREPARING loads the config dir (key, saved logins, pinned keys) first; CONNECTED holds
exactly one `Connection`, whose phase is the state the front ends see. Leaving a mode
cancels what belonged to it (the file load, the timer, the connection), so no late
callback can reach the next one.

It reports the public `ConnectionState` to the observers and settles the Deferreds of
those waiting for a login (`wait`). The account side (tokens, the inbox, the outbox) is
`MessengerClient`'s, through `ServiceHooks`.
"""

from __future__ import annotations

import enum
from typing import Any, Protocol

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from messenger.client import reconnect
from messenger.client.connection import Connection, Phase
from messenger.client.errors import (
    ConfigDirUnusable,
    NoSavedLogin,
    NotConnected,
    PasswordNeeded,
)
from messenger.client.events import ConnectionState, Observers, State
from messenger.client.machine import Machine, rows
from messenger.client.plan import LoginPlan
from messenger.wire.errors import MessengerError


class Mode(enum.Enum):
    IDLE = "idle"              # not connected: offline, login required or failed
    PREPARING = "preparing"    # loading the config dir before connecting
    CONNECTED = "connected"    # one Connection is under way
    WAITING = "waiting"        # reconnecting: a timer makes the next Connection


class ServiceHooks(Protocol):
    def prepare(self) -> defer.Deferred[None]: ...
    def saved_plan(self, account_name: str | None) -> LoginPlan | None: ...
    def forget_token(self, account_name: str) -> None: ...
    def new_connection(self, plan: LoginPlan) -> Connection: ...


class _Waiter:
    __slots__ = ("deferred", "fail_fast")

    def __init__(self, deferred: defer.Deferred, fail_fast: bool) -> None:
        self.deferred = deferred
        self.fail_fast = fail_fast


class ConnectionService:
    log = Logger()

    def __init__(self, hooks: ServiceHooks, observers: Observers, clock: Any,
                 backoff: reconnect.BackoffPolicy, address: str) -> None:
        self._hooks = hooks
        self._observers = observers
        self._clock = clock
        self._backoff = backoff
        self._address = address
        self._machine: Machine[Mode] = Machine(self, Mode.IDLE, self._TABLE, observers)
        self.state = ConnectionState(State.OFFLINE)
        self.plan: LoginPlan | None = None
        self.connection: Connection | None = None
        self.login_reply: dict[str, Any] | None = None
        self._preparing: defer.Deferred | None = None
        self._timer: IDelayedCall | None = None
        self._attempt = 0
        self._waiters: list[_Waiter] = []
        self._closing: defer.Deferred[Any] = defer.succeed(None)

    # == what the account side does ======================================================

    @property
    def busy(self) -> bool:
        """An attempt is under way (or due): preparing, connected or waiting."""
        return self._machine.state is not Mode.IDLE

    @property
    def connected(self) -> bool:
        return self._machine.state is Mode.CONNECTED

    def session(self) -> Connection | None:
        """The connection, if a session is logged in on it."""
        return self.connection if self.state.logged_in else None

    def begin(self, plan: LoginPlan | None, account_name: str | None = None) -> None:
        """Connect with ``plan``, or with the saved login of ``account_name`` (None: the
        account that logged in last)."""
        self._machine.feed("begin", plan, account_name)

    def stop(self, action: str, reason: str) -> defer.Deferred[Any]:
        """Close (saying ``action`` if a session is up), go offline, fail the waiters
        with `NotConnected(reason)`; fires once the connection is closed."""
        self._closing = defer.succeed(None)
        self._machine.feed("stop", action, reason)
        return self._closing

    def wait(self, fail_fast: bool) -> defer.Deferred[dict[str, Any]]:
        """Fires with the login reply once online; fails with the error that ends the
        attempt (``fail_fast``: also with the first one that is merely retried)."""
        def cancel(d: defer.Deferred) -> None:
            self._waiters = [w for w in self._waiters if w.deferred is not d]
        d: defer.Deferred[dict[str, Any]] = defer.Deferred(cancel)
        self._waiters.append(_Waiter(d, fail_fast))
        return d

    # == what the connection reports (connection.Lifecycle) ==============================

    def connection_phase(self, phase: Phase) -> None:
        self._report(State(phase.value))

    def connection_online(self) -> None:
        self._attempt = 0

    def connection_closed(self, error: MessengerError, during_login: bool) -> None:
        plan = self.plan
        explicit = plan is not None and plan.explicit
        verdict = reconnect.judge(error, during_login=during_login, explicit=explicit)
        self.connection = None
        if plan is None:                    # nothing to log in with any more
            self._machine.feed("give_up", error)
        elif verdict.action == reconnect.RETRY:
            self._machine.feed("retry", verdict, error)
        elif verdict.action == reconnect.LOGIN:
            if verdict.forget_token:
                self._hooks.forget_token(plan.account_name)
            if plan.resuming and not isinstance(error, PasswordNeeded):
                error = PasswordNeeded(error.message)
            self._machine.feed("ask_login", error)
        else:
            self._machine.feed("give_up", error)

    # == outputs =========================================================================

    def _prepare(self, plan: LoginPlan | None, account_name: str | None) -> None:
        self._leave()
        self.plan = plan
        loading: defer.Deferred = defer.Deferred()
        self._preparing = loading
        self._hooks.prepare().chainDeferred(loading)
        loading.addCallbacks(lambda _: self._prepared(account_name), self._prepare_failed)

    def _prepared(self, account_name: str | None) -> None:
        self._preparing = None
        if self.plan is None:
            self.plan = self._hooks.saved_plan(account_name)
        if self.plan is not None:
            self._machine.feed("prepared")
            return
        who = f" for {account_name}" if account_name else ""
        self._machine.feed("no_login", NoSavedLogin(
            f"no saved login{who} on {self._address}: log in with a password"))

    def _prepare_failed(self, failure: Failure) -> None:
        if failure.check(defer.CancelledError):
            return                          # a stop or a new begin replaced it
        self._preparing = None
        self.log.failure("Cannot load the client's saved state", failure)
        self._machine.feed("unusable", ConfigDirUnusable(
            f"cannot use the config dir: {failure.value}"))

    def _connect(self) -> None:
        self._timer = None
        assert self.plan is not None
        self.connection = self._hooks.new_connection(self.plan)
        self.connection.start()

    def _schedule(self, verdict: reconnect.Verdict, error: MessengerError) -> None:
        delay = verdict.delay(self._backoff(self._attempt))
        self._attempt += 1
        self._timer = self._clock.callLater(delay, self._machine.on("timer"))
        self._report(State.RECONNECTING, reason=error.message, retry_in=delay,
                     retry_at=self._clock.seconds() + delay, attempt=self._attempt,
                     error=error)

    def _need_login(self, error: MessengerError) -> None:
        self._leave()
        self.plan = None
        self._report(State.LOGIN_REQUIRED, reason=error.message, error=error)

    def _give_up(self, error: MessengerError) -> None:
        self._leave()
        if self.plan is not None and not self.plan.resuming:
            self.plan = None                # never keep a password past its attempt
        self._report(State.FAILED, reason=error.message, error=error)

    def _shut(self, action: str, reason: str) -> None:
        connection, self.connection = self.connection, None
        self._leave()
        if connection is not None:
            self._closing = connection.close(action)
        if self.state.name != State.OFFLINE:
            self._report(State.OFFLINE, reason=reason)
        self._observers.later(self._settle_waiters, NotConnected(reason), True)

    def _leave(self) -> None:
        """Cancel what belongs to the mode being left: a file load, a timer, a connection
        (closed by `_shut` when it is to say goodbye)."""
        preparing, self._preparing = self._preparing, None
        if preparing is not None:
            preparing.cancel()
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.abandon()

    # -- the public state and the waiters -------------------------------------------------

    def _report(self, name: State, **info: Any) -> None:
        self.state = state = ConnectionState(name, **info)
        self.log.debug("Connection to {address}: {state}", address=self._address,
                       state=str(state))
        self._observers.emit("state", state)
        if name == State.ONLINE:
            self._observers.later(self._settle_waiters, None, True)
        elif name in (State.LOGIN_REQUIRED, State.FAILED):
            self._observers.later(self._settle_waiters, info["error"], True)
        elif name == State.RECONNECTING:
            self._observers.later(self._settle_waiters, info["error"], False)

    def _settle_waiters(self, error: BaseException | None, everyone: bool) -> None:
        """Fire the waiters with the login reply (``error`` None), or fail them."""
        settled = [w for w in self._waiters if everyone or w.fail_fast]
        self._waiters = [w for w in self._waiters if w not in settled]
        for waiter in settled:
            if error is None:
                waiter.deferred.callback(self.login_reply)
            else:
                waiter.deferred.errback(error)

    # == the table =======================================================================

    _TABLE = {
        **rows((Mode.IDLE, Mode.PREPARING, Mode.WAITING), "begin", _prepare,
               to=Mode.PREPARING),
        (Mode.PREPARING, "prepared"): (Mode.CONNECTED, _connect),
        (Mode.PREPARING, "no_login"): (Mode.IDLE, _need_login),
        (Mode.PREPARING, "unusable"): (Mode.IDLE, _give_up),
        (Mode.CONNECTED, "retry"): (Mode.WAITING, _schedule),
        (Mode.CONNECTED, "ask_login"): (Mode.IDLE, _need_login),
        (Mode.CONNECTED, "give_up"): (Mode.IDLE, _give_up),
        (Mode.WAITING, "timer"): (Mode.CONNECTED, _connect),
        **rows(Mode, "stop", _shut, to=Mode.IDLE),
    }
