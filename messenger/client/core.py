"""`MessengerClient`: the Qt-free client core every front end builds on.

It owns one server address and at most one connection to it, and keeps that connection
alive for as long as the user wants to be logged in:

* connect over TCP (or TLS), run both handshake phases, pin the server key
  (`known_servers`), log in (a saved resume token, or a password), sync what arrived
  while away (`inbox`), and resend every unacknowledged message with its original id
  (`sender`, `outbox`);
* when the connection breaks, wait a jittered exponential back-off and do it all again;
  what a failure means (retry, ask for a password, or stop) is decided in `reconnect`;
* hand every push to the observers (`pushes`, `events`) and report each state change;
* keep the resume token (never the password), the last delivered message id and the
  client key in the config dir (`saved`, `credentials`), written off the reactor thread.

Every protocol action is a method returning a Deferred (`actions.ActionsMixin`) that
fires with the reply or fails with the `MessengerError` subclass of the reply's code.
Nothing here blocks the reactor and nothing imports Qt. docs/CLIENT.md is the guide.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.internet import defer, threads
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from messenger.client import reconnect
from messenger.client.actions import ActionsMixin
from messenger.client.credentials import CredentialStore
from messenger.client.errors import ConnectionFailed, NotConnected, PasswordNeeded
from messenger.client.events import (
    CONNECTING,
    FAILED,
    HANDSHAKING,
    LOGGING_IN,
    LOGIN_REQUIRED,
    OFFLINE,
    ONLINE,
    RECONNECTING,
    SYNCING,
    AccountInfo,
    ConnectionState,
    IncomingMessage,
    Observers,
    ServerKeyEvent,
)
from messenger.client.inbox import Inbox, valid_message
from messenger.client.known_servers import PinOutcome, format_address
from messenger.client.outbox import Outbox, OutgoingMessage
from messenger.client.protocol import ClientProtocol
from messenger.client.pushes import PushDispatcher
from messenger.client.saved import RunBlocking, SavedState
from messenger.client.sender import MessageSender
from messenger.wire.errors import MessengerError
from messenger.wire.handshake import ClientHandshake, Established
from messenger.wire.suites import SUITES

Connector = Callable[[Callable[[], ClientProtocol]], defer.Deferred]

_BUSY = (CONNECTING, HANDSHAKING, LOGGING_IN, SYNCING, RECONNECTING)


@dataclass
class _Plan:
    """How the next connection logs in."""

    kind: str                     # "resume", "authenticate" or "register"
    account_name: str
    password: str | None = None   # authenticate/register only; dropped after the attempt
    email: str | None = None
    premium_code: str | None = None
    token: str | None = None      # resume only
    remember: bool = True         # keep the token on disk
    explicit: bool = False        # a user is waiting on this very attempt

    def login_request(self) -> tuple[str, dict[str, Any]]:
        if self.kind == "resume":
            return "resume", {"user": {"account_name": self.account_name},
                              "token": self.token}
        user: dict[str, Any] = {"account_name": self.account_name, "password": self.password}
        fields: dict[str, Any] = {"user": user, "remember": True}
        if self.kind == "register":
            user["email"] = self.email
            if self.premium_code:
                fields["premium_code"] = self.premium_code
        return self.kind, fields


class _Waiter:
    __slots__ = ("deferred", "fail_fast")

    def __init__(self, deferred: defer.Deferred, fail_fast: bool) -> None:
        self.deferred = deferred
        self.fail_fast = fail_fast


class _ProtocolFactory(Factory):
    noisy = False

    def __init__(self, build: Callable[[], ClientProtocol]) -> None:
        self._build = build

    def buildProtocol(self, addr: Any) -> ClientProtocol:
        protocol = self._build()
        protocol.factory = self
        return protocol


class MessengerClient(ActionsMixin):
    """A connection to one Messenger server that stays up, with a Deferred per action."""

    log = Logger()

    def __init__(self, host: str, port: int, secret: bytes, *,
                 config_dir: Path | str | None = None,
                 store: CredentialStore | None = None,
                 tls: Any = None,
                 accept_new_key: bool = False,
                 reactor: Any = None,
                 backoff: reconnect.BackoffPolicy | None = None,
                 run_blocking: RunBlocking | None = None,
                 connect: Connector | None = None,
                 client_key: rsa.RSAPrivateKey | None = None,
                 suites: Sequence[str] = SUITES,
                 connect_timeout: float = 15.0,
                 handshake_timeout: float = 20.0,
                 dead_after: float = 90.0,
                 quit_timeout: float = 2.0,
                 window: int = 64,
                 sync_page: int = 200,
                 cursor_save_delay: float = 1.0) -> None:
        """``secret``: the deployment's shared secret (the stripped bytes of its file).
        ``tls``: an ``IOpenSSLClientConnectionCreator`` (`messenger.client.tls.
        client_tls_options`) to connect with TLS. ``accept_new_key``: trust a server key
        that differs from the pinned one (and pin it). ``dead_after``: drop and remake a
        connection that has been silent this long (the server probes after 30 s of
        silence, so a live one never is). ``reactor``, ``run_blocking`` (default
        ``deferToThread``), ``connect`` and ``backoff`` are for tests and tools."""
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.host = host
        self.port = port
        self.address = format_address(host, port)
        self.accept_new_key = accept_new_key
        self._secret = secret
        self._tls = tls
        self._reactor = reactor
        self._backoff = backoff or reconnect.backoff_policy()
        self._connect_hook = connect or self._connect_endpoint
        self._suites = tuple(suites)
        self._connect_timeout = connect_timeout
        self._handshake_timeout = handshake_timeout
        self._dead_after = dead_after
        self._quit_timeout = quit_timeout
        self._sync_page = sync_page
        self._cursor_save_delay = cursor_save_delay

        self.observers = Observers()
        self.account: AccountInfo | None = None
        self.server_fingerprint: str | None = None
        self.login_reply: dict[str, Any] | None = None
        self._saved = SavedState(store or CredentialStore(
            Path(config_dir) if config_dir else None),
            run_blocking or threads.deferToThread, client_key)
        self._state = ConnectionState(OFFLINE)
        self._plan: _Plan | None = None
        self._waiters: list[_Waiter] = []
        self._proto: ClientProtocol | None = None
        self._generation = 0
        self._attempt = 0
        self._connecting: defer.Deferred | None = None
        self._retry_call: IDelayedCall | None = None
        self._watchdog: IDelayedCall | None = None
        self._cursor_call: IDelayedCall | None = None
        self._pin_outcome: PinOutcome | None = None
        self._inbox: Inbox | None = None
        self._status = "online"
        self._sender = MessageSender(Outbox(window), self.observers, reactor, self._session)
        self._pushes = PushDispatcher(self.observers, self._on_msg, self._account_changed)

    # == public: observing ===============================================================

    @property
    def state(self) -> ConnectionState:
        return self._state

    def subscribe(self, kind: str, callback: Callable[[Any], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event of ``kind`` (see `events`); returns a
        function that unsubscribes."""
        return self.observers.subscribe(kind, callback)

    @property
    def config_dir(self) -> Path:
        return self._saved.store.config_dir

    @property
    def known_servers_path(self) -> Path:
        return self._saved.known.path

    @property
    def last_msg_id(self) -> int:
        """The highest message id delivered to the observers (the sync cursor)."""
        return self._inbox.last_id if self._inbox is not None else 0

    def pending_messages(self) -> list[OutgoingMessage]:
        """Own messages not yet acknowledged, oldest first."""
        return self._sender.outbox.pending()

    # == public: logging in and out ======================================================

    def start(self, account_name: str | None = None,
              fail_fast: bool = True) -> defer.Deferred[dict[str, Any]]:
        """Log in with the saved resume token (of ``account_name``, or of the account that
        logged in last on this server) and stay connected.

        Fires with the login reply once online. With ``fail_fast`` it fails on the first
        failed attempt (the client keeps retrying transient failures in the background
        until `stop`); without, it waits until online or a permanent failure. Fails with
        `PasswordNeeded` when there is no saved token or the server refuses it.
        """
        if self._state.name == ONLINE and self.login_reply is not None:
            return defer.succeed(self.login_reply)
        if self._state.name in _BUSY and self._plan is not None:
            return self._wait(fail_fast)
        waiter = self._wait(fail_fast)
        self._cancel_attempt()
        gen = self._generation
        d = self._saved.prepare(reload_pins=True)
        d.addCallback(self._start_prepared, account_name, gen)
        d.addErrback(self._prepare_failed, gen)
        return waiter

    def login(self, account_name: str, password: str,
              remember: bool = True) -> defer.Deferred[dict[str, Any]]:
        """Log in with a password; fires with the login reply once online (synced).

        The password is used for this one attempt and never kept. The server's resume
        token is saved in the config dir when ``remember`` (the next `start` logs in by
        itself); otherwise it is kept in memory for reconnecting and revoked by `stop`.
        Failures are reported, not retried: `WrongCredentials`, `Conflict` ("already
        connected"), `Forbidden` (locked), `HandshakeError` ("hmac error"),
        `ServerKeyChanged`, `ConnectionFailed`, ...
        """
        return self._begin(_Plan("authenticate", account_name, password=password,
                                 remember=remember, explicit=True))

    def register(self, account_name: str, password: str, email: str,
                 premium_code: str | None = None,
                 remember: bool = True) -> defer.Deferred[dict[str, Any]]:
        """Create an account and log in to it (as `login`)."""
        return self._begin(_Plan("register", account_name, password=password, email=email,
                                 premium_code=premium_code, remember=remember,
                                 explicit=True))

    def stop(self) -> defer.Deferred[None]:
        """Close cleanly (``quit``; ``logout`` for a session not remembered) and stay
        offline. Fires once the connection is closed and the saved state is written.
        Unacknowledged messages stay in the outbox for the next login of this account."""
        plan = self._plan
        closing = "logout" if plan is not None and not plan.remember else "quit"
        if closing == "logout":
            self._plan = None
        proto = self._detach()
        if self._state.name != OFFLINE:
            self._enter(OFFLINE, reason="stopped")
        self._fail_waiters(NotConnected("stopped"), everyone=True)
        d = self._close_session(proto, closing)
        d.addBoth(lambda _: self._save_cursor())
        d.addBoth(lambda _: self._saved.writes_done())
        return d

    def logout(self) -> defer.Deferred[None]:
        """Log out: the server revokes the token, the saved one is deleted, unacknowledged
        messages fail with `NotConnected`, and the client goes offline."""
        plan = self._plan
        name = plan.account_name if plan else (self.account.account_name
                                               if self.account else None)
        logged_in = self._state.logged_in
        proto = self._detach()
        self._plan = None
        self.account = None
        self.login_reply = None
        self._inbox = None
        if self._state.name != OFFLINE:
            self._enter(OFFLINE, reason="logged out")
        self._fail_waiters(NotConnected("logged out"), everyone=True)
        self._sender.fail_all(NotConnected("logged out before the message was acknowledged"))
        d = self._close_session(proto, "logout" if logged_in else "quit")
        d.addBoth(lambda _: self._saved.prepare(reload_pins=False))
        d.addCallback(lambda _: self._saved.forget_token(self.address, name))
        d.addCallback(lambda _: self._saved.writes_done())
        return d

    # == public: requests ================================================================

    def request(self, action: str, fields: dict[str, Any] | None = None
                ) -> defer.Deferred[dict[str, Any]]:
        """Send any action of the logged-in session (docs/PROTOCOL.md); fires with the
        reply or fails with the `MessengerError` of its code, or `NotConnected`."""
        proto = self._session()
        if proto is None:
            return defer.fail(NotConnected(f"not connected ({self._state})"))
        return proto.request(action, fields)

    def queue_message(self, to: str, text: str) -> OutgoingMessage:
        """Put a message in the outbox and return its record at once (status pending);
        it is sent now if online, else after the next login, and resent with the same id
        until acknowledged. ``message_status`` observers hear of every change."""
        owner = self.account.account_name if self.account else (
            self._plan.account_name if self._plan else None)
        if owner is None:
            raise NotConnected("log in before sending messages")
        return self._sender.queue(owner, to, text)

    def send_message(self, to: str, text: str) -> defer.Deferred[dict[str, Any]]:
        """`queue_message`, as a Deferred firing with the acknowledgement (``msg_id``,
        ``time``), however many reconnects it takes, or failing with the refusal."""
        try:
            entry = self.queue_message(to, text)
        except MessengerError as error:
            return defer.fail(error)
        return entry.when_done()

    def set_password(self, old_password: str, new_password: str
                     ) -> defer.Deferred[dict[str, Any]]:
        """Change the password. The server revokes every token of the account and gives
        this session a new one, which replaces the saved token."""
        d = self.request("set_password", {"old_password": old_password,
                                          "new_password": new_password})
        d.addCallback(self._password_changed)
        return d

    def set_presence(self, status: str) -> defer.Deferred[dict[str, Any]]:
        """``online`` or ``away``; remembered and restored after a reconnect."""
        self._status = status
        return self.request("presence", {"status": status})

    def _password_changed(self, reply: dict[str, Any]) -> dict[str, Any]:
        token, expires = reply.get("token"), reply.get("token_expires")
        plan = self._plan
        if isinstance(token, str) and plan is not None and plan.kind == "resume":
            plan.token = token
            if plan.remember:
                self._saved.remember_login(
                    self.address, plan.account_name, token,
                    float(expires) if isinstance(expires, (int, float)) else None)
        return reply

    # == the connection cycle ============================================================
    # Every callback of an attempt checks that its connection (or generation) is still
    # the current one: a stop, a new login or an observer may have replaced it meanwhile.
    # State changes come first and waiters are told last, for the same reason.

    def _enter(self, name: str, **info: Any) -> None:
        current = self._state.name
        if name != current and name not in reconnect.TRANSITIONS[current]:
            raise RuntimeError(f"no transition {current} -> {name}")
        self._state = ConnectionState(name, **info)
        self.log.debug("Connection to {address}: {state}", address=self.address,
                       state=str(self._state))
        self.observers.emit("state", self._state)

    def _session(self) -> ClientProtocol | None:
        """The connection, if a session is logged in on it."""
        proto = self._proto
        if proto is None or not self._state.logged_in or not proto.ready:
            return None
        return proto

    def _begin(self, plan: _Plan) -> defer.Deferred[dict[str, Any]]:
        if self._state.name in (CONNECTING, HANDSHAKING, LOGGING_IN, SYNCING, ONLINE):
            what = ("already logged in" if self._state.logged_in
                    else "a login is already in progress")
            return defer.fail(NotConnected(f"{what}; stop() or logout() first"))
        waiter = self._wait(fail_fast=True)
        self._cancel_attempt()
        self._plan = plan
        gen = self._generation
        d = self._saved.prepare(reload_pins=True)
        d.addCallback(lambda _: self._connect() if gen == self._generation else None)
        d.addErrback(self._prepare_failed, gen)
        return waiter

    def _start_prepared(self, _: Any, account_name: str | None, gen: int) -> None:
        if gen != self._generation:
            return
        record = self._saved.account(self.address, account_name)
        if record is None or not record.token:
            who = f" for {account_name}" if account_name else ""
            error = PasswordNeeded(f"no saved login{who} on {self.address}: log in with a"
                                   " password")
            self._enter(LOGIN_REQUIRED, reason=error.message, error=error)
            self._fail_waiters(error, everyone=True)
            return
        self._plan = _Plan("resume", record.account_name, token=record.token)
        self._connect()

    def _prepare_failed(self, failure: Failure, gen: int) -> None:
        if gen != self._generation:
            return
        self.log.failure("Cannot load the client's saved state from {path}", failure,
                         path=str(self.config_dir))
        error = ConnectionFailed(f"cannot use the config dir {self.config_dir}:"
                                 f" {failure.value}")
        self._plan = None
        self._enter(FAILED, reason=error.message, error=error)
        self._fail_waiters(error, everyone=True)

    def _connect(self) -> None:
        self._generation += 1
        gen = self._generation
        self._retry_call = None
        self._pin_outcome = None
        self._enter(CONNECTING)
        if gen != self._generation:
            return
        try:
            d = self._connect_hook(self._build_protocol)
        except Exception as error:  # e.g. TLS settings that cannot be used
            d = defer.fail(error)
        self._connecting = d
        d.addCallbacks(self._connected, self._connect_failed, callbackArgs=(gen,),
                       errbackArgs=(gen,))

    def _build_protocol(self) -> ClientProtocol:
        key = self._saved.client_key
        assert key is not None
        handshake = ClientHandshake(self._secret, key, self._suites,
                                    check_server_key=self._check_server_key)
        return ClientProtocol(handshake, self._reactor)

    def _connect_endpoint(self, build: Callable[[], ClientProtocol]) -> defer.Deferred:
        endpoint: Any = HostnameEndpoint(self._reactor, self.host, self.port,
                                         timeout=self._connect_timeout)
        if self._tls is not None:
            endpoint = wrapClientTLS(self._tls, endpoint)
        return endpoint.connect(_ProtocolFactory(build))

    def _check_server_key(self, server_key: rsa.RSAPublicKey) -> None:
        """The handshake's pinning hook (called once the signature has verified)."""
        self._pin_outcome = self._saved.known.check(self.address, server_key,
                                                    self.accept_new_key)

    def _connect_failed(self, failure: Failure, gen: int) -> None:
        if gen == self._generation:
            self._connecting = None
            self._after_failure(failure.value, during_login=False)

    def _connected(self, proto: ClientProtocol, gen: int) -> None:
        if gen != self._generation:
            proto.abort(ConnectionFailed("connection no longer wanted"))
            return
        self._connecting = None
        self._proto = proto
        proto.on_push = self._pushes
        proto.on_orphan_reply = self._pushes.orphan_reply
        proto.when_closed().addCallback(self._lost, proto)
        self._enter(HANDSHAKING)
        if proto is not self._proto:
            return
        self._arm_watchdog(proto, self._handshake_timeout)
        proto.established.addCallbacks(self._established, lambda _: None,
                                       callbackArgs=(proto,))

    def _established(self, established: Established, proto: ClientProtocol) -> None:
        plan = self._plan
        if proto is not self._proto or plan is None:
            return
        self.server_fingerprint = established.server_fingerprint
        self._report_pin(self._pin_outcome)
        self._enter(LOGGING_IN)
        if proto is not self._proto:
            return
        self._arm_watchdog(proto, self._dead_after)
        action, fields = plan.login_request()
        d = proto.request(action, fields)
        d.addCallbacks(self._logged_in, self._login_refused, callbackArgs=(proto, plan),
                       errbackArgs=(proto, plan))

    def _report_pin(self, outcome: PinOutcome | None) -> None:
        if outcome is None or not outcome.changed_file:
            return
        self._saved.save_known_servers()
        if outcome.first_use:
            self.log.info("Pinned the key of {address} on first use: {fingerprint}",
                          address=self.address, fingerprint=outcome.fingerprint)
        else:
            self.log.warn("Accepted a new key for {address}: {fingerprint} (was {old})",
                          address=self.address, fingerprint=outcome.fingerprint,
                          old=outcome.replaced)
        self.observers.emit("server_key", ServerKeyEvent(
            outcome.address, outcome.fingerprint, outcome.first_use, outcome.replaced))

    def _login_refused(self, failure: Failure, proto: ClientProtocol, plan: _Plan) -> None:
        if proto is not self._proto or plan is not self._plan:
            return
        if isinstance(failure.value, NotConnected):
            return                          # the connection went: _lost decides
        self._detach()
        self._close_session(proto, "quit")
        self._after_failure(failure.value, during_login=True)

    def _logged_in(self, reply: dict[str, Any], proto: ClientProtocol, plan: _Plan) -> None:
        if proto is not self._proto or plan is not self._plan:
            return
        try:
            account = AccountInfo.from_jim(reply["user"])
        except (KeyError, TypeError, AttributeError):
            proto.abort(ConnectionFailed("the server's login reply has no valid 'user'"))
            return
        name = account.account_name
        if plan.kind != "resume":
            token = reply.get("token") if isinstance(reply.get("token"), str) else None
            expires = reply.get("token_expires")
            if token is None:
                self.log.warn("The server gave no resume token: reconnecting will need"
                              " the password")
            self._plan = plan = _Plan("resume", name, token=token, remember=plan.remember)
            if plan.remember and token is not None:
                self._saved.remember_login(
                    self.address, name, token,
                    float(expires) if isinstance(expires, (int, float)) else None)
        sender = self._sender
        if sender.owner is not None and sender.owner != name.lower():
            sender.fail_all(NotConnected(f"logged in as {name}, not as the sender"))
        sender.owner = name.lower()
        if self._inbox is None or self.account is None or (
                self.account.account_name.lower() != name.lower()):
            self._inbox = Inbox(self._saved.cursor(self.address, name))
        self.account = account
        self.login_reply = reply
        self._enter(SYNCING)
        self.observers.emit("account", account)
        if proto is not self._proto:
            return
        if self._status != "online":
            proto.request("presence", {"status": self._status}).addErrback(
                self._log_refusal, "restoring presence")
        sender.pump()
        self._inbox.begin_sync()
        self._sync_from(proto)

    def _sync_from(self, proto: ClientProtocol) -> None:
        inbox = self._inbox
        assert inbox is not None
        d = proto.request("sync", {"since": inbox.last_id, "limit": self._sync_page})
        d.addCallbacks(self._synced_page, self._sync_failed, callbackArgs=(proto,),
                       errbackArgs=(proto,))

    def _synced_page(self, reply: dict[str, Any], proto: ClientProtocol) -> None:
        if proto is not self._proto or self._inbox is None:
            return
        raw = reply.get("alert")
        messages = [m for m in raw if valid_message(m)] if isinstance(raw, list) else []
        self._deliver(self._inbox.sync_page(messages))
        if proto is not self._proto:
            return
        if reply.get("more") is True and messages:
            self._sync_from(proto)
            return
        self._deliver(self._inbox.end_sync())
        if proto is not self._proto:
            return
        self._attempt = 0
        self._enter(ONLINE)
        self._fire_waiters(self.login_reply)

    def _sync_failed(self, failure: Failure, proto: ClientProtocol) -> None:
        if proto is not self._proto or isinstance(failure.value, NotConnected):
            return
        reason = reconnect.describe(failure.value)
        self.log.warn("Sync failed: {error}; reconnecting", error=reason)
        proto.abort(ConnectionFailed(f"sync failed: {reason}"))

    def _lost(self, cause: BaseException, proto: ClientProtocol) -> None:
        if proto is self._proto:
            self._detach()
            self._after_failure(cause, during_login=False)

    def _after_failure(self, error: BaseException, during_login: bool) -> None:
        """Decide what follows a failed attempt or a lost session."""
        plan = self._plan
        explicit = plan is not None and plan.explicit
        verdict = reconnect.judge(error, during_login=during_login, explicit=explicit,
                                  resuming=plan is not None and plan.kind == "resume")
        if plan is None:                    # nothing to log in with any more
            self._enter(OFFLINE, reason=verdict.reason, error=error)
            self._fail_waiters(error, everyone=True)
            return
        if verdict.action == reconnect.RETRY:
            delay = max(self._backoff(self._attempt), verdict.min_delay)
            self._attempt += 1
            self._retry_call = self._reactor.callLater(delay, self._connect)
            self._enter(RECONNECTING, reason=verdict.reason, retry_in=delay,
                        retry_at=self._reactor.seconds() + delay, attempt=self._attempt,
                        error=error)
            self._fail_waiters(error, everyone=False)
            return
        if verdict.action == reconnect.LOGIN:
            if verdict.forget_token:
                self._saved.forget_token(self.address, plan.account_name)
            self._plan = None
            if plan.kind == "resume" and not isinstance(error, PasswordNeeded):
                error = PasswordNeeded(verdict.reason)
            self._enter(LOGIN_REQUIRED, reason=verdict.reason, error=error)
            self._fail_waiters(error, everyone=True)
            return
        if plan.kind != "resume":
            self._plan = None               # never keep a password past its attempt
        self._enter(FAILED, reason=verdict.reason, error=error)
        self._fail_waiters(error, everyone=True)

    def _detach(self) -> ClientProtocol | None:
        """Forget the current connection (and any attempt): stale callbacks are ignored."""
        self._cancel_attempt()
        proto, self._proto = self._proto, None
        self._sender.connection_lost()
        if self._inbox is not None:
            self._inbox.abort_sync()
        return proto

    def _cancel_attempt(self) -> None:
        self._generation += 1
        for call in (self._retry_call, self._watchdog):
            if call is not None and call.active():
                call.cancel()
        self._retry_call = self._watchdog = None
        connecting, self._connecting = self._connecting, None
        if connecting is not None:
            connecting.addErrback(lambda _: None)
            connecting.cancel()

    def _close_session(self, proto: ClientProtocol | None, action: str) -> defer.Deferred:
        """Say ``quit`` (or ``logout``) and close; fires once closed."""
        if proto is None:
            return defer.succeed(None)
        closed = proto.when_closed()
        if not proto.ready:
            proto.close()
            return closed
        proto.request(action).addBoth(lambda _: proto.close())
        timer = self._reactor.callLater(self._quit_timeout, proto.abort,
                                        ConnectionFailed(f"no answer to {action}"))

        def cancel_timer(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result
        return closed.addBoth(cancel_timer)

    def _arm_watchdog(self, proto: ClientProtocol, limit: float) -> None:
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self._watchdog = self._reactor.callLater(limit, self._check_alive, proto, limit)

    def _check_alive(self, proto: ClientProtocol, limit: float) -> None:
        """Drop a connection that has been silent for ``limit`` seconds."""
        self._watchdog = None
        if proto is not self._proto:
            return
        idle = self._reactor.seconds() - proto.last_received
        if idle >= limit:
            self.log.info("No data from {address} for {idle:.0f} s: reconnecting",
                          address=self.address, idle=idle)
            proto.abort(ConnectionFailed(f"no data from the server for {idle:.0f} s"))
            return
        self._watchdog = self._reactor.callLater(limit - idle, self._check_alive, proto,
                                                 limit)

    # -- waiters --------------------------------------------------------------------------

    def _wait(self, fail_fast: bool) -> defer.Deferred[dict[str, Any]]:
        def cancel(d: defer.Deferred) -> None:
            self._waiters = [w for w in self._waiters if w.deferred is not d]
        d: defer.Deferred[dict[str, Any]] = defer.Deferred(cancel)
        self._waiters.append(_Waiter(d, fail_fast))
        return d

    def _fire_waiters(self, result: Any) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.deferred.callback(result)

    def _fail_waiters(self, error: BaseException, everyone: bool) -> None:
        failing = [w for w in self._waiters if everyone or w.fail_fast]
        self._waiters = [w for w in self._waiters if w not in failing]
        for waiter in failing:
            waiter.deferred.errback(error)

    # == incoming messages and the cursor ================================================

    def _on_msg(self, message: dict[str, Any]) -> None:
        """A ``msg`` push: delivered unless seen already (or held while syncing)."""
        inbox = self._inbox
        if inbox is None or not valid_message(message):
            self.log.warn("Ignoring a malformed or unexpected msg push")
            return
        incoming = inbox.push(message)
        if incoming is not None:
            self.observers.emit("message", incoming)
            self._cursor_moved()

    def _deliver(self, messages: list[IncomingMessage]) -> None:
        if messages:
            emit = self.observers.emit
            for incoming in messages:
                emit("message", incoming)
            self._cursor_moved()

    def _account_changed(self, account: AccountInfo) -> None:
        self.account = account

    def _cursor_moved(self) -> None:
        """Save the cursor soon (one write per burst of messages, not one per message)."""
        if self._cursor_call is None:
            self._cursor_call = self._reactor.callLater(self._cursor_save_delay,
                                                        self._save_cursor)

    def _save_cursor(self) -> None:
        call, self._cursor_call = self._cursor_call, None
        if call is not None and call.active():
            call.cancel()
        if self._inbox is not None and self.account is not None:
            self._saved.set_cursor(self.address, self.account.account_name,
                                   self._inbox.last_id)

    def _log_refusal(self, failure: Failure, what: str) -> None:
        """For requests the client makes on its own: a refusal is worth a line, a lost
        connection not even that."""
        if not failure.check(NotConnected):
            self.log.warn("While {what}: {error}", what=what,
                          error=reconnect.describe(failure.value))
