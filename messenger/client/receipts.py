"""Delivered and read receipts in the client core: the ones it sends, batched, and the
ones it keeps of others, for the ticks of the user's own messages.

Sending. Every message delivered to the observers queues a ``delivered`` receipt for its
conversation; `Receipts.read` queues a ``read`` one (the user opened the conversation up
to a message). Nothing goes out at once: after `FLUSH_DELAY` seconds one ``receipt``
request per conversation carries the highest id of each kind (a read implies delivery,
so a read at or above the delivered id replaces it). Receipts wait for the next session
while offline, and one refused is dropped (the server changed nothing).

Keeping. The others' receipts come as ``receipt`` pushes and, after each login, as the
pages of ``sync_receipts`` since the last change this client has seen (its cursor, kept
for the life of the client: a new program reads every receipt about its conversations
once, which is what it needs to show ticks on old messages; only when something
subscribes to ``receipt``, as the unread counts are read only for ``unread``, or calls
`Receipts.sync`). `ReceiptBook` keeps, per
conversation and reader, the highest ``delivered_up_to`` and ``read_up_to``; an own
message is *delivered* (*read*) when its id is at most that value. Observers of
``receipt`` hear each change as a `ReceiptUpdate`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from messenger.client.errors import NotConnected
from messenger.client.events import IncomingMessage, Observers
from messenger.client.failures import describe

if TYPE_CHECKING:
    from messenger.client.connection import Connection

FLUSH_DELAY = 1.0       # seconds a receipt waits for others of its conversation
SYNC_PAGE = 500         # receipts per sync_receipts request
SENT, DELIVERED, READ = "sent", "delivered", "read"

# A conversation: ("with", lower-case account name) or ("group", group id).
Conversation = tuple[str, Any]


def conversation(with_user: str | None = None, group_id: int | None = None) -> Conversation:
    if (with_user is None) == (group_id is None):
        raise ValueError("give with_user or group_id")
    return ("group", group_id) if group_id is not None else ("with", with_user.lower())  # type: ignore[union-attr]


@dataclass(frozen=True, slots=True)
class ReceiptUpdate:
    """How far ``reader`` has received and read the conversation: the direct one with
    ``reader`` (``group`` None) or the group ``group``. Own messages with an id up to
    ``delivered_up_to`` are delivered to the reader, up to ``read_up_to`` read."""

    reader: str
    group: int | None
    delivered_up_to: int
    read_up_to: int

    @classmethod
    def from_jim(cls, item: dict[str, Any]) -> ReceiptUpdate:
        group, delivered, read = item.get("group"), item["delivered_up_to"], item["read_up_to"]
        if type(delivered) is not int or type(read) is not int or not (
                group is None or type(group) is int):
            raise TypeError("malformed receipt")
        return cls(str(item["reader"]), group, delivered, read)


class ReceiptBook:
    """The others' receipts, merged (values only grow)."""

    def __init__(self) -> None:
        self._by_conversation: dict[Conversation, dict[str, tuple[str, int, int]]] = {}

    def merge(self, update: ReceiptUpdate) -> bool:
        """Take ``update`` in; True if it moved anything."""
        key = (conversation(update.reader) if update.group is None
               else conversation(group_id=update.group))
        readers = self._by_conversation.setdefault(key, {})
        name, delivered, read = readers.get(update.reader.lower(), (update.reader, 0, 0))
        new = (update.reader, max(delivered, update.delivered_up_to),
               max(read, update.read_up_to))
        if new[1:] == (delivered, read):
            return False
        readers[update.reader.lower()] = new
        return True

    def status(self, msg_id: int, to: str | None = None, group: int | None = None) -> str:
        """``read``, ``delivered`` or ``sent`` for an own message (stored: it has an id):
        in a group, read or delivered as soon as one member has."""
        readers = self._by_conversation.get(conversation(to, group), {})
        if any(read >= msg_id for _, _, read in readers.values()):
            return READ
        if any(delivered >= msg_id for _, delivered, _ in readers.values()):
            return DELIVERED
        return SENT

    def readers(self, group: int, msg_id: int) -> list[str]:
        """The members who have read a group message (names as registered, sorted)."""
        readers = self._by_conversation.get(conversation(group_id=group), {})
        return sorted((name for name, _, read in readers.values() if read >= msg_id),
                      key=str.lower)

    def delivered_to(self, group: int, msg_id: int) -> list[str]:
        """The members whose client has a group message."""
        readers = self._by_conversation.get(conversation(group_id=group), {})
        return sorted((name for name, delivered, _ in readers.values()
                       if delivered >= msg_id), key=str.lower)


class Receipts:
    """The client core's receipts: `read` and the automatic delivered receipts out,
    batched; the others' receipts in (`book`), with the ``receipt`` observers told."""

    log = Logger()

    def __init__(self, observers: Observers, clock: Any, delay: float = FLUSH_DELAY) -> None:
        self.book = ReceiptBook()
        self.cursor = 0                     # the highest seq of sync_receipts read
        self.send_delivered = True          # tell senders their messages arrived
        self._observers = observers
        self._clock = clock
        self._delay = delay
        self._connection: Connection | None = None
        self._timer: IDelayedCall | None = None
        # conversation -> [highest delivered, highest read] not yet sent
        self._due: dict[Conversation, list[int]] = {}

    # -- public ---------------------------------------------------------------------------

    def read(self, up_to: int, with_user: str | None = None,
             group_id: int | None = None) -> None:
        """The user has read the conversation up to message ``up_to`` (an id of that
        conversation): a ``read`` receipt goes out soon, batched with others. It moves
        the user's own read marker too (unread counts); whether the others see it is
        the user's setting (`MessengerClient.set_read_receipts`)."""
        self._queue(conversation(with_user, group_id), READ, up_to)

    def status(self, msg_id: int, to: str | None = None, group: int | None = None) -> str:
        return self.book.status(msg_id, to, group)

    def flush(self) -> defer.Deferred[None]:
        """Send what is due now (the timer does this by itself); fires once the server
        has answered each (a refusal is logged, not raised)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        connection = self._connection
        if connection is None:
            return defer.succeed(None)
        due, self._due = self._due, {}
        sent = []
        for key, (delivered, read) in due.items():
            if read:                        # a read implies delivery up to it
                sent.append(self._send(connection, key, READ, read))
            if delivered > read:
                sent.append(self._send(connection, key, DELIVERED, delivered))
        return defer.gatherResults(sent).addCallback(lambda _: None)

    # -- the core's hooks -----------------------------------------------------------------

    def delivered(self, messages: Iterable[IncomingMessage]) -> None:
        """Messages reached the observers: their conversations are delivered up to them."""
        if not self.send_delivered:
            return
        for message in messages:
            if message.group is not None:
                self._queue(conversation(group_id=message.group), DELIVERED, message.msg_id)
            elif (message.recipient or "").lower() != message.sender.lower():  # not to self
                self._queue(conversation(message.sender), DELIVERED, message.msg_id)

    def attach(self, connection: Connection) -> None:
        """Logged in: read what changed while away (when someone listens to
        ``receipt``: a front end that shows ticks), and send what waited."""
        self._connection = connection
        if self._observers.wanted("receipt"):
            self.sync().addErrback(self._sync_failed)
        if self._due:
            self._arm()

    def detach(self) -> None:
        self._connection = None
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def pushed(self, message: dict[str, Any]) -> None:
        """A ``receipt`` push."""
        self._take(ReceiptUpdate.from_jim(message))

    # -- inside ---------------------------------------------------------------------------

    def _queue(self, key: Conversation, kind: str, up_to: int) -> None:
        entry = self._due.setdefault(key, [0, 0])
        position = 0 if kind == DELIVERED else 1
        entry[position] = max(entry[position], up_to)
        if self._connection is not None:
            self._arm()

    def _arm(self) -> None:
        if self._timer is None or not self._timer.active():
            self._timer = self._clock.callLater(self._delay, self.flush)

    def _send(self, connection: Connection, key: Conversation, kind: str,
              up_to: int) -> defer.Deferred[Any]:
        fields: dict[str, Any] = {"kind": kind, "up_to": up_to,
                                  ("with" if key[0] == "with" else "group"): key[1]}
        d = connection.request("receipt", fields)
        d.addErrback(self._refused, key, kind, up_to)
        return d

    def _refused(self, failure: Failure, key: Conversation, kind: str, up_to: int) -> None:
        if failure.check(NotConnected):
            self._queue(key, kind, up_to)   # waits for the next session
            return
        self.log.warn("A {kind} receipt was refused: {error}", kind=kind,
                      error=describe(failure.value))

    def sync(self) -> defer.Deferred[None]:
        """Read every receipt that changed since the cursor (page by page); fires once
        the book is up to date. Fails with `NotConnected` when offline."""
        connection = self._connection
        if connection is None:
            return defer.fail(NotConnected("not connected"))
        done: defer.Deferred[None] = defer.Deferred()
        self._sync(connection, done)
        return done

    def _sync(self, connection: Connection, done: defer.Deferred[None]) -> None:
        d = connection.request("sync_receipts", {"since": self.cursor, "limit": SYNC_PAGE})
        d.addCallback(self._page, connection, done)
        d.addErrback(done.errback)

    def _page(self, reply: dict[str, Any], connection: Connection,
              done: defer.Deferred[None]) -> None:
        items = reply.get("alert")
        last = self.cursor
        for item in items if isinstance(items, list) else ():
            try:
                update = ReceiptUpdate.from_jim(item)
                seq = item["seq"]
            except (KeyError, TypeError, ValueError, AttributeError):
                self.log.warn("Ignoring a malformed receipt in sync_receipts")
                continue
            self._take(update)
            if type(seq) is int:
                last = max(last, seq)
        moved = last > self.cursor
        self.cursor = last
        if reply.get("more") is True and moved and connection is self._connection:
            self._sync(connection, done)
        else:
            done.callback(None)

    def _sync_failed(self, failure: Failure) -> None:
        if not failure.check(NotConnected):
            self.log.warn("Could not read the receipts: {error}", error=describe(failure.value))

    def _take(self, update: ReceiptUpdate) -> None:
        if self.book.merge(update):
            self._observers.emit("receipt", update)

