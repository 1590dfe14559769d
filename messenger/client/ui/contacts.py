"""The contact list: who, their presence, and how many of their messages are unread."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PyQt5.QtCore import QAbstractListModel, QModelIndex, QRectF, QSize, Qt
from PyQt5.QtGui import QColor, QFont, QPainter, QPainterPath
from PyQt5.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from messenger.client.ui import style

STATUS_ROLE = Qt.UserRole + 1
UNREAD_ROLE = Qt.UserRole + 2
CONTACT_ROLE = Qt.UserRole + 3


@dataclass
class Contact:
    name: str
    status: str = "offline"        # online, away, offline
    unread: int = 0
    is_contact: bool = True        # False: someone who wrote to us, not in our list


class ContactsModel(QAbstractListModel):
    """Contacts in alphabetical order (any case); people who are not contacts but wrote
    to us are listed too, marked, so that their messages can be read."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[Contact] = []

    # -- Qt -------------------------------------------------------------------------------

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: QModelIndex, role: int = Qt.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        contact = self._rows[index.row()]
        if role in (Qt.DisplayRole, Qt.EditRole):
            return contact.name
        if role == STATUS_ROLE:
            return contact.status
        if role == UNREAD_ROLE:
            return contact.unread
        if role == CONTACT_ROLE:
            return contact.is_contact
        if role == Qt.ToolTipRole:
            words = style.PRESENCE_WORDS.get(contact.status, contact.status)
            return f"{contact.name} — {words}"
        if role == Qt.AccessibleTextRole:
            unread = f", {contact.unread} unread" if contact.unread else ""
            return f"{contact.name}, {contact.status}{unread}"
        return None

    # -- changes --------------------------------------------------------------------------

    def set_contacts(self, items: list[dict[str, Any]]) -> None:
        """The server's list (``get_contacts``); unread counts and strangers are kept."""
        unread = {c.name.lower(): c.unread for c in self._rows}
        strangers = [c for c in self._rows if not c.is_contact]
        rows = [Contact(str(item["account_name"]), str(item.get("status", "offline")),
                        unread.get(str(item["account_name"]).lower(), 0))
                for item in items if isinstance(item, dict) and "account_name" in item]
        known = {c.name.lower() for c in rows}
        rows += [c for c in strangers if c.name.lower() not in known]
        rows.sort(key=lambda c: c.name.lower())
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def add(self, name: str, status: str = "offline", is_contact: bool = True) -> int:
        """Add (or promote a stranger to) a contact; returns its row."""
        row = self.row_of(name)
        if row is not None:
            contact = self._rows[row]
            contact.is_contact = contact.is_contact or is_contact
            contact.status = status if is_contact else contact.status
            self._changed(row)
            return row
        position = sum(1 for c in self._rows if c.name.lower() < name.lower())
        self.beginInsertRows(QModelIndex(), position, position)
        self._rows.insert(position, Contact(name, status, 0, is_contact))
        self.endInsertRows()
        return position

    def remove(self, name: str) -> None:
        row = self.row_of(name)
        if row is not None:
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._rows[row]
            self.endRemoveRows()

    def set_status(self, name: str, status: str) -> None:
        row = self.row_of(name)
        if row is not None and self._rows[row].status != status:
            self._rows[row].status = status
            self._changed(row)

    def add_unread(self, name: str, count: int = 1) -> None:
        row = self.row_of(name)
        if row is None:
            row = self.add(name, "offline", is_contact=False)
        self._rows[row].unread += count
        self._changed(row)

    def clear_unread(self, name: str) -> None:
        row = self.row_of(name)
        if row is not None and self._rows[row].unread:
            self._rows[row].unread = 0
            self._changed(row)

    # -- reading --------------------------------------------------------------------------

    def row_of(self, name: str) -> int | None:
        key = name.lower()
        for row, contact in enumerate(self._rows):
            if contact.name.lower() == key:
                return row
        return None

    def contact(self, name: str) -> Contact | None:
        row = self.row_of(name)
        return self._rows[row] if row is not None else None

    def status_of(self, name: str) -> str:
        contact = self.contact(name)
        return contact.status if contact else "offline"

    def unread_of(self, name: str) -> int:
        contact = self.contact(name)
        return contact.unread if contact else 0

    def total_unread(self) -> int:
        return sum(c.unread for c in self._rows)

    def names(self) -> list[str]:
        return [c.name for c in self._rows]

    def _changed(self, row: int) -> None:
        index = self.index(row)
        self.dataChanged.emit(index, index)


class ContactDelegate(QStyledItemDelegate):
    """A row: avatar with presence dot, name, presence in words, unread badge."""

    HEIGHT = 60

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        return QSize(option.rect.width(), self.HEIGHT)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex) -> None:
        painter.save()
        painter.setRenderHint(QPainter.Antialiasing)
        rect = QRectF(option.rect).adjusted(6, 2, -6, -2)
        selected = bool(option.state & QStyle.State_Selected)
        hovered = bool(option.state & QStyle.State_MouseOver)
        if selected or hovered:
            path = QPainterPath()
            path.addRoundedRect(rect, 8, 8)
            painter.fillPath(path, QColor(style.ACCENT_SOFT if selected else "#f2f5fa"))
        name = index.data(Qt.DisplayRole) or ""
        status = index.data(STATUS_ROLE) or "offline"
        unread = index.data(UNREAD_ROLE) or 0
        is_contact = index.data(CONTACT_ROLE)
        avatar = QRectF(rect.left() + 8, rect.center().y() - 20, 40, 40)
        style.paint_avatar(painter, avatar, name, status if is_contact else None)

        text_left = avatar.right() + 12
        badge_width = 0.0
        if unread:
            badge_font = QFont(option.font)
            badge_font.setBold(True)
            badge_font.setPointSizeF(max(7.0, option.font.pointSizeF() - 1.5))
            painter.setFont(badge_font)
            label = str(unread) if unread < 1000 else "999+"
            badge_width = max(22.0, painter.fontMetrics().horizontalAdvance(label) + 12.0)
            badge = QRectF(rect.right() - badge_width - 10, rect.center().y() - 11,
                           badge_width, 22)
            painter.setPen(Qt.NoPen)
            painter.setBrush(QColor(style.ACCENT))
            painter.drawRoundedRect(badge, 11, 11)
            painter.setPen(QColor("white"))
            painter.drawText(badge, Qt.AlignCenter, label)
        text_width = rect.right() - text_left - badge_width - 16

        name_font = QFont(option.font)
        name_font.setBold(True)
        painter.setFont(name_font)
        painter.setPen(QColor(style.TEXT))
        name_rect = QRectF(text_left, rect.top() + 10, text_width, 20)
        painter.drawText(name_rect, Qt.AlignLeft | Qt.AlignVCenter,
                         painter.fontMetrics().elidedText(name, Qt.ElideRight,
                                                          int(text_width)))
        small = QFont(option.font)
        small.setPointSizeF(max(7.0, option.font.pointSizeF() - 1))
        painter.setFont(small)
        if is_contact:
            words = style.PRESENCE_WORDS.get(status, status)
            painter.setPen(QColor(style.SUCCESS if status == "online" else style.MUTED))
        else:
            words = "Not in your contacts"
            painter.setPen(QColor(style.WARNING))
        painter.drawText(QRectF(text_left, rect.top() + 30, text_width, 18),
                         Qt.AlignLeft | Qt.AlignVCenter, words)
        painter.restore()
