"""Typing notifications in the client core: sent at most every few seconds, expired by
the receiver.

`Typing.typing` is what a front end calls on every keystroke in a conversation's
composer; a ``typing`` request goes out at most once per `SEND_INTERVAL` seconds per
conversation, and only while online (typing while offline means nothing later). The
server stores nothing and relays it (docs/PROTOCOL.md, "Typing").

On the receiving side nobody says "stopped": a typist is shown for `EXPIRES` seconds
after its latest notice (a little more than two send intervals, so one lost notice does
not make it flicker), and at once no longer when its message arrives or the connection
ends. Observers of ``typing`` hear a `TypingEvent` when someone starts (``active``) and
when they stop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from messenger.client.errors import NotConnected
from messenger.client.events import IncomingMessage, Observers
from messenger.client.failures import describe
from messenger.client.receipts import Conversation, conversation

if TYPE_CHECKING:
    from messenger.client.connection import Connection

SEND_INTERVAL = 3.0
EXPIRES = 7.0


@dataclass(frozen=True, slots=True)
class TypingEvent:
    """``sender`` is typing (``active``) or no longer, in the direct conversation with
    them (``group`` None) or in ``group``."""

    sender: str
    group: int | None
    active: bool


class Typing:
    log = Logger()

    def __init__(self, observers: Observers, clock: Any, interval: float = SEND_INTERVAL,
                 expires: float = EXPIRES) -> None:
        self._observers = observers
        self._clock = clock
        self._interval = interval
        self._expires = expires
        self._connection: Connection | None = None
        self._sent: dict[Conversation, float] = {}
        self._typists: dict[tuple[Conversation, str], tuple[TypingEvent, IDelayedCall]] = {}

    # -- sending --------------------------------------------------------------------------

    def typing(self, to: str | None = None, group: int | None = None) -> bool:
        """The user typed in this conversation; True if a notice went out now."""
        key = conversation(to, group)
        now = self._clock.seconds()
        connection = self._connection
        if connection is None or now - self._sent.get(key, -self._interval) < self._interval:
            return False
        self._sent[key] = now
        fields: dict[str, Any] = {"to": to} if group is None else {"group": group}
        connection.request("typing", fields).addErrback(self._refused)
        return True

    def _refused(self, failure: Failure) -> None:
        if not failure.check(NotConnected):
            self.log.info("A typing notice was refused: {error}", error=describe(failure.value))

    # -- receiving ------------------------------------------------------------------------

    def typists(self, with_user: str | None = None, group: int | None = None) -> list[str]:
        """Who is typing in this conversation now (names as the server spelled them)."""
        key = conversation(with_user, group)
        return sorted((event.sender for (where, _), (event, _) in self._typists.items()
                       if where == key), key=str.lower)

    def pushed(self, message: dict[str, Any]) -> None:
        """A ``typing`` push."""
        sender, group = message["from"], message.get("group")
        if not isinstance(sender, str) or not (group is None or type(group) is int):
            raise TypeError("malformed typing push")
        key = (conversation(sender) if group is None else conversation(group_id=group),
               sender.lower())
        known = self._typists.get(key)
        if known is not None:
            known[1].reset(self._expires)
            return
        event = TypingEvent(sender, group, True)
        timer = self._clock.callLater(self._expires, self._stop, key)
        self._typists[key] = (event, timer)
        self._observers.emit("typing", event)

    def arrived(self, messages: Iterable[IncomingMessage]) -> None:
        """Messages arrived: their senders have stopped typing there."""
        for message in messages:
            where = (conversation(group_id=message.group) if message.group is not None
                     else conversation(message.sender))
            key = (where, message.sender.lower())
            known = self._typists.get(key)
            if known is not None:
                known[1].cancel()
                self._stop(key)

    def _stop(self, key: tuple[Conversation, str]) -> None:
        known = self._typists.pop(key, None)
        if known is not None:
            event = known[0]
            self._observers.emit("typing", TypingEvent(event.sender, event.group, False))

    # -- the session ----------------------------------------------------------------------

    def attach(self, connection: Connection) -> None:
        self._connection = connection
        self._sent.clear()

    def detach(self) -> None:
        """The connection ended: nobody is known to be typing any more."""
        self._connection = None
        for key, (_, timer) in list(self._typists.items()):
            if timer.active():
                timer.cancel()
            self._stop(key)
