"""The server's read markers, sent as the user reads: ``mark_read`` for each conversation
the user has seen, at most one request per conversation every `INTERVAL` seconds (each
is a database write on the server; the protocol asks clients to space them).

`ReadMarkers.want(key, up_to)` says "this chat is read up to that message". Each marker
also goes to the core's read receipts (the senders' ✓✓ read; the core batches them and
sends them only if the user lets it): the receipt moves the server's marker too, but
``mark_read`` is the one whose reply confirms it. The first
call for a chat is sent at once; later ones within the interval are merged into one,
sent when it ends. A marker that could not be sent (no connection) is kept and sent
again after the next login (`resend`); one the server refused (a group the user has
left, an account that is gone) is dropped. Until the server confirms it, a marker is
``pending``: the unread counts of a login do not overwrite what this computer knows
better. No Qt here.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from messenger.client.errors import NotConnected
from messenger.client.failures import describe
from messenger.client.ui.chat_state import group_id_of

INTERVAL = 3.0


class ReadMarkers:
    log = Logger()

    def __init__(self, client: Any, reactor: Any, interval: float = INTERVAL) -> None:
        self.client = client
        self.reactor = reactor
        self.interval = interval
        self.wanted: dict[str, int] = {}       # key -> up_to, not yet confirmed
        self.confirmed: dict[str, int] = {}    # key -> the server's marker
        self._sent_at: dict[str, float] = {}
        self._calls: dict[str, Any] = {}
        self._in_flight: set[str] = set()

    def pending(self, key: str) -> bool:
        return key in self.wanted

    def want(self, key: str, up_to: int) -> None:
        """The chat ``key`` ("@name" or "#group") is read up to message ``up_to``."""
        if up_to <= 0 or up_to <= max(self.confirmed.get(key, 0), self.wanted.get(key, 0)):
            return
        self.wanted[key] = up_to
        self._schedule(key)

    def resend(self) -> None:
        """After a login: send what could not be sent before."""
        for key in list(self.wanted):
            self._schedule(key)

    def flush(self) -> defer.Deferred[Any]:
        """Send every marker waiting for its interval now (before quitting)."""
        sends = []
        for key in list(self.wanted):
            call = self._calls.pop(key, None)
            if call is not None and call.active():
                call.cancel()
            if key not in self._in_flight:
                sends.append(self._send(key))
        return defer.DeferredList(sends, consumeErrors=True)

    def cancel(self) -> None:
        for call in self._calls.values():
            if call.active():
                call.cancel()
        self._calls = {}

    def _schedule(self, key: str) -> None:
        if key in self._calls or key in self._in_flight:
            return                       # the next send takes the newest value
        last = self._sent_at.get(key)
        delay = 0.0 if last is None else last + self.interval - self.reactor.seconds()
        if delay <= 0:
            self._send(key)
        else:
            self._calls[key] = self.reactor.callLater(delay, self._timer, key)

    def _timer(self, key: str) -> None:
        self._calls.pop(key, None)
        self._send(key)

    def _send(self, key: str) -> defer.Deferred[Any]:
        up_to = self.wanted.get(key)
        if up_to is None:
            return defer.succeed(None)
        group_id = group_id_of(key)
        self._sent_at[key] = self.reactor.seconds()
        self._in_flight.add(key)
        where = {"group_id": group_id} if group_id is not None else {"with_user": key[1:]}
        d = self.client.mark_read(up_to, **where)
        receipts = getattr(self.client, "receipts", None)
        if receipts is not None:
            receipts.read(up_to, **where)       # the others' ticks (batched by the core)
        d.addCallbacks(self._done, self._failed, callbackArgs=(key, up_to),
                       errbackArgs=(key, up_to))
        return d

    def _done(self, reply: dict[str, Any], key: str, up_to: int) -> None:
        self._in_flight.discard(key)
        marker = reply.get("read_up_to")
        marker = marker if type(marker) is int else up_to
        self.confirmed[key] = max(self.confirmed.get(key, 0), marker, up_to)
        if self.wanted.get(key, 0) <= up_to:
            self.wanted.pop(key, None)
        else:
            self._schedule(key)          # read further meanwhile

    def _failed(self, failure: Any, key: str, up_to: int) -> None:
        self._in_flight.discard(key)
        if failure.check(NotConnected):
            return                       # kept: sent again after the next login
        self.log.info("Read marker of {key} refused: {why}", key=key,
                      why=describe(failure.value))
        if self.wanted.get(key, 0) <= up_to:
            self.wanted.pop(key, None)
