"""The chat list as a model: people (contacts, and strangers who wrote), groups, the
broadcast feed and the service messages, newest activity first, each with its unread
count, muted state, preview and, for people, presence; for groups, the mention mark and
what is known of the group (`GroupMeta`).

Each row's counts and preview are the `ChatRecord` of the account's `ChatState`
(shared, not copied): the `Conversations` controller changes the record and then calls
`touched`, which moves the row to its place and repaints it. While the connection is
down, ``connected`` is False and no presence is shown as known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PyQt5.QtCore import QAbstractListModel, QModelIndex, Qt

from messenger.client.ui import style
from messenger.client.ui.chat_state import (
    FEED,
    NOTICES,
    ChatRecord,
    ChatState,
    GroupMeta,
    group_key,
    person_key,
)

ITEM_ROLE = Qt.UserRole + 20

PERSON, GROUP, FEED_KIND, NOTICES_KIND = "person", "group", "feed", "notices"
TITLES = {FEED: "Home", NOTICES: "Messenger"}


@dataclass
class ChatItem:
    key: str
    kind: str                            # person, group, feed, notices
    title: str
    record: ChatRecord = field(default_factory=ChatRecord)
    status: str = "offline"              # people: online, away, offline
    is_contact: bool = True              # people: False for someone who just wrote to us
    blocked: bool = False
    group: GroupMeta | None = None       # groups: name, role, channel or not, ...

    @property
    def mentions(self) -> int:
        return self.record.mentions

    @property
    def unread(self) -> int:
        return self.record.unread

    @property
    def muted(self) -> bool:
        return self.record.muted

    def sort_key(self) -> tuple[int, float, str]:
        """Newest activity first (a group without messages: its creation); chats
        without any, by name, after them."""
        when = self.record.last_time or (self.group.created if self.group else 0.0)
        return (0 if when else 1, -when, self.title.lower())


class ChatListModel(QAbstractListModel):
    """Rows of `ChatItem`, kept in `ChatItem.sort_key` order."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._items: list[ChatItem] = []
        self.state = ChatState()
        self.connected = False

    # -- Qt -------------------------------------------------------------------------------

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._items)

    def data(self, index: QModelIndex, role: int = Qt.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._items):
            return None
        item = self._items[index.row()]
        if role in (Qt.DisplayRole, Qt.EditRole):
            return item.title
        if role == ITEM_ROLE:
            return item
        if role == Qt.ToolTipRole and item.kind == PERSON:
            return f"{item.title} — {self.presence_words(item)}"
        if role == Qt.ToolTipRole and item.group is not None:
            return f"{item.title} — {group_words(item.group)}"
        if role == Qt.AccessibleTextRole:
            unread = f", {item.unread} unread" if item.unread else ""
            mentions = ", you were mentioned" if item.mentions else ""
            muted = ", muted" if item.muted else ""
            return f"{item.title}{unread}{mentions}{muted}: {item.record.preview}"
        return None

    def presence_words(self, item: ChatItem) -> str:
        """What the list may say of a person's presence: nothing known while offline."""
        if item.blocked:
            return "Blocked"
        if not item.is_contact:
            return "Not in your contacts"
        if not self.connected:
            return "Presence unknown while offline"
        return style.PRESENCE_WORDS.get(item.status, item.status)

    # -- building -------------------------------------------------------------------------

    def load(self, state: ChatState) -> None:
        """The account's remembered chats: every person it talked to, and the feed and
        the service messages (always listed)."""
        self.state = state
        items = [ChatItem(FEED, FEED_KIND, TITLES[FEED], state.record(FEED)),
                 ChatItem(NOTICES, NOTICES_KIND, TITLES[NOTICES], state.record(NOTICES))]
        for key, record in state.chats.items():
            if key.startswith("@"):
                items.append(ChatItem(key, PERSON, record.title or key[1:], record,
                                      is_contact=False))
        for key, meta in state.groups.items():
            items.append(ChatItem(key, GROUP, meta.name, state.record(key), group=meta))
        self._reset(items)

    def set_contacts(self, contacts: list[dict[str, Any]]) -> None:
        """The server's contact list: each is listed (with presence); people listed
        before who are no longer contacts stay, marked, if we have talked."""
        by_key = {item.key: item for item in self._items}
        listed = set()
        for contact in contacts:
            name = contact.get("account_name") if isinstance(contact, dict) else None
            if not isinstance(name, str):
                continue
            key = person_key(name)
            listed.add(key)
            item = by_key.get(key) or ChatItem(key, PERSON, name, self.state.record(key))
            item.title = item.record.title = name
            item.is_contact = True
            item.status = str(contact.get("status", "offline"))
            by_key[key] = item
        for key, item in list(by_key.items()):
            if item.kind == PERSON and key not in listed:
                item.is_contact = False
                if not item.record.last_time and not item.unread:
                    del by_key[key]
        self._reset(list(by_key.values()))

    def set_connected(self, connected: bool) -> None:
        if connected != self.connected:
            self.connected = connected
            self._all_changed()

    def set_blocked(self, names: list[str]) -> None:
        keys = {person_key(name) for name in names}
        for item in self._items:
            item.blocked = item.key in keys
        self._all_changed()

    # -- changes --------------------------------------------------------------------------

    def person(self, name: str, is_contact: bool | None = None,
               status: str | None = None) -> ChatItem:
        """The row of ``name`` (added when missing), with what is now known of them."""
        key = person_key(name)
        item = self.item(key)
        if item is None:
            item = ChatItem(key, PERSON, name, self.state.record(key),
                            is_contact=bool(is_contact))
            item.record.title = name
            self._insert(item)
        if is_contact is not None:
            item.is_contact = is_contact
        if status is not None:
            item.status = status
        self.touched(key)
        return item

    def group(self, meta: GroupMeta) -> ChatItem:
        """The row of a group (added when missing), showing ``meta`` (the state's)."""
        key = group_key(meta.group_id)
        self.state.groups[key] = meta
        item = self.item(key)
        if item is None:
            item = ChatItem(key, GROUP, meta.name, self.state.record(key), group=meta)
            self._insert(item)
        item.title, item.group = meta.name, meta
        self.touched(key)
        return item

    def groups(self) -> list[ChatItem]:
        return [item for item in self._items if item.kind == GROUP]

    def items(self) -> list[ChatItem]:
        return list(self._items)

    def remove(self, key: str) -> None:
        row = self.row_of(key)
        if row is not None:
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._items[row]
            self.endRemoveRows()

    def set_status(self, name: str, status: str) -> None:
        item = self.item(person_key(name))
        if item is not None and item.status != status:
            item.status = status
            self._changed(self.row_of(item.key))

    def touched(self, key: str) -> None:
        """The chat's record changed: move its row to its place, repaint it."""
        row = self.row_of(key)
        if row is None:
            return
        item = self._items[row]
        rest = self._items[:row] + self._items[row + 1:]
        target = sum(1 for other in rest if other.sort_key() < item.sort_key())
        if target != row:
            # Qt's move counts the destination before the row is taken out.
            self.beginMoveRows(QModelIndex(), row, row, QModelIndex(),
                               target + 1 if target > row else target)
            self._items = rest[:target] + [item] + rest[target:]
            self.endMoveRows()
            row = target
        self._changed(row)

    # -- reading --------------------------------------------------------------------------

    def item(self, key: str) -> ChatItem | None:
        row = self.row_of(key)
        return self._items[row] if row is not None else None

    def item_at(self, row: int) -> ChatItem | None:
        return self._items[row] if 0 <= row < len(self._items) else None

    def row_of(self, key: str) -> int | None:
        for row, item in enumerate(self._items):
            if item.key == key:
                return row
        return None

    def keys(self) -> list[str]:
        return [item.key for item in self._items]

    def total_unread(self) -> int:
        """Unread messages in chats that are not muted (the title's and tray's count),
        and in muted ones those that mention the user."""
        return sum(item.mentions if item.muted else item.unread for item in self._items)

    # -- helpers --------------------------------------------------------------------------

    def _reset(self, items: list[ChatItem]) -> None:
        self.beginResetModel()
        self._items = sorted(items, key=ChatItem.sort_key)
        self.endResetModel()

    def _insert(self, item: ChatItem) -> None:
        row = sum(1 for other in self._items if other.sort_key() < item.sort_key())
        self.beginInsertRows(QModelIndex(), row, row)
        self._items.insert(row, item)
        self.endInsertRows()

    def _changed(self, row: int | None) -> None:
        if row is not None:
            index = self.index(row)
            self.dataChanged.emit(index, index)

    def _all_changed(self) -> None:
        if self._items:
            self.dataChanged.emit(self.index(0), self.index(len(self._items) - 1))


def group_words(meta: GroupMeta) -> str:
    """A group's state in a few words: "announcement channel · 6 members"."""
    if meta.gone:
        return {"left": "you left this group", "deleted": "this group was deleted"}.get(
            meta.gone, "you are no longer a member")
    kind = "announcement channel" if meta.announce_only else "group"
    members = f" · {meta.members} member{'s' if meta.members != 1 else ''}" \
        if meta.members else ""
    return f"{kind}{members}"
