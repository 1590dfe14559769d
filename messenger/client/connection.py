"""One connection to the server, from the TCP connect to its close: `Connection`.

A `Connection` is made for one attempt and never reused. It dials, runs the handshake
(`messenger.client.protocol`), logs in with its `LoginPlan`, syncs what arrived while
away (`messenger.client.inbox`), and then carries requests and pushes until it closes::

    CONNECTING --connected--> HANDSHAKING --established--> LOGGING_IN --accepted-->
    SYNCING --synced--> ONLINE;     any of these --lost / refused / abandon / close--> CLOSED

Every callback it hands out (the dial, the handshake, each reply, the watchdog timer)
feeds an input to its own machine (`messenger.client.machine`), and CLOSED has no row
for any of them: whatever arrives for a connection that has ended is dropped by the
table, so nothing here asks whether a callback is still current.

It reports to two owners: its *lifecycle* (`ConnectionService`: the phase, online, why
it closed) and the *account* (`MessengerClient`: the pinned key, the login reply, the
messages delivered, an account push, the end of the session). Request matching lives in
the protocol (`messenger.client.requests`), push dispatch in `messenger.client.pushes`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from messenger.client.errors import ConnectionFailed, NoResponse, NotConnected, ProtocolViolation
from messenger.client.events import AccountInfo, IncomingMessage, Observers, ServerLimits
from messenger.client.failures import connection_error, describe
from messenger.client.inbox import Inbox, valid_message
from messenger.client.known_servers import PinOutcome
from messenger.client.machine import Machine, rows
from messenger.client.plan import LoginPlan
from messenger.client.protocol import ClientProtocol
from messenger.client.pushes import PushDispatcher
from messenger.client.requests import Reply
from messenger.wire.errors import MessengerError
from messenger.wire.handshake import Established


class Phase(enum.Enum):
    CONNECTING = "connecting"      # the TCP (or TLS) connection is being made
    HANDSHAKING = "handshaking"    # HMAC challenge and key exchange
    LOGGING_IN = "logging_in"      # the login request is out
    SYNCING = "syncing"            # logged in; reading what arrived while away
    ONLINE = "online"              # logged in and caught up
    CLOSED = "closed"              # ended, for whatever reason: final


LIVE = (Phase.CONNECTING, Phase.HANDSHAKING, Phase.LOGGING_IN, Phase.SYNCING, Phase.ONLINE)
OPEN = (Phase.HANDSHAKING, Phase.LOGGING_IN, Phase.SYNCING, Phase.ONLINE)
LOGGED_IN = (Phase.SYNCING, Phase.ONLINE)

Dial = Callable[[Callable[[], ClientProtocol]], defer.Deferred]
NewProtocol = Callable[[Callable[[rsa.RSAPublicKey], None]], ClientProtocol]


class Lifecycle(Protocol):
    def connection_phase(self, phase: Phase) -> None: ...
    def connection_online(self) -> None: ...
    def connection_closed(self, error: MessengerError, during_login: bool) -> None: ...


class Account(Protocol):
    def check_server_key(self, key: rsa.RSAPublicKey) -> PinOutcome: ...
    def connection_established(self, established: Established,
                               pin: PinOutcome | None) -> None: ...
    def inbox_for(self, account_name: str) -> Inbox: ...
    def connection_logged_in(self, connection: Connection, reply: dict[str, Any],
                             account: AccountInfo) -> None: ...
    def connection_delivered(self, messages: list[IncomingMessage]) -> None: ...
    def account_changed(self, account: AccountInfo) -> None: ...
    def conversation_pushed(self, message: dict[str, Any]) -> None: ...
    def connection_ended(self, connection: Connection) -> None: ...
    def connection_file_data(self, plaintext: bytes) -> None: ...
    def connection_file_push(self, message: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Timeouts:
    handshake: float = 20.0     # the handshake must finish within this
    dead_after: float = 90.0    # a connection silent this long is dropped
    goodbye: float = 2.0        # wait this long for the answer to quit/logout
    sync_page: int = 200        # messages per sync request


class Connection:
    log = Logger()

    def __init__(self, lifecycle: Lifecycle, account: Account, plan: LoginPlan, dial: Dial,
                 new_protocol: NewProtocol, clock: Any, observers: Observers,
                 timeouts: Timeouts = Timeouts()) -> None:
        self._lifecycle = lifecycle
        self._account = account
        self._plan = plan
        self._dial = dial
        self._new_protocol = new_protocol
        self._clock = clock
        self._timeouts = timeouts
        self._machine: Machine[Phase] = Machine(self, Phase.CONNECTING, self._TABLE, observers)
        self._pushes = PushDispatcher(observers, self._deliver_pushed,
                                      account.account_changed, account.connection_file_push,
                                      account.conversation_pushed)
        self._dialing: defer.Deferred | None = None
        self._protocol: ClientProtocol | None = None
        self._watchdog: IDelayedCall | None = None
        self._pin: PinOutcome | None = None
        self._inbox: Inbox | None = None

    # == what the owners do ==============================================================

    @property
    def phase(self) -> Phase:
        return self._machine.state

    @property
    def plan(self) -> LoginPlan:
        return self._plan

    @property
    def protocol(self) -> ClientProtocol | None:
        return self._protocol

    def start(self) -> None:
        self._machine.feed("dial")

    def request(self, action: str, fields: dict[str, Any] | None = None,
                request_id: str | None = None) -> Reply:
        """A request of the logged-in session (`NotConnected` in any other phase)."""
        if self.phase not in LOGGED_IN or self._protocol is None:
            return defer.fail(NotConnected(f"not connected ({self.phase.value})"))
        return self._protocol.request(action, fields, request_id)

    def send_binary(self, plaintext: bytes) -> None:
        """A binary file frame of the logged-in session (`NotConnected` otherwise)."""
        if self.phase not in LOGGED_IN or self._protocol is None:
            raise NotConnected(f"not connected ({self.phase.value})")
        self._protocol.send_binary(plaintext)

    def drop(self, cause: MessengerError) -> None:
        """Abort the connection with ``cause`` as the reason it closed."""
        self._machine.feed("drop", cause)

    def abandon(self) -> None:
        """End it without a word to the server or to the lifecycle (a new attempt or a
        stop replaces it)."""
        self._machine.feed("abandon")

    def close(self, action: str) -> defer.Deferred[Any]:
        """Say ``action`` (``quit`` or ``logout``) if a session is up, then close; fires
        once closed. The lifecycle hears nothing: its owner asked for this."""
        self._machine.feed("close", action)
        return self._protocol.when_closed() if self._protocol is not None else defer.succeed(None)

    def limit(self, limits: ServerLimits) -> None:
        """Refuse requests whose frame the server would refuse (its ``max_frame``)."""
        if self._protocol is not None:
            self._protocol.max_send = limits.max_frame

    # == outputs =========================================================================

    def _dial_server(self) -> None:
        self._lifecycle.connection_phase(Phase.CONNECTING)
        try:
            self._dialing = self._dial(self._build)
        except Exception as error:          # e.g. TLS settings that cannot be used
            self._dialing = defer.fail(error)
        self._dialing.addCallbacks(self._machine.on("connected"),
                                   self._machine.on("dial_failed"))

    def _build(self) -> ClientProtocol:
        return self._new_protocol(self._machine.on("key"))

    def _attach(self, protocol: ClientProtocol) -> None:
        self._dialing = None
        self._protocol = protocol
        protocol.on_push = self._machine.on("push")
        protocol.on_orphan_reply = self._pushes.orphan_reply
        protocol.on_binary = self._machine.on("binary")
        protocol.when_closed().addCallback(self._machine.on("lost"))
        protocol.established.addCallbacks(self._machine.on("established"), lambda _: None)
        self._arm_watchdog(self._timeouts.handshake)
        self._lifecycle.connection_phase(Phase.HANDSHAKING)

    def _check_key(self, key: rsa.RSAPublicKey) -> None:
        """The handshake's pinning hook (the signature has verified); raising refuses."""
        self._pin = self._account.check_server_key(key)

    def _send_login(self, established: Established) -> None:
        self._account.connection_established(established, self._pin)
        self._lifecycle.connection_phase(Phase.LOGGING_IN)
        self._arm_watchdog(self._timeouts.dead_after)
        self._inbox = self._account.inbox_for(self._plan.account_name)
        self._inbox.begin_sync()            # hold msg pushes until the sync has read
        action, fields = self._plan.request()
        assert self._protocol is not None
        d = self._protocol.request(action, fields)
        d.addCallbacks(self._login_answered, self._machine.on("refused"))

    def _login_answered(self, reply: dict[str, Any]) -> None:
        try:
            account = AccountInfo.from_jim(reply["user"])
        except (KeyError, TypeError, AttributeError):
            self.drop(ProtocolViolation("the server's login reply has no valid 'user'"))
            return
        self._machine.feed("accepted", reply, account)

    def _begin_sync(self, reply: dict[str, Any], account: AccountInfo) -> None:
        self._lifecycle.connection_phase(Phase.SYNCING)
        self._account.connection_logged_in(self, reply, account)
        self._next_page()

    def _next_page(self) -> None:
        assert self._inbox is not None and self._protocol is not None
        d = self._protocol.request("sync", {"since": self._inbox.last_id,
                                            "limit": self._timeouts.sync_page})
        d.addCallbacks(self._machine.on("page"), self._machine.on("sync_failed"))

    def _take_page(self, reply: dict[str, Any]) -> None:
        inbox = self._inbox
        assert inbox is not None
        raw = reply.get("alert")
        before = inbox.last_id
        messages = [m for m in raw if valid_message(m)] if isinstance(raw, list) else []
        self._account.connection_delivered(inbox.sync_page(messages))
        if reply.get("more") is True and inbox.last_id > before:
            self._next_page()               # (a "more" that brings nothing new ends it)
            return
        late = inbox.end_sync()
        if late is None:                    # pushes overflowed the buffer: read them
            self._next_page()
            return
        self._account.connection_delivered(late)
        self._machine.feed("synced")

    def _go_online(self) -> None:
        self._lifecycle.connection_phase(Phase.ONLINE)
        self._lifecycle.connection_online()

    def _sync_failed(self, error: BaseException) -> None:
        reason = describe(_value(error))
        self.log.warn("Sync failed: {error}; reconnecting", error=reason)
        self._abort(ConnectionFailed(f"sync failed: {reason}"))

    def _dispatch(self, message: dict[str, Any]) -> None:
        self._pushes(message)

    def _file_data(self, plaintext: bytes) -> None:
        self._account.connection_file_data(plaintext)

    def _deliver_pushed(self, message: dict[str, Any]) -> None:
        """A ``msg`` push: delivered unless seen already (or held while syncing)."""
        inbox = self._inbox
        if inbox is None or not valid_message(message):
            self.log.warn("Ignoring a malformed or unexpected msg push")
            return
        incoming = inbox.push(message)
        if incoming is not None:
            self._account.connection_delivered([incoming])

    def _abort(self, cause: MessengerError) -> None:
        if self._protocol is not None:
            self._protocol.abort(cause)

    def _arm_watchdog(self, limit: float) -> None:
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self._watchdog = self._clock.callLater(limit, self._machine.on("watchdog"), limit)

    def _check_alive(self, limit: float) -> None:
        """Drop a connection that has been silent for ``limit`` seconds."""
        assert self._protocol is not None
        idle = self._clock.seconds() - self._protocol.last_received
        if idle >= limit:
            self._abort(NoResponse(f"no data from the server for {idle:.0f} s"))
        else:
            self._watchdog = self._clock.callLater(limit - idle, self._machine.on("watchdog"),
                                                   limit)

    def _end(self) -> None:
        """Whatever the way out: no timer, no dial, no sync, no session left behind."""
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self._watchdog = None
        dialing, self._dialing = self._dialing, None
        if dialing is not None:
            dialing.cancel()
        if self._inbox is not None:
            self._inbox.abort_sync()
        self._account.connection_ended(self)

    def _dial_failed(self, error: BaseException) -> None:
        self._end()
        self._lifecycle.connection_closed(connection_error(_value(error), connecting=True),
                                          during_login=False)

    def _lost(self, cause: BaseException) -> None:
        self._end()
        self._lifecycle.connection_closed(connection_error(cause), during_login=False)

    def _refused(self, error: BaseException) -> None:
        self._end()
        self._say_goodbye("quit")
        self._lifecycle.connection_closed(connection_error(_value(error)), during_login=True)

    def _shut(self) -> None:
        self._end()
        self._abort(NotConnected("the connection is no longer wanted"))

    def _goodbye(self, action: str) -> None:
        self._end()
        self._say_goodbye(action)

    def _say_goodbye(self, action: str) -> None:
        """Say ``action`` and close (abort if the server does not answer in time)."""
        protocol = self._protocol
        if protocol is None:
            return
        if not protocol.ready:
            protocol.close()
            return
        protocol.request(action).addBoth(lambda _: protocol.close())
        timer = self._clock.callLater(self._timeouts.goodbye, protocol.abort,
                                      NoResponse(f"no answer to {action}"))
        protocol.when_closed().addBoth(_cancelling(timer))

    # == the table =======================================================================

    _TABLE = {
        (Phase.CONNECTING, "dial"): (Phase.CONNECTING, _dial_server),
        (Phase.CONNECTING, "connected"): (Phase.HANDSHAKING, _attach),
        (Phase.CONNECTING, "dial_failed"): (Phase.CLOSED, _dial_failed),
        (Phase.HANDSHAKING, "key"): (Phase.HANDSHAKING, _check_key),
        (Phase.HANDSHAKING, "established"): (Phase.LOGGING_IN, _send_login),
        (Phase.LOGGING_IN, "refused"): (Phase.CLOSED, _refused),
        (Phase.LOGGING_IN, "accepted"): (Phase.SYNCING, _begin_sync),
        (Phase.SYNCING, "page"): (Phase.SYNCING, _take_page),
        (Phase.SYNCING, "sync_failed"): (Phase.SYNCING, _sync_failed),
        (Phase.SYNCING, "synced"): (Phase.ONLINE, _go_online),
        **rows((Phase.LOGGING_IN, *LOGGED_IN), "push", _dispatch),
        **rows(LOGGED_IN, "binary", _file_data),
        **rows(OPEN, "watchdog", _check_alive),
        **rows(OPEN, "drop", _abort),
        **rows(OPEN, "lost", _lost, to=Phase.CLOSED),
        **rows(LIVE, "abandon", _shut, to=Phase.CLOSED),
        **rows(LIVE, "close", _goodbye, to=Phase.CLOSED),
    }


def _value(error: Any) -> BaseException:
    """The exception of a Failure (or the exception itself)."""
    return getattr(error, "value", error)


def _cancelling(timer: IDelayedCall) -> Callable[[Any], Any]:
    def cancel(result: Any) -> Any:
        if timer.active():
            timer.cancel()
        return result
    return cancel
