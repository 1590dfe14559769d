"""How one row of the chat list looks: avatar (with presence, only while it is known),
name and time of the last activity, the last message's preview, the unread badge (grey
when the chat is muted) and a muted mark."""

from __future__ import annotations

import time
from typing import Any

from PyQt5.QtCore import QModelIndex, QPointF, QRectF, QSize, Qt
from PyQt5.QtGui import QColor, QFont, QPainter, QPainterPath, QPen
from PyQt5.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from messenger.client.ui import style
from messenger.client.ui.chat_list import (
    FEED_KIND,
    GROUP,
    ITEM_ROLE,
    NOTICES_KIND,
    PERSON,
    ChatItem,
    group_words,
)
from messenger.client.ui.messages import format_list_time

HEIGHT = 64
AVATAR = 46


def preview_line(item: ChatItem, me: str, words: str) -> tuple[str, bool]:
    """The second line of a row and whether it is a message (else a state, greyed).
    ``words``: what is known of a person's presence when there is nothing to preview."""
    record = item.record
    if item.group is not None and item.group.gone:
        return group_words(item.group), False
    if not record.preview:
        if item.kind == PERSON:
            return words, False
        if item.group is not None:
            return group_words(item.group), False
        return ("No posts yet" if item.kind == FEED_KIND else "No service messages"), False
    who = record.preview_from
    if who and who.lower() == me.lower():
        return f"You: {record.preview}", True
    if item.kind in (FEED_KIND, GROUP) and who:
        return f"{who}: {record.preview}", True
    return record.preview, True


def paint_muted(painter: QPainter, rect: QRectF, colour: QColor) -> None:
    """A loudspeaker with a stroke through it."""
    painter.save()
    painter.setRenderHint(QPainter.Antialiasing)
    pen = QPen(colour, 1.4)
    painter.setPen(pen)
    painter.setBrush(colour)
    w, h, x, y = rect.width(), rect.height(), rect.left(), rect.top()
    body = QPainterPath()
    body.moveTo(x + w * 0.1, y + h * 0.38)
    body.lineTo(x + w * 0.3, y + h * 0.38)
    body.lineTo(x + w * 0.55, y + h * 0.15)
    body.lineTo(x + w * 0.55, y + h * 0.85)
    body.lineTo(x + w * 0.3, y + h * 0.62)
    body.lineTo(x + w * 0.1, y + h * 0.62)
    body.closeSubpath()
    painter.drawPath(body)
    painter.drawLine(QPointF(x + w * 0.05, y + h * 0.95), QPointF(x + w * 0.95, y + h * 0.05))
    painter.restore()


def paint_symbol_avatar(painter: QPainter, rect: QRectF, colour: str, glyph: str) -> None:
    painter.save()
    painter.setRenderHint(QPainter.Antialiasing)
    painter.setPen(Qt.NoPen)
    painter.setBrush(QColor(colour))
    painter.drawEllipse(rect)
    font = QFont(painter.font())
    font.setPixelSize(int(rect.height() * 0.5))
    painter.setFont(font)
    painter.setPen(QColor("white"))
    painter.drawText(rect, Qt.AlignCenter, glyph)
    painter.restore()


class ChatRowDelegate(QStyledItemDelegate):
    """Paints a `ChatItem`; ``me`` tells own previews ("You: ...") apart."""

    def __init__(self, me: str, parent: Any = None) -> None:
        super().__init__(parent)
        self.me = me

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        return QSize(option.rect.width(), HEIGHT)

    @staticmethod
    def chat_list(index: QModelIndex) -> Any:
        """The `ChatListModel` behind ``index`` (through the sidebar's filter)."""
        model = index.model()
        return model.sourceModel() if hasattr(model, "sourceModel") else model

    def describe(self, index: QModelIndex) -> tuple[str | None, str, bool]:
        """What the row shows of a chat: the presence dot (None: none, presence is not
        known), the second line, and whether that line is a message (else a state)."""
        item: ChatItem = index.data(ITEM_ROLE)
        model = self.chat_list(index)
        known = (item.kind == PERSON and model.connected and item.is_contact
                 and not item.blocked)
        text, is_message = preview_line(item, self.me, model.presence_words(item))
        return (item.status if known else None), text, is_message

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex) -> None:
        item: ChatItem | None = index.data(ITEM_ROLE)
        if item is None:
            return
        dot, line, is_message = self.describe(index)
        painter.save()
        painter.setRenderHint(QPainter.Antialiasing)
        rect = QRectF(option.rect).adjusted(6, 2, -6, -2)
        selected = bool(option.state & QStyle.State_Selected)
        if selected or option.state & QStyle.State_MouseOver:
            path = QPainterPath()
            path.addRoundedRect(rect, 8, 8)
            painter.fillPath(path, QColor(style.ACCENT_SOFT if selected else style.HOVER))
        avatar = QRectF(rect.left() + 6, rect.center().y() - AVATAR / 2, AVATAR, AVATAR)
        self._avatar(painter, avatar, item, dot)
        left = avatar.right() + 12
        right = rect.right() - 10
        small = QFont(option.font)
        small.setPointSizeF(max(7.0, option.font.pointSizeF() - 1.5))
        top = QRectF(left, rect.top() + 9, right - left, 22)
        when = format_list_time(item.record.last_time, time.time()) \
            if item.record.last_time else ""
        painter.setFont(small)
        time_width = painter.fontMetrics().horizontalAdvance(when) + (8 if when else 0)
        painter.setPen(QColor(style.ACCENT if item.unread and not item.muted else style.MUTED))
        painter.drawText(top, Qt.AlignRight | Qt.AlignVCenter, when)
        title_font = QFont(option.font)
        title_font.setBold(True)
        painter.setFont(title_font)
        painter.setPen(QColor(style.TEXT))
        title_width = top.width() - time_width - (18 if item.muted else 0)
        title = painter.fontMetrics().elidedText(item.title, Qt.ElideRight, int(title_width))
        painter.drawText(QRectF(left, top.top(), title_width, top.height()),
                         Qt.AlignLeft | Qt.AlignVCenter, title)
        if item.muted:
            mark = QRectF(left + painter.fontMetrics().horizontalAdvance(title) + 6,
                          top.center().y() - 6, 12, 12)
            paint_muted(painter, mark, QColor(style.MUTED))
        self._second_line(painter, option, item, (line, is_message),
                          QRectF(left, rect.top() + 33, right - left, 20))
        painter.restore()

    @staticmethod
    def _avatar(painter: QPainter, rect: QRectF, item: ChatItem, dot: str | None) -> None:
        if item.kind == FEED_KIND:
            paint_symbol_avatar(painter, rect, style.ACCENT, "⌂")
        elif item.kind == NOTICES_KIND:
            paint_symbol_avatar(painter, rect, "#64748b", "i")
        elif item.group is not None and (item.group.announce_only or item.group.gone):
            paint_symbol_avatar(painter, rect, style.MUTED if item.group.gone else
                                style.avatar_colour(item.title).name(), "📢"
                                if item.group.announce_only else style.initials(item.title))
        else:
            style.paint_avatar(painter, rect, item.title, dot)

    @staticmethod
    def _second_line(painter: QPainter, option: QStyleOptionViewItem, item: ChatItem,
                     line: tuple[str, bool], rect: QRectF) -> None:
        small = QFont(option.font)
        small.setPointSizeF(max(7.0, option.font.pointSizeF() - 1))
        painter.setFont(small)
        badge_width = 0.0
        if item.unread:
            label = str(item.unread) if item.unread < 1000 else "999+"
            bold = QFont(small)
            bold.setBold(True)
            painter.setFont(bold)
            badge_width = max(22.0, painter.fontMetrics().horizontalAdvance(label) + 12.0)
            badge = QRectF(rect.right() - badge_width, rect.center().y() - 11, badge_width, 22)
            painter.setPen(Qt.NoPen)
            painter.setBrush(QColor(style.MUTED if item.muted else style.ACCENT))
            painter.drawRoundedRect(badge, 11, 11)
            painter.setPen(QColor("white"))
            painter.drawText(badge, Qt.AlignCenter, label)
            painter.setFont(small)
        if item.mentions:
            bold = QFont(small)
            bold.setBold(True)
            painter.setFont(bold)
            mark = QRectF(rect.right() - badge_width - (30 if badge_width else 22),
                          rect.center().y() - 11, 22, 22)
            painter.setPen(Qt.NoPen)
            painter.setBrush(QColor(style.ACCENT))
            painter.drawEllipse(mark)
            painter.setPen(QColor("white"))
            painter.drawText(mark, Qt.AlignCenter, "@")
            badge_width += 30 if badge_width else 22
            painter.setFont(small)
        text, is_message = line
        online = not is_message and item.kind == PERSON and text == "Online"
        painter.setPen(QColor(style.SUCCESS if online else style.MUTED))
        width = rect.width() - badge_width - (8 if badge_width else 0)
        painter.drawText(QRectF(rect.left(), rect.top(), width, rect.height()),
                         Qt.AlignLeft | Qt.AlignVCenter,
                         painter.fontMetrics().elidedText(text, Qt.ElideRight, int(width)))
