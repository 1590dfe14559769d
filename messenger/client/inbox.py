"""Incoming messages (direct and group, one sequence): each delivered once, in order, live
pushes and sync merged.

The server numbers messages in commit order (``msg_id`` only grows), pushes a message to
its recipient after the commit, and answers ``sync`` with everything above an id. So a
client that remembers the highest id it delivered (``last_id``) can drop every message at
or below it as a duplicate, and nothing is lost if, after each (re)login:

1. it starts buffering pushes (`begin_sync`): the session is attached, so anything
   committed from now on is pushed;
2. it syncs page by page from ``last_id``, delivering each page in order (`sync_page`);
   a push committed before a page was read is in that page as well, one committed after
   has a higher id than the page;
3. it delivers the buffered pushes, sorted, above ``last_id`` (`end_sync`).

A connection lost during a sync drops the buffer (`abort_sync`): the next sync reads the
same messages from the database. The buffer holds at most ``max_buffered`` pushes: a
server that pushes more during one sync makes the inbox drop them and ask for one more
sync round (`end_sync` returns None), which reads them from the database instead, so a
misbehaving server cannot grow the client's memory and nothing is lost. Pure bookkeeping:
no I/O.
"""

from __future__ import annotations

from typing import Any

from messenger.client.events import IncomingMessage

MAX_BUFFERED = 10_000


class Inbox:
    __slots__ = ("last_id", "max_buffered", "_buffer", "_overflowed")

    def __init__(self, last_id: int = 0, max_buffered: int = MAX_BUFFERED) -> None:
        self.last_id = last_id
        self.max_buffered = max_buffered
        self._buffer: list[dict[str, Any]] | None = None  # None: not syncing
        self._overflowed = False

    @property
    def syncing(self) -> bool:
        return self._buffer is not None

    def push(self, message: dict[str, Any]) -> IncomingMessage | None:
        """A ``msg`` push: the message to deliver now, or None (duplicate or buffered)."""
        buffer = self._buffer
        if buffer is not None:
            if self._overflowed or len(buffer) >= self.max_buffered:
                buffer.clear()              # the next sync round reads them instead
                self._overflowed = True
            else:
                buffer.append(message)
            return None
        msg_id = message["msg_id"]
        if msg_id <= self.last_id:
            return None
        self.last_id = msg_id
        return IncomingMessage.from_jim(message)

    def begin_sync(self) -> None:
        self._buffer = []
        self._overflowed = False

    def sync_page(self, messages: list[dict[str, Any]]) -> list[IncomingMessage]:
        """One page of a ``sync`` reply (oldest first): the new ones, in order."""
        out = []
        last = self.last_id
        for message in sorted(messages, key=_msg_id):
            if message["msg_id"] > last:
                last = message["msg_id"]
                out.append(IncomingMessage.from_jim(message, from_sync=True))
        self.last_id = last
        return out

    def end_sync(self) -> list[IncomingMessage] | None:
        """The sync is complete: the buffered pushes that are new, in order; or None when
        the buffer overflowed: sync once more (still buffering) and end again."""
        if self._overflowed:
            self.begin_sync()
            return None
        buffered, self._buffer = self._buffer or [], None
        out = []
        last = self.last_id
        for message in sorted(buffered, key=_msg_id):
            if message["msg_id"] > last:
                last = message["msg_id"]
                out.append(IncomingMessage.from_jim(message))
        self.last_id = last
        return out

    def abort_sync(self) -> None:
        self._buffer = None
        self._overflowed = False


def _msg_id(message: dict[str, Any]) -> int:
    return message["msg_id"]


def valid_message(message: Any) -> bool:
    """Whether a ``msg`` push or sync entry has the fields the inbox relies on: a direct
    message names its recipient (``to``), a group message its group (and may list
    ``mentions``)."""
    if not (type(message) is dict and type(message.get("msg_id")) is int
            and isinstance(message.get("time"), (int, float))
            and type(message.get("from")) is str and type(message.get("message")) is str):
        return False
    if type(message.get("to")) is str:
        return True
    mentions = message.get("mentions", [])
    return (type(message.get("group")) is int and type(mentions) is list
            and all(type(name) is str for name in mentions))
