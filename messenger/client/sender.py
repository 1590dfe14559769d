"""Sending own messages through the outbox, and what each reply means for them.

`MessageSender` asks the `Outbox` what is due, sends it on the live session with the
message's own request id, and settles it from the reply:

* acknowledged (``msg_id``): done; the recipient's queue may now pipeline;
* refused for good (400, 403, 404, ...): failed, never resent;
* 429: nothing was stored, but this session now refuses the id (the server remembers every
  request id of a session): resend after ``retry_after`` under a fresh id;
* 5xx or no answer: unknown whether it was stored, so only the same id is safe, and only
  on a new session: the connection is dropped and the message resent after the
  reconnect, where the server's (sender, id) uniqueness stores it at most once;
* the connection lost: pending again (`Outbox.connection_lost`), resent on the next one.

The sender is attached to the logged-in `Connection` and detached when it ends; a reply
that comes back from a connection that has since ended meets a closed connection, which
ignores being dropped again.

The observers hear ``message_status`` for every message when it is queued, acknowledged
or failed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from messenger.client.errors import ConnectionFailed, NotConnected, TooManyPending
from messenger.client.events import Observers
from messenger.client.failures import describe
from messenger.client.outbox import FAILED, PENDING, Outbox, OutgoingMessage
from messenger.client.requests import new_request_id
from messenger.wire import codes
from messenger.wire.errors import MessengerError, TooManyRequests

if TYPE_CHECKING:
    from messenger.client.connection import Connection

BUSY_RETRY = 1.0   # seconds before a message refused locally for too many pending requests


class MessageSender:
    def __init__(self, outbox: Outbox, observers: Observers, clock: Any) -> None:
        self.outbox = outbox
        self._observers = observers
        self._clock = clock
        self._connection: Connection | None = None
        self._wakeup: IDelayedCall | None = None
        self.owner: str | None = None       # lowercase account name of the queued messages

    def queue(self, owner: str, to: str | None, text: str, group: int | None = None,
              attachment: dict[str, Any] | None = None,
              reply_to: int | None = None) -> OutgoingMessage:
        if self.owner is None:
            self.owner = owner.lower()
        entry = self.outbox.add(to, text, new_request_id(), self._clock.seconds(), group,
                                attachment)
        entry.reply_to = reply_to
        self._observers.emit("message_status", entry)
        self.pump()
        return entry

    def attach(self, connection: Connection) -> None:
        """A session is up on ``connection``: send what is due on it."""
        self._connection = connection
        self.pump()

    def pump(self) -> None:
        """Send what is due, if a session is up."""
        connection = self._connection
        outbox = self.outbox
        if connection is None or not len(outbox):
            return
        now = self._clock.seconds()
        for entry in outbox.due(now):
            fields: dict[str, Any] = ({"to": entry.to, "message": entry.text}
                                      if entry.group is None else
                                      {"group": entry.group, "message": entry.text})
            if entry.attachment is not None:
                fields["attachment"] = entry.attachment
            if entry.reply_to is not None:
                fields["reply_to"] = entry.reply_to
            d = connection.request("msg", fields, request_id=entry.request_id)
            d.addCallbacks(self._acked, self._refused, callbackArgs=(entry,),
                           errbackArgs=(entry, connection))
        wake = outbox.next_wakeup()
        if wake is not None and wake > now and self._wakeup is None:
            self._wakeup = self._clock.callLater(wake - now, self._wake)

    def _wake(self) -> None:
        self._wakeup = None
        self.pump()

    def detach(self) -> None:
        """The session has ended: what was in flight is pending again."""
        self._connection = None
        self.outbox.connection_lost()
        self.cancel_timer()

    def cancel_timer(self) -> None:
        if self._wakeup is not None and self._wakeup.active():
            self._wakeup.cancel()
        self._wakeup = None

    def fail_all(self, error: MessengerError) -> None:
        """Give up every unacknowledged message (logout, another account logged in)."""
        self.cancel_timer()
        for entry in self.outbox.drain():
            entry.status = FAILED
            entry.error = error
            self._observers.emit("message_status", entry)
            entry.notify()
        self.owner = None

    def _acked(self, reply: dict[str, Any], entry: OutgoingMessage) -> None:
        if entry.status != PENDING:
            return
        msg_id, when = reply.get("msg_id"), reply.get("time")
        self.outbox.acked(entry, msg_id if type(msg_id) is int else -1,
                          when if isinstance(when, (int, float)) else 0.0)
        self._observers.emit("message_status", entry)
        entry.notify(reply)
        self.pump()

    def _refused(self, failure: Failure, entry: OutgoingMessage,
                 connection: Connection) -> None:
        error = failure.value
        if entry.status != PENDING or isinstance(error, NotConnected):
            return                          # lost with the connection: resent later
        if isinstance(error, (TooManyRequests, TooManyPending)):
            # Nothing was stored; a 429 also makes this session refuse the id again.
            wait = error.retry_after if isinstance(error, TooManyRequests) else BUSY_RETRY
            self.outbox.retry(entry, self._clock.seconds() + max(wait, 0.1),
                              new_request_id=new_request_id())
            self.pump()
            return
        if not isinstance(error, MessengerError) or error.code >= 500 or (
                error.code == codes.NOT_AUTHORISED):
            self.outbox.retry(entry)
            connection.drop(ConnectionFailed(
                f"a message was not acknowledged ({describe(error)}); reconnecting to"
                " resend it"))
            return
        self.outbox.failed(entry, error)
        self._observers.emit("message_status", entry)
        entry.notify()
        self.pump()
