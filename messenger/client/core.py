"""`MessengerClient`: the Qt-free client core every front end builds on.

It owns one server address and the account logged in there, and keeps the session alive
for as long as the user wants to be logged in. This class holds the account's actions (log
in with a saved token or a password, register, stop, log out, messages, presence, the
password) and what a login leaves behind (the resume token, never the password; the
account; the sync cursor; the server's limits). Below it, `service.ConnectionService`
stays connected, one `connection.Connection` after another (ARCHITECTURE.md has the
picture). Every action returns a Deferred that fires with the reply or fails with a
typed error of `errors`; front ends hear of everything through observers (`events`).
Nothing here blocks the reactor or imports Qt. docs/CLIENT.md is the guide.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.internet import defer, threads
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from messenger.client import reconnect
from messenger.client.account_settings import AccountSettingsMixin, expiry
from messenger.client.actions import ActionsMixin
from messenger.client.connection import Connection, Timeouts
from messenger.client.credentials import CredentialStore
from messenger.client.dialer import Connector, Dialer
from messenger.client.edits import ChangeFeed, EditsMixin
from messenger.client.errors import (
    AlreadyLoggedIn,
    LoginInProgress,
    NotConnected,
)
from messenger.client.events import (
    AccountInfo,
    ConnectionState,
    IncomingMessage,
    Observers,
    ServerKeyEvent,
    ServerLimits,
    State,
)
from messenger.client.failures import describe
from messenger.client.filesapi import FilesMixin
from messenger.client.groupevents import UnreadCounts
from messenger.client.inbox import Inbox
from messenger.client.known_servers import PinOutcome, format_address
from messenger.client.messaging import MessagingMixin
from messenger.client.outbox import Outbox, OutgoingMessage
from messenger.client.outbox_file import FILE_NAME, DiskOutbox, OutboxFile
from messenger.client.plan import AUTHENTICATE, REGISTER, RESUME, LoginPlan
from messenger.client.receipts import Receipts
from messenger.client.saved import RunBlocking, SavedState
from messenger.client.sender import MessageSender
from messenger.client.service import ConnectionService
from messenger.client.transfers import Transfers
from messenger.client.typing import Typing
from messenger.wire.handshake import Established
from messenger.wire.suites import SUITES

Reply = defer.Deferred[dict[str, Any]]


class MessengerClient(MessagingMixin, AccountSettingsMixin, ActionsMixin, FilesMixin,
                      EditsMixin):
    """A session with one Messenger server that stays up, with a Deferred per action."""

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
                 cursor_save_delay: float = 1.0,
                 receipt_delay: float = 1.0) -> None:
        """``secret``: the deployment's shared secret (the stripped bytes of its file).
        ``tls``: an ``IOpenSSLClientConnectionCreator`` (`messenger.client.tls.
        client_tls_options`) to connect with TLS. ``accept_new_key``: trust a server key
        that differs from the pinned one, once: for the next connection only.
        ``dead_after``: drop and remake a connection that has been silent this long (the
        server probes after 30 s of silence, so a live one never is). ``reactor``,
        ``run_blocking`` (default ``deferToThread``), ``connect`` and ``backoff`` are for
        tests and tools. ``receipt_delay``: how long receipts wait to be sent together
        (`receipts.Receipts`)."""
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.host = host
        self.port = port
        self.address = format_address(host, port)
        self.accept_new_key = accept_new_key
        self._reactor = reactor
        self._timeouts = Timeouts(handshake_timeout, dead_after, quit_timeout, sync_page)
        self._cursor_save_delay = cursor_save_delay

        self.observers = Observers()
        self.account: AccountInfo | None = None
        self.server_fingerprint: str | None = None
        self.limits = ServerLimits()
        self._saved = SavedState(store or CredentialStore(
            Path(config_dir) if config_dir else None),
            run_blocking or threads.deferToThread, client_key)
        self._dialer = Dialer(reactor, host, port, secret, lambda: self._saved.client_key,
                              suites, tls, connect_timeout, connect)
        self._service = ConnectionService(self, self.observers, reactor,
                                          backoff or reconnect.backoff_policy(), self.address)
        self._sender = MessageSender(Outbox(window), self.observers, reactor)
        self._run_blocking = run_blocking or threads.deferToThread
        self._transfers = Transfers(self.observers, self._run_blocking, reactor)
        self._inbox: Inbox | None = None
        self._inbox_owner: str | None = None
        self._cursor_call: IDelayedCall | None = None
        self._status = "online"
        # Receipts and typing (issue 15): batched out, kept and expired here.
        self.receipts = Receipts(self.observers, reactor, receipt_delay)
        self.typing = Typing(self.observers, reactor)
        # The outbox on disk: unsent messages survive the program (outbox_file.py).
        self._disk_outbox = DiskOutbox(
            OutboxFile(self._saved.store.config_dir / FILE_NAME,
                       run_blocking or threads.deferToThread),
            self._sender, self.observers, self.address)
        # Edits and deletions (issue 15): message_changed events, caught up after login.
        self.changes = ChangeFeed(self, self.observers)

    # == public: observing ===============================================================

    @property
    def state(self) -> ConnectionState:
        return self._service.state

    @property
    def login_reply(self) -> dict[str, Any] | None:
        """The server's reply to the last login of this session (None when logged out)."""
        return self._service.login_reply

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

    def start(self, account_name: str | None = None, fail_fast: bool = True) -> Reply:
        """Log in with the saved resume token (of ``account_name``, or of the account that
        logged in last on this server) and stay connected.

        Fires with the login reply once online. With ``fail_fast`` it fails on the first
        failed attempt (the client keeps retrying transient failures in the background
        until `stop`); without, it waits until online or a permanent failure. Fails with
        `NoSavedLogin` (a `PasswordNeeded`) when there is no saved token.
        """
        service = self._service
        if self.state.name == State.ONLINE and self.login_reply is not None:
            return defer.succeed(self.login_reply)
        if service.busy and service.plan is not None:
            return service.wait(fail_fast)
        waiter = service.wait(fail_fast)
        service.begin(None, account_name)
        return waiter

    def login(self, account_name: str, password: str, remember: bool = True) -> Reply:
        """Log in with a password; fires with the login reply once online (synced).

        The password is used for this one attempt and never kept. The server's resume
        token is saved in the config dir when ``remember`` (the next `start` logs in by
        itself); otherwise it is kept in memory for reconnecting and revoked by `stop`.
        Failures are reported, not retried: `WrongCredentials`, `AlreadyConnected`,
        `AccountLocked`, `HmacError`, `ServerKeyChanged`, `ServerUnreachable`, ...
        """
        return self._begin(LoginPlan(AUTHENTICATE, account_name, password=password,
                                     remember=remember, explicit=True))

    def register(self, account_name: str, password: str, email: str,
                 premium_code: str | None = None, remember: bool = True) -> Reply:
        """Create an account and log in to it (as `login`)."""
        return self._begin(LoginPlan(REGISTER, account_name, password=password, email=email,
                                     premium_code=premium_code, remember=remember,
                                     explicit=True))

    def _begin(self, plan: LoginPlan) -> Reply:
        service = self._service
        if service.connected:
            return defer.fail(
                AlreadyLoggedIn("already logged in; stop() or logout() first")
                if self.state.logged_in else
                LoginInProgress("a login is already in progress; stop() or logout() first"))
        waiter = service.wait(fail_fast=True)
        service.begin(plan)
        return waiter

    def stop(self) -> defer.Deferred[None]:
        """Close cleanly (``quit``; ``logout`` for a session not remembered) and stay
        offline. Fires once the connection is closed and the saved state is written.
        Unacknowledged messages stay in the outbox for the next login of this account."""
        plan = self._service.plan
        closing = "logout" if plan is not None and not plan.remember else "quit"
        if closing == "logout" or (plan is not None and not plan.resuming):
            self._service.plan = None       # a password, or a token never to be reused
        # Receipts still waiting go out, and are answered, before quit (not for long).
        d = self.receipts.flush().addTimeout(self._timeouts.goodbye, self._reactor)
        d.addBoth(lambda _: self._service.stop(closing, "stopped"))
        d.addBoth(lambda _: self._save_cursor())
        d.addBoth(lambda _: self._saved.writes_done())
        d.addBoth(lambda _: self._disk_outbox.written())
        return d

    def logout(self) -> defer.Deferred[None]:
        """Log out: the server revokes the token, the saved one is deleted, unacknowledged
        messages fail with `NotConnected`, and the client goes offline."""
        plan = self._service.plan
        name = plan.account_name if plan else (self.account.account_name
                                               if self.account else None)
        logged_in = self.state.logged_in
        self._service.plan = None
        self._service.login_reply = None
        self.account = None
        self._inbox = self._inbox_owner = None
        d = self._service.stop("logout" if logged_in else "quit", "logged out")
        self._sender.fail_all(NotConnected("logged out before the message was acknowledged"))
        self._transfers.abandon_all(NotConnected("logged out before the transfer ended"))
        d.addBoth(lambda _: self._saved.prepare(reload_pins=False))
        d.addCallback(lambda _: self._saved.forget_token(self.address, name))
        d.addCallback(lambda _: self._saved.writes_done())
        return d

    # == public: requests ================================================================

    def request(self, action: str, fields: dict[str, Any] | None = None) -> Reply:
        """Send any action of the logged-in session (docs/PROTOCOL.md); fires with the
        reply or fails with its typed error, or `NotConnected`."""
        connection = self._service.session()
        if connection is None:
            return defer.fail(NotConnected(f"not connected ({self.state})"))
        return connection.request(action, fields)

    # == the service's hooks (service.ServiceHooks) ======================================

    def prepare(self) -> defer.Deferred[None]:
        """The key and saved logins loaded, the pins read again (the user may have
        edited the file to accept a new key)."""
        d = self._saved.prepare(reload_pins=True)
        d.addCallback(lambda _: self._disk_outbox.load())
        return d

    def saved_plan(self, account_name: str | None) -> LoginPlan | None:
        record = self._saved.account(self.address, account_name)
        if record is None or not record.token:
            return None
        return LoginPlan(RESUME, record.account_name, token=record.token)

    def forget_token(self, account_name: str) -> None:
        self._saved.forget_token(self.address, account_name)

    def new_connection(self, plan: LoginPlan) -> Connection:
        return Connection(self._service, self, plan, self._dialer.dial,
                          self._dialer.new_protocol, self._reactor, self.observers,
                          self._timeouts)

    # == the connection's hooks (connection.Account) =====================================

    def check_server_key(self, key: rsa.RSAPublicKey) -> PinOutcome:
        """Pin or check the server's key; ``accept_new_key`` is spent by this check."""
        accept, self.accept_new_key = self.accept_new_key, False
        return self._saved.known.check(self.address, key, accept)

    def connection_established(self, established: Established,
                               pin: PinOutcome | None) -> None:
        self.server_fingerprint = established.server_fingerprint
        if pin is None or not pin.changed_file:
            return
        self._saved.save_known_servers()
        if pin.first_use:
            self.log.info("Pinned the key of {address} on first use: {fingerprint}",
                          address=self.address, fingerprint=pin.fingerprint)
        else:
            self.log.warn("Accepted a new key for {address}: {fingerprint} (was {old})",
                          address=self.address, fingerprint=pin.fingerprint, old=pin.replaced)
        self.observers.emit("server_key", ServerKeyEvent(pin.address, pin.fingerprint,
                                                         pin.first_use, pin.replaced))

    def inbox_for(self, account_name: str) -> Inbox:
        """The inbox of ``account_name`` (a new one, from its saved cursor, when another
        account was logged in before)."""
        owner = self._inbox_owner
        if self._inbox is None or owner is None or owner.lower() != account_name.lower():
            self._save_cursor()
            self._inbox = Inbox(self._saved.cursor(self.address, account_name))
            self._inbox_owner = account_name
        return self._inbox

    def connection_logged_in(self, connection: Connection, reply: dict[str, Any],
                             account: AccountInfo) -> None:
        plan, name = connection.plan, account.account_name
        if not plan.resuming:
            token = reply.get("token") if isinstance(reply.get("token"), str) else None
            if token is None:
                self.log.warn("The server gave no resume token: reconnecting will need"
                              " the password")
            self._service.plan = plan.resumed(name, token)
            if plan.remember and token is not None:
                self._saved.remember_login(self.address, name, token, expiry(reply))
        sender = self._sender
        if sender.owner is not None and sender.owner != name.lower():
            sender.fail_all(NotConnected(f"logged in as {name}, not as the sender"))
        sender.owner = name.lower()
        self._disk_outbox.restore(name)
        self.account = account
        self._service.login_reply = reply
        self.limits = ServerLimits.from_reply(reply)
        connection.limit(self.limits)
        self.observers.emit("account", account)
        if self._status != "online":
            connection.request("presence", {"status": self._status}).addErrback(
                self._log_refusal, "restoring presence")
        if self.observers.wanted("unread"):
            d = connection.request("get_unread")
            d.addCallback(lambda reply: self.observers.emit("unread",
                                                            UnreadCounts.from_jim(reply)))
            d.addErrback(self._log_refusal, "reading the unread counts")
        sender.attach(connection)
        self._transfers.attach(connection)
        self.receipts.attach(connection)
        self.typing.attach(connection)

    def connection_file_data(self, plaintext: bytes) -> None:
        self._transfers.file_data(plaintext)

    def connection_file_push(self, message: dict[str, Any]) -> None:
        self._transfers.file_push(message)

    def connection_delivered(self, messages: list[IncomingMessage]) -> None:
        if messages:
            self.typing.arrived(messages)
            for incoming in messages:
                self.observers.emit("message", incoming)
            self._cursor_moved()
            self.receipts.delivered(messages)

    def conversation_pushed(self, message: dict[str, Any]) -> None:
        """A ``receipt`` or ``typing`` push (malformed ones raise: the dispatcher logs)."""
        if message["action"] == "receipt":
            self.receipts.pushed(message)
        else:
            self.typing.pushed(message)

    def account_changed(self, account: AccountInfo) -> None:
        self.account = account

    def connection_ended(self, connection: Connection) -> None:
        self._sender.detach()
        self._transfers.detach()
        self.receipts.detach()
        self.typing.detach()

    # == the cursor ======================================================================

    def _cursor_moved(self) -> None:
        """Save the cursor soon (one write per burst of messages, not one per message)."""
        if self._cursor_call is None:
            self._cursor_call = self._reactor.callLater(self._cursor_save_delay,
                                                        self._save_cursor)

    def _save_cursor(self) -> None:
        call, self._cursor_call = self._cursor_call, None
        if call is not None and call.active():
            call.cancel()
        if self._inbox is not None and self._inbox_owner is not None:
            self._saved.set_cursor(self.address, self._inbox_owner, self._inbox.last_id)

    def _log_refusal(self, failure: Failure, what: str) -> None:
        """For requests the client makes on its own: a refusal is worth a line, a lost
        connection not even that."""
        if not failure.check(NotConnected):
            self.log.warn("While {what}: {error}", what=what, error=describe(failure.value))
