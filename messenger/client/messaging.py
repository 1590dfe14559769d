"""Messages from the client core: the outbox (queued, sent now or after the next login,
resent with the same id until acknowledged), direct and group, and what goes with them
(unread counts, typing notices).

A mixin of `core.MessengerClient`, which holds the outbox (`sender.MessageSender`), the
outbox on disk and the typing state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer

from messenger.client.errors import MessageTooLong, NotConnected
from messenger.client.groupevents import UnreadCounts
from messenger.client.outbox import OutgoingMessage
from messenger.wire.errors import MessengerError

Reply = defer.Deferred[dict[str, Any]]


class MessagingMixin:
    """The sending half of `core.MessengerClient`'s public interface."""

    _sender: Any
    _service: Any
    _disk_outbox: Any
    account: Any
    limits: Any
    typing: Any
    get_unread: Callable[[], Reply]      # ActionsMixin's

    def queue_message(self, to: str, text: str,
                      reply_to: int | None = None) -> OutgoingMessage:
        """Put a message in the outbox and return its record at once (status pending);
        it is sent now if online, else after the next login, and resent with the same id
        until acknowledged. ``message_status`` observers hear of every change. Raises
        `NotConnected` before any login, `MessageTooLong` past the server's limit.
        ``reply_to``: the msg_id of an earlier message of the conversation it quotes."""
        return self._sender.queue(self._sender_name(text), to, text, reply_to=reply_to)

    def queue_group_message(self, group_id: int, text: str,
                            reply_to: int | None = None) -> OutgoingMessage:
        """`queue_message` for a group: the same outbox, resends and statuses (the
        record's ``group`` is set, its ``to`` None)."""
        return self._sender.queue(self._sender_name(text), None, text, group=group_id,
                                  reply_to=reply_to)

    def _sender_name(self, text: str) -> str:
        owner = self._owner()
        size = len(text.encode("utf-8"))
        if size > self.limits.max_body:
            raise MessageTooLong(size, self.limits.max_body)
        return owner

    def _owner(self) -> str:
        plan = self._service.plan
        owner = self.account.account_name if self.account else (
            plan.account_name if plan else None)
        if owner is None:
            raise NotConnected("log in before sending messages or files")
        return owner

    def send_message(self, to: str, text: str, reply_to: int | None = None) -> Reply:
        """`queue_message`, as a Deferred firing with the acknowledgement (``msg_id``,
        ``time``), however many reconnects it takes, or failing with the refusal."""
        try:
            entry = self.queue_message(to, text, reply_to)
        except MessengerError as error:
            return defer.fail(error)
        return entry.when_done()

    def send_group_message(self, group_id: int, text: str,
                           reply_to: int | None = None) -> Reply:
        """`send_message` to a group: fires with the acknowledgement, or fails with the
        refusal (`Forbidden` for a non-member or a plain member of an announcement
        channel)."""
        try:
            entry = self.queue_group_message(group_id, text, reply_to)
        except MessengerError as error:
            return defer.fail(error)
        return entry.when_done()

    def unread_counts(self) -> defer.Deferred[UnreadCounts]:
        """The server's unread counts (``get_unread``) as an `UnreadCounts`. The core asks
        after every login by itself and tells the ``unread`` observers."""
        return self.get_unread().addCallback(UnreadCounts.from_jim)

    def notify_typing(self, to: str | None = None, group: int | None = None) -> bool:
        """The user is typing to ``to`` (or in ``group``): call on every keystroke; a
        ``typing`` notice goes out at most every few seconds (`typing.Typing`)."""
        return self.typing.typing(to, group)

    def outbox_saved(self) -> defer.Deferred[None]:
        """Fires once the outbox on disk holds every change made so far."""
        return self._disk_outbox.written()
