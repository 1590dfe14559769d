"""One conversation as a list model: stored messages by ``msg_id``, own ones pending
until acknowledged, and where the unread ones start. `bubbles.BubbleDelegate` draws
them."""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from PyQt5.QtCore import QAbstractListModel, QModelIndex, Qt

from messenger.client.events import Attachment
from messenger.client.ui.links import find_links
from messenger.client.ui.messages import format_clock

ENTRY_ROLE = Qt.UserRole + 10

RECEIVED = "received"
PENDING = "pending"
ACKED = "acked"
FAILED = "failed"

_order = itertools.count()
MENTION = re.compile(r"@([\w.\-]+)")


@dataclass
class ChatEntry:
    msg_id: int | None
    time: float
    sender: str
    text: str
    own: bool
    status: str                      # received, pending, acked, failed
    request_id: str | None = None    # own messages: the outbox's id
    error: str = ""
    seq: int = 0                     # order among pending entries
    mentions: tuple[str, ...] = ()   # group messages: members written as @name
    mentioned: bool = False          # ... the user among them (highlighted)
    receipt: str = ""                # own, stored: "sent", "delivered" or "read"
    read_by: int = 0                 # own group messages: how many members read it
    attachment: Attachment | None = None   # the file it carries (a card, or a preview)
    reply_to: int | None = None      # the msg_id it quotes (same conversation)
    edited: bool = False             # its author changed it ("edited" in the footer)
    deleted: bool = False            # deleted for everyone ("message deleted")
    _links: list[tuple[int, int, str]] | None = field(default=None, repr=False,
                                                      compare=False)

    @property
    def links(self) -> list[tuple[int, int, str]]:
        """(start, end, url) of the links in the text (found once)."""
        if self._links is None:
            self._links = find_links(self.text)
        return self._links

    @property
    def mention_spans(self) -> list[tuple[int, int]]:
        """(start, end) of each ``@name`` in the text that names a mentioned member."""
        if not self.mentions:
            return []
        names = {name.lower() for name in self.mentions}
        spans = []
        for match in MENTION.finditer(self.text):
            name = match.group(1).rstrip(".-_")     # "@ann." ends a sentence
            if name.lower() in names:
                spans.append((match.start(), match.start() + 1 + len(name)))
        return spans

    @property
    def sort_key(self) -> tuple[int, int]:
        return (0, self.msg_id) if self.msg_id is not None else (1, self.seq)


class ChatModel(QAbstractListModel):
    """Messages in ``msg_id`` order (history and live messages share the numbering),
    each once; own messages not yet acknowledged follow, in the order written."""

    def __init__(self, me: str, parent: Any = None) -> None:
        super().__init__(parent)
        self.me = me
        self._entries: list[ChatEntry] = []
        self._keys: list[tuple[int, int]] = []
        self._msg_ids: set[int] = set()
        self.unread_after: int | None = None   # entries received after this id are new
        self.divider_row: int | None = None    # the first of them ("Unread messages")
        self.beginning = ""                    # said above the first message, at the top
        self.show_senders = False              # a group: each other's name on its bubble

    # -- Qt -------------------------------------------------------------------------------

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._entries)

    def data(self, index: QModelIndex, role: int = Qt.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._entries):
            return None
        entry = self._entries[index.row()]
        if role == Qt.DisplayRole:
            return entry.text
        if role == ENTRY_ROLE:
            return entry
        if role == Qt.AccessibleTextRole:
            who = "you" if entry.own else entry.sender
            return f"{who} at {format_clock(entry.time)}: {entry.text} ({entry.status})"
        return None

    # -- reading --------------------------------------------------------------------------

    def entry(self, row: int) -> ChatEntry | None:
        return self._entries[row] if 0 <= row < len(self._entries) else None

    def entries(self) -> list[ChatEntry]:
        return list(self._entries)

    def first_msg_id(self) -> int | None:
        for entry in self._entries:
            if entry.msg_id is not None:
                return entry.msg_id
        return None

    def has_msg_id(self, msg_id: int) -> bool:
        return msg_id in self._msg_ids

    def row_of_msg_id(self, msg_id: int) -> int | None:
        for row, entry in enumerate(self._entries):
            if entry.msg_id == msg_id:
                return row
        return None

    def set_beginning(self, text: str) -> None:
        """The line above the first message once the whole history is loaded."""
        if text != self.beginning:
            self.beginning = text
            if self._entries:
                self._changed(0)

    def set_unread_after(self, msg_id: int | None) -> None:
        """Mark where the unread messages start (the read position when the chat was
        opened); None: no marker."""
        self.unread_after = msg_id
        self._find_divider()

    def _find_divider(self) -> None:
        old, self.divider_row = self.divider_row, None
        if self.unread_after is not None:
            for row, entry in enumerate(self._entries):
                if not entry.own and entry.msg_id is not None and \
                        entry.msg_id > self.unread_after:
                    self.divider_row = row
                    break
        for row in {old, self.divider_row} - {None}:
            if row is not None and row < len(self._entries):
                self._changed(row)

    # -- changes --------------------------------------------------------------------------

    def add_stored(self, msg_id: int, time: float, sender: str, text: str,
                   mentions: tuple[str, ...] = (),
                   attachment: Attachment | None = None, reply_to: int | None = None,
                   edited: bool = False, deleted: bool = False) -> bool:
        """A stored message (history page or live); False if it is here already.
        ``mentions``: of a group message (the user's own name among them highlights it)."""
        if msg_id in self._msg_ids:
            return False
        own = sender.lower() == self.me.lower()
        me = self.me.lower()
        self._insert(ChatEntry(msg_id, time, sender, text, own, ACKED if own else RECEIVED,
                               mentions=mentions, attachment=attachment,
                               reply_to=reply_to, edited=edited, deleted=deleted,
                               mentioned=not own and any(n.lower() == me for n in mentions)))
        return True

    def add_history(self, messages: list[dict[str, Any]]) -> int:
        """A ``history`` page (oldest first); returns how many were new."""
        added = 0
        for message in messages:
            try:
                mentions = message.get("mentions")
                mentions = tuple(str(name) for name in mentions) \
                    if isinstance(mentions, list) else ()
                reply_to = message.get("reply_to")
                added += self.add_stored(int(message["msg_id"]), float(message["time"]),
                                         str(message["from"]), str(message["message"]),
                                         mentions, Attachment.from_jim(
                                             message.get("attachment")),
                                         reply_to if type(reply_to) is int else None,
                                         message.get("edited") is not None,
                                         message.get("deleted") is not None)
            except (KeyError, TypeError, ValueError):
                continue
        return added

    def add_outgoing(self, outgoing: Any) -> None:
        """An own message just written, or left in the outbox (an `OutgoingMessage`),
        pending; once only (a second call updates the first)."""
        if self._row_of_request(outgoing.request_id) is not None:
            self.update_outgoing(outgoing)
            return
        if outgoing.msg_id is not None and outgoing.msg_id in self._msg_ids:
            return                           # acknowledged and shown already
        entry = ChatEntry(None, outgoing.created, self.me, outgoing.text, True, PENDING,
                          request_id=outgoing.request_id, seq=next(_order),
                          attachment=own_attachment(getattr(outgoing, "attachment", None)),
                          reply_to=getattr(outgoing, "reply_to", None))
        self._insert(entry)
        self.update_outgoing(outgoing)       # it may have been settled already

    def update_outgoing(self, outgoing: Any) -> bool:
        """The outbox says an own message changed: acked (gets its ``msg_id`` and moves
        among the stored messages) or failed. False if it is not in this chat."""
        row = self._row_of_request(outgoing.request_id)
        if row is None:
            return False
        entry = self._entries[row]
        if outgoing.status == ACKED and outgoing.msg_id is not None:
            self._remove(row)
            if outgoing.msg_id not in self._msg_ids:
                entry.msg_id = int(outgoing.msg_id)
                entry.time = float(outgoing.time or entry.time)
                entry.status = ACKED
                self._insert(entry)
        elif outgoing.status == FAILED:
            entry.status = FAILED
            error = outgoing.error
            entry.error = getattr(error, "message", None) or str(error or "not sent")
            self._changed(row)
        return True

    def apply_receipts(self, status: Any) -> None:
        """``status(msg_id)`` -> (receipt, read_by) of each own stored message: the
        ticks follow the others' receipts."""
        for row, entry in enumerate(self._entries):
            if entry.own and entry.msg_id is not None and entry.status == ACKED:
                receipt, read_by = status(entry.msg_id)
                if (receipt, read_by) != (entry.receipt, entry.read_by):
                    entry.receipt, entry.read_by = receipt, read_by
                    self._changed(row)

    def apply_change(self, msg_id: int, text: str, deleted: bool) -> bool:
        """A message edited or deleted for everyone (as it is now); False if it is not
        shown here."""
        row = self.row_of_msg_id(msg_id)
        if row is None:
            return False
        entry = self._entries[row]
        entry.text, entry._links = ("" if deleted else text), None
        entry.deleted = deleted
        entry.edited = entry.edited or not deleted
        self._changed(row)
        for other_row, other in enumerate(self._entries):      # the quotes of it
            if other.reply_to == msg_id:
                self._changed(other_row)
        return True

    def quoted(self, entry: ChatEntry) -> ChatEntry | None:
        """The message ``entry`` replies to, when it is loaded."""
        if entry.reply_to is None:
            return None
        row = self.row_of_msg_id(entry.reply_to)
        return self._entries[row] if row is not None else None

    def _row_of_request(self, request_id: str) -> int | None:
        for row in range(len(self._entries) - 1, -1, -1):
            if self._entries[row].request_id == request_id and (
                    self._entries[row].status in (PENDING, FAILED)):
                return row
        return None

    def _insert(self, entry: ChatEntry) -> None:
        key = entry.sort_key
        row = bisect.bisect_right(self._keys, key)
        self.beginInsertRows(QModelIndex(), row, row)
        self._entries.insert(row, entry)
        self._keys.insert(row, key)
        if entry.msg_id is not None:
            self._msg_ids.add(entry.msg_id)
        self.endInsertRows()
        if row + 1 < len(self._entries):
            self._changed(row + 1)           # its day header may have gone
        if self.unread_after is not None:
            self._find_divider()

    def _remove(self, row: int) -> None:
        self.beginRemoveRows(QModelIndex(), row, row)
        entry = self._entries.pop(row)
        self._keys.pop(row)
        if entry.msg_id is not None:
            self._msg_ids.discard(entry.msg_id)
        self.endRemoveRows()

    def _changed(self, row: int) -> None:
        index = self.index(row)
        self.dataChanged.emit(index, index)


def own_attachment(fields: Any) -> Attachment | None:
    """What an own message carries (the outbox keeps the fields the sender sets: the
    server adds size, type and hash when it stores the message)."""
    if not isinstance(fields, dict) or type(fields.get("file_id")) is not int:
        return None
    complete = {"size": 0, "mime": "image/*" if "width" in fields else "", "sha256": "",
                **fields}
    return Attachment.from_jim(complete)
