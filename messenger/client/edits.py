"""Edits, deletions and search in the client core: the actions, the change records, and
the feed that keeps a front end's messages as they are now.

`EditsMixin` gives `MessengerClient` ``edit_message``, ``delete_message``,
``search_messages`` (typed `SearchResult` pages) and the raw ``sync_changes``; replies
go through the outbox like every message (``queue_message(..., reply_to=msg_id)``).

`ChangeFeed` delivers every edit and deletion of a message the user can see as a
``message_changed`` event (`MessageChange`): live from the server's ``msg_changed``
pushes (`messenger.client.pushes`), and after every login from ``sync_changes``
(docs/PROTOCOL.md, "Replies, edits and deletions"), so a change made while this client
was away arrives too. Its cursor is kept in memory: a client that starts afresh begins
at the server's newest change (``sync_changes`` without ``since``) and reads its
conversations with ``history``, which shows every message as it is now. A change may be
delivered twice (pushed while the catch-up ran); it always describes the message as it is
now, so applying it again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from messenger.client.errors import NotConnected
from messenger.client.events import ConnectionState, IncomingMessage, Observers, State
from messenger.client.failures import describe

Reply = defer.Deferred[dict[str, Any]]
CHANGES_PAGE = 200


@dataclass(frozen=True, slots=True)
class MessageChange:
    """A message edited or deleted for everyone, as it is now."""

    change_id: int
    msg_id: int
    kind: str                           # "edited" or "deleted"
    text: str                           # the new text; "" once deleted
    sender: str                         # the message's author
    recipient: str | None               # a direct message's recipient, else None
    group: int | None                   # a group message's group, else None
    by: str | None                      # who changed it (an admin may delete)
    edited: float | None = None
    deleted: float | None = None
    from_sync: bool = False             # caught up after a login, not pushed

    @property
    def is_deleted(self) -> bool:
        return self.kind == "deleted"

    @classmethod
    def from_jim(cls, item: dict[str, Any], from_sync: bool = False) -> MessageChange:
        """A ``msg_changed`` push or a ``sync_changes`` item (KeyError/TypeError/ValueError
        when malformed)."""
        kind = item["kind"]
        if kind not in ("edited", "deleted") or type(item["change_id"]) is not int:
            raise ValueError("not a change")
        group = item.get("group")
        return cls(item["change_id"], int(item["msg_id"]), kind, str(item["message"]),
                   str(item["from"]), item.get("to") if group is None else None,
                   group, item.get("by"), item.get("edited"), item.get("deleted"), from_sync)


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One message found, with the ``(start, length)`` spans (code points) of the words
    the query matched, for highlighting."""

    message: IncomingMessage
    matches: tuple[tuple[int, int], ...]

    @classmethod
    def from_jim(cls, item: dict[str, Any]) -> SearchResult:
        spans = tuple((int(start), int(length)) for start, length in item.get("matches", ()))
        return cls(IncomingMessage.from_jim(item, from_sync=True), spans)

    def highlighted(self, before: str = "[", after: str = "]") -> str:
        """The text with each match wrapped in ``before`` and ``after`` (a terminal's
        bold, a rich-text tag)."""
        text, out, at = self.message.text, [], 0
        for start, length in self.matches:
            out.append(text[at:start])
            out.append(before + text[start:start + length] + after)
            at = start + length
        out.append(text[at:])
        return "".join(out)


@dataclass(frozen=True, slots=True)
class SearchPage:
    results: tuple[SearchResult, ...]
    more: bool
    next_offset: int                    # the ``offset`` of the next page


class EditsMixin:
    """Needs ``request(action, fields)`` (see `MessengerClient.request`)."""

    def request(self, action: str, fields: dict[str, Any] | None = None) -> Reply:
        raise NotImplementedError

    def edit_message(self, msg_id: int, text: str) -> defer.Deferred[MessageChange]:
        """Replace the text of an own message (within the server's edit window); fires
        with the change. `Forbidden` (not yours, too late), `NotFound`, `Conflict`
        (deleted)."""
        return self.request("edit_msg", {"msg_id": msg_id, "message": text}).addCallback(
            MessageChange.from_jim)

    def delete_message(self, msg_id: int) -> defer.Deferred[MessageChange]:
        """Delete a message for everyone (an own one within the window; any one of a
        group the user is an owner or admin of); fires with the change."""
        return self.request("delete_msg", {"msg_id": msg_id}).addCallback(
            MessageChange.from_jim)

    def sync_changes(self, since: int | None = None, limit: int | None = None) -> Reply:
        """The raw action: 202, ``alert`` the changes above ``since``, ``more``; without
        ``since``, ``last_change``. (The core catches up by itself after every login.)"""
        fields: dict[str, Any] = {}
        if since is not None:
            fields["since"] = since
        if limit is not None:
            fields["limit"] = limit
        return self.request("sync_changes", fields)

    def search_messages(self, query: str, with_user: str | None = None,
                        group: int | None = None, offset: int = 0,
                        limit: int | None = None) -> defer.Deferred[SearchPage]:
        """One page of the user's messages holding every word of ``query``, best first
        (optionally only those with ``with_user`` or in ``group``). `BadRequest` for an
        empty, huge or wordless query."""
        fields: dict[str, Any] = {"query": query}
        for name, value in (("with", with_user), ("group", group), ("limit", limit)):
            if value is not None:
                fields[name] = value
        if offset:
            fields["offset"] = offset

        def page(reply: dict[str, Any]) -> SearchPage:
            results = tuple(SearchResult.from_jim(item) for item in reply.get("alert", ()))
            return SearchPage(results, bool(reply.get("more")), offset + len(results))
        return self.request("search_messages", fields).addCallback(page)


class ChangeFeed:
    """``message_changed`` events: pushed ones (`on_push`) and, after each login, the
    ones missed (`catch_up`, run when the connection goes online)."""

    log = Logger()

    def __init__(self, client: Any, observers: Observers) -> None:
        self._client = client
        self._observers = observers
        self.cursor: int | None = None      # the change id caught up to (None: not yet)
        self._running = False
        observers.subscribe("state", self._state)

    def _state(self, state: ConnectionState) -> None:
        if state.name == State.ONLINE and not self._running:
            self._running = True
            d = self.catch_up()
            d.addErrback(self._failed)
            d.addBoth(self._done)

    def _done(self, result: Any) -> None:
        self._running = False

    def _failed(self, failure: Failure) -> None:
        if not failure.check(NotConnected):
            self.log.warn("Catching up with edits failed: {error}",
                          error=describe(failure.value))

    @defer.inlineCallbacks
    def catch_up(self) -> Any:
        """Read the changes above the cursor page by page and emit them (the first time,
        only learn where the server's changes stand)."""
        if self.cursor is None:
            reply = yield self._client.sync_changes()
            last = reply.get("last_change")
            self.cursor = last if type(last) is int else 0
            return
        while True:
            reply = yield self._client.sync_changes(self.cursor, CHANGES_PAGE)
            newest = self.cursor
            for item in reply.get("alert") or ():
                try:
                    change = MessageChange.from_jim(item, from_sync=True)
                except (KeyError, TypeError, ValueError):
                    self.log.warn("Ignoring a malformed change")
                    continue
                newest = max(newest, change.change_id)
                self._observers.emit("message_changed", change)
            if not reply.get("more") or newest == self.cursor:
                self.cursor = newest
                return
            self.cursor = newest
