"""Pushes from the server to the observers, by a table from action to handler.

Each known push becomes its event record (`messenger.client.events`) for the observers of
its kind; ``msg`` pushes go to the client core first (de-duplication and ordering,
`messenger.client.inbox`), ``account`` pushes update the core's account too. A push that
lacks fields is logged and dropped; an unknown action is ignored (a newer server may send
more). The ``push`` observers see every push as received.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from messenger.client.edits import MessageChange
from messenger.client.events import (
    AccountInfo,
    Broadcast,
    CallEvent,
    Notice,
    Observers,
    PresenceChange,
)
from messenger.client.groupevents import GROUP_PUSHES, group_event_from_jim
from messenger.wire import codes

CALL_PUSHES = ("call_ring", "call_start", "call_end")
FILE_PUSHES = ("file_progress", "file_error")


class PushDispatcher:
    log = Logger()

    def __init__(self, observers: Observers, on_msg: Callable[[dict[str, Any]], None],
                 on_account: Callable[[AccountInfo], None],
                 on_file: Callable[[dict[str, Any]], None] | None = None,
                 on_conversation: Callable[[dict[str, Any]], None] | None = None) -> None:
        self._observers = observers
        self._on_account = on_account
        ignore: Callable[[dict[str, Any]], None] = lambda message: None  # noqa: E731
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "msg": on_msg,
            # receipts and typing: the client core keeps their state (receipts.py,
            # typing.py) and tells the observers
            "receipt": on_conversation or ignore,
            "typing": on_conversation or ignore,
            "presence": self._presence,
            "contact_deleted": self._contact_deleted,
            "broadcast": self._broadcast,
            "account": self._account,
            "notice": self._notice,
            **{action: self._call for action in CALL_PUSHES},
            **{action: self._group for action in GROUP_PUSHES},
            "msg_changed": self._changed,
        }
        if on_file is not None:   # transfers (messenger.client.transfers)
            self._handlers.update({action: on_file for action in FILE_PUSHES})

    def __call__(self, message: dict[str, Any]) -> None:
        """Handle one push (``ClientProtocol.on_push``)."""
        action = message["action"]
        handler = self._handlers.get(action)
        if handler is not None:
            try:
                handler(message)
            except (KeyError, TypeError, ValueError, AttributeError):
                self.log.warn("Ignoring a malformed {action} push", action=action)
        else:
            self.log.debug("Ignoring a push of unknown action {action}", action=action)
        if self._observers.wanted("push"):
            self._observers.emit("push", message)

    def orphan_reply(self, message: dict[str, Any]) -> None:
        """A reply to no pending request: the server's notice before it closes (e.g.
        ``login timed out``), or an error about a frame it could not read."""
        response, text = message.get("response"), message.get("error")
        if type(response) is int and response >= 400 and isinstance(text, str):
            self.log.info("Server says: {code} {text}", code=response, text=text)
            self._observers.emit("notice", Notice(response, text, message.get("time", 0)))

    def _presence(self, message: dict[str, Any]) -> None:
        self._observers.emit("presence", PresenceChange(
            str(message["account_name"]), str(message["status"]), message.get("time", 0)))

    def _contact_deleted(self, message: dict[str, Any]) -> None:
        """A contact's account was deleted: a presence that never changes again."""
        self._observers.emit("presence", PresenceChange(
            str(message["account_name"]), "deleted", message.get("time", 0)))

    def _broadcast(self, message: dict[str, Any]) -> None:
        self._observers.emit("broadcast", Broadcast.from_jim(message))

    def _account(self, message: dict[str, Any]) -> None:
        account = AccountInfo.from_jim(message["user"])
        self._on_account(account)
        self._observers.emit("account", account)

    def _notice(self, message: dict[str, Any]) -> None:
        level = message.get("level")
        self._observers.emit("notice", Notice(
            level if type(level) is int else codes.BASIC_NOTICE, str(message["message"]),
            message.get("time", 0)))

    def _call(self, message: dict[str, Any]) -> None:
        self._observers.emit("call", CallEvent(message["action"], message))

    def _changed(self, message: dict[str, Any]) -> None:
        self._observers.emit("message_changed", MessageChange.from_jim(message))

    def _group(self, message: dict[str, Any]) -> None:
        event = group_event_from_jim(message)
        if event is not None:
            self._observers.emit("group", event)
