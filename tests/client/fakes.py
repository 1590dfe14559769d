"""Stand-ins for the network under the client core: a scripted dial (`FakeNetwork`) and
a `FakeProtocol` in place of `ClientProtocol` (no sockets, no crypto, a task.Clock).

Each connection attempt waits until the test accepts or refuses it. A `FakeProtocol`
records the requests the client sends and lets the test answer them (an error reply
becomes the typed error `ClientProtocol` would give), push, or drop the connection; like
the server, it answers ``quit`` and ``logout`` and closes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, task
from twisted.internet.error import (
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    TCPTimedOutError,
)

from messenger.client.errors import NotConnected
from messenger.client.failures import reply_error
from messenger.client.requests import new_request_id
from messenger.wire.errors import MessengerError


@dataclass
class Request:
    action: str
    fields: dict[str, Any]
    id: str
    deferred: defer.Deferred
    answered: bool = False


class _Established:
    server_fingerprint = "sha256:" + "ab" * 32


class FakeProtocol:
    def __init__(self, clock: task.Clock) -> None:
        self.clock = clock
        self.established: defer.Deferred = defer.Deferred()
        self.on_push: Any = None
        self.on_orphan_reply: Any = None
        self.last_received = clock.seconds()
        self.requests: list[Request] = []
        self.ready = False
        self.open = True
        self.close_reason: BaseException | None = None
        self.aborted: BaseException | None = None
        self._close_waiters: list[defer.Deferred] = []

    # -- the ClientProtocol interface the core uses ---------------------------------------

    def request(self, action: str, fields: dict[str, Any] | None = None,
                request_id: str | None = None) -> defer.Deferred:
        if not self.ready:
            return defer.fail(NotConnected("not connected"))
        d: defer.Deferred = defer.Deferred()
        self.requests.append(Request(action, dict(fields or {}),
                                     request_id or new_request_id(), d))
        if action in ("quit", "logout"):
            self.answer(self.requests[-1], response=200)
            self.lose(ConnectionDone())
        return d

    def when_closed(self) -> defer.Deferred:
        if self.close_reason is not None:
            return defer.succeed(self.close_reason)
        d: defer.Deferred = defer.Deferred()
        self._close_waiters.append(d)
        return d

    def close(self) -> None:
        self.lose(ConnectionDone())

    def abort(self, cause: BaseException) -> None:
        self.aborted = cause
        self.lose(cause)

    # -- driving it -----------------------------------------------------------------------

    def establish(self) -> None:
        self.ready = True
        self.established.callback(_Established())

    def lose(self, cause: BaseException | None = None) -> None:
        if not self.open:
            return
        self.open = self.ready = False
        cause = cause or ConnectionLost()
        if not self.established.called:
            self.established.errback(cause)
        self.close_reason = cause
        waiters, self._close_waiters = self._close_waiters, []
        for waiter in waiters:               # as ClientProtocol: the close comes first
            waiter.callback(cause)
        for request in self.requests:
            if not request.answered:
                request.answered = True
                request.deferred.errback(NotConnected("lost"))

    def pending(self, action: str | None = None) -> list[Request]:
        return [r for r in self.requests
                if not r.answered and (action is None or r.action == action)]

    def take(self, action: str) -> Request:
        found = self.pending(action)
        assert found, f"no pending {action!r}; sent: {[r.action for r in self.requests]}"
        return found[0]

    def answer(self, request: Request, **reply: Any) -> None:
        request.answered = True
        reply.setdefault("id", request.id)
        reply.setdefault("time", self.clock.seconds())
        self.last_received = self.clock.seconds()
        request.deferred.callback(reply)

    def refuse(self, request: Request, error: MessengerError) -> None:
        """Answer with the error reply of ``error``: the client gets what
        `ClientProtocol` would give it, the typed error of the action and code."""
        request.answered = True
        self.last_received = self.clock.seconds()
        request.deferred.errback(reply_error(request.action, error.to_reply()))

    def push(self, message: dict[str, Any]) -> None:
        message.setdefault("time", self.clock.seconds())
        self.last_received = self.clock.seconds()
        self.on_push(message)


class FakeNetwork:
    def __init__(self, clock: task.Clock) -> None:
        self.clock = clock
        self.attempts: list[defer.Deferred] = []
        self.connections: list[FakeProtocol] = []

    def connect(self, build: Any) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self.attempts.append(d)
        return d

    @property
    def waiting(self) -> bool:
        return bool(self.attempts) and not self.attempts[-1].called

    def accept(self) -> FakeProtocol:
        assert self.waiting, "no connection attempt is waiting"
        connection = FakeProtocol(self.clock)
        self.connections.append(connection)
        self.attempts[-1].callback(connection)
        return connection

    def refuse(self) -> None:
        assert self.waiting, "no connection attempt is waiting"
        self.attempts[-1].errback(ConnectionRefusedError())

    def time_out(self) -> None:
        assert self.waiting, "no connection attempt is waiting"
        self.attempts[-1].errback(TCPTimedOutError())
