"""Own messages until the server has acknowledged them: the outbox.

Every message gets its request id when it is written, and keeps it: it is sent with that
id, and sent again with the same id on every new session until a reply says it was stored
(``msg_id``) or refused. The server stores a repeated (sender, id) once and acknowledges
it with the first copy, so a message whose acknowledgement was lost with the connection
is stored exactly once however often it is resent (the pattern of magic-wormhole's
mailbox and Synapse's transaction ids).

Order. Messages to one recipient (or one group) are sent in the order they were written.
The first message to a recipient on a connection travels alone, and the rest of that
recipient's queue follows once it is acknowledged: the server resolves an unknown
recipient name with a database read, and several reads in flight could finish in any
order; after the first acknowledgement the name is cached and the server queues the rest
in arrival order. A group is named by its id, which needs no lookup: its messages go out
pipelined from the first.
At most ``window`` messages are in flight at once.

This module is pure bookkeeping: no transport, no clock of its own. The client core asks
`Outbox.due` what to send, and reports replies and lost connections back.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

PENDING = "pending"   # not yet acknowledged (queued, in flight, or waiting to be resent)
ACKED = "acked"       # stored by the server: ``msg_id`` and ``time`` are set
FAILED = "failed"     # refused by the server for good (no such user, too large, ...)


class OutgoingMessage:
    """One own message and what became of it."""

    __slots__ = ("request_id", "to", "group", "text", "created", "status", "msg_id", "time",
                 "error", "attempts", "in_flight", "not_before", "_waiters", "_key",
                 "attachment", "reply_to")

    def __init__(self, request_id: str, to: str | None, text: str, created: float,
                 group: int | None = None, attachment: dict[str, Any] | None = None) -> None:
        self.request_id = request_id
        self.to = to                        # the recipient of a direct message, else None
        self.group = group                  # the group of a group message, else None
        self.text = text
        self.attachment = attachment        # the file it carries (``msg``'s attachment)
        self.created = created
        self.status = PENDING
        self.msg_id: int | None = None
        self.time: float | None = None
        self.error: BaseException | None = None
        self.attempts = 0                   # how many times it was sent
        self.in_flight = False
        self.not_before = 0.0               # clock time before which it is not resent
        self.reply_to: int | None = None    # the msg_id it quotes (a reply), else None
        self._waiters: list[defer.Deferred[dict[str, Any]]] = []
        # Account names compare without case; a group is its own queue.
        self._key = to.lower() if to is not None else f"#{group}"

    def when_done(self) -> defer.Deferred[dict[str, Any]]:
        """A Deferred firing with the server's acknowledgement (``msg_id``, ``time``), or
        failing with the refusal; at once if that is already known."""
        if self.status == ACKED:
            return defer.succeed({"response": 200, "msg_id": self.msg_id, "time": self.time})
        if self.status == FAILED:
            assert self.error is not None
            return defer.fail(self.error)
        waiter: defer.Deferred[dict[str, Any]] = defer.Deferred()
        self._waiters.append(waiter)
        return waiter

    def notify(self, reply: dict[str, Any] | None = None) -> None:
        """Fire the waiters once the status is final (the core calls this)."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if self.status == ACKED:
                waiter.callback(reply if reply is not None else
                                {"response": 200, "msg_id": self.msg_id, "time": self.time})
            else:
                waiter.errback(self.error)

    def __repr__(self) -> str:
        return (f"<OutgoingMessage {self.request_id[:8]} to"
                f" {self.to if self.group is None else f'group {self.group}'} {self.status}"
                f"{f' #{self.msg_id}' if self.msg_id is not None else ''}>")


class Outbox:
    """The unacknowledged messages, oldest first."""

    def __init__(self, window: int = 64) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window
        self._entries: dict[str, OutgoingMessage] = {}  # request id -> entry, in order
        self._warm: set[str] = set()   # recipients acknowledged on this connection
        self._in_flight = 0

    def __len__(self) -> int:
        return len(self._entries)

    def pending(self) -> list[OutgoingMessage]:
        """Every unacknowledged message, oldest first."""
        return list(self._entries.values())

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def add(self, to: str | None, text: str, request_id: str, now: float,
            group: int | None = None,
            attachment: dict[str, Any] | None = None) -> OutgoingMessage:
        if request_id in self._entries:
            raise ValueError("request id already in the outbox")
        entry = OutgoingMessage(request_id, to, text, now, group, attachment)
        self._entries[request_id] = entry
        if group is not None:
            self._warm.add(entry._key)  # a group id needs no name lookup: pipeline at once
        return entry

    def due(self, now: float) -> list[OutgoingMessage]:
        """The messages to send now (marked in flight), in order."""
        out: list[OutgoingMessage] = []
        if self._in_flight >= self.window:
            return out
        warm = self._warm
        blocked: set[str] = set()
        for entry in self._entries.values():
            key = entry._key
            if entry.in_flight:
                if key not in warm:
                    blocked.add(key)
                continue
            if key in blocked:
                continue
            if entry.not_before > now:
                blocked.add(key)            # keep the recipient's order: wait for this one
                continue
            entry.in_flight = True
            entry.attempts += 1
            self._in_flight += 1
            out.append(entry)
            if key not in warm:
                blocked.add(key)
            if self._in_flight >= self.window:
                break
        return out

    def next_wakeup(self) -> float | None:
        """The earliest ``not_before`` of a message held back, if any."""
        times = [e.not_before for e in self._entries.values()
                 if not e.in_flight and e.not_before]
        return min(times) if times else None

    def acked(self, entry: OutgoingMessage, msg_id: int, time: float) -> None:
        """The server stored it."""
        self._settle(entry)
        entry.status = ACKED
        entry.msg_id = msg_id
        entry.time = time
        self._warm.add(entry._key)

    def failed(self, entry: OutgoingMessage, error: BaseException) -> None:
        """The server refused it for good."""
        self._settle(entry)
        entry.status = FAILED
        entry.error = error

    def retry(self, entry: OutgoingMessage, not_before: float = 0.0,
              new_request_id: str | None = None) -> None:
        """Send it again later; with a new id only when the server did nothing with the
        old one (a 429 says so) but will refuse the old id on this session."""
        if entry.in_flight:
            entry.in_flight = False
            self._in_flight -= 1
        entry.not_before = not_before
        if new_request_id is not None and entry.request_id in self._entries:
            # Rebuild the order with the new key in the old place.
            entries = self._entries
            self._entries = {(new_request_id if rid == entry.request_id else rid): e
                             for rid, e in entries.items()}
            entry.request_id = new_request_id

    def connection_lost(self) -> None:
        """Everything in flight is pending again; the next session starts cold (but for
        groups, which never need a lookup)."""
        for entry in self._entries.values():
            entry.in_flight = False
        self._in_flight = 0
        self._warm = {key for key in self._warm if key.startswith("#")}

    def drain(self) -> list[OutgoingMessage]:
        """Remove and return every unacknowledged message (logout)."""
        entries = list(self._entries.values())
        self._entries.clear()
        self._in_flight = 0
        self._warm.clear()
        return entries

    def _settle(self, entry: OutgoingMessage) -> None:
        if self._entries.pop(entry.request_id, None) is not None and entry.in_flight:
            self._in_flight -= 1
        entry.in_flight = False
