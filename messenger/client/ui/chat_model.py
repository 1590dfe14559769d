"""One conversation as a list model: stored messages by ``msg_id``, own ones pending
until acknowledged, and the bubbles that draw them."""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass
from typing import Any

from PyQt5.QtCore import QAbstractListModel, QModelIndex, QPointF, QRectF, QSize, Qt
from PyQt5.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QPainter,
    QPainterPath,
    QPen,
    QTextLayout,
    QTextOption,
)
from PyQt5.QtWidgets import QStyledItemDelegate, QStyleOptionViewItem

from messenger.client.ui import style
from messenger.client.ui.messages import format_clock, format_day

ENTRY_ROLE = Qt.UserRole + 10

RECEIVED = "received"
PENDING = "pending"
ACKED = "acked"
FAILED = "failed"

_order = itertools.count()


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

    # -- changes --------------------------------------------------------------------------

    def add_stored(self, msg_id: int, time: float, sender: str, text: str) -> bool:
        """A stored message (history page or live); False if it is here already."""
        if msg_id in self._msg_ids:
            return False
        own = sender.lower() == self.me.lower()
        self._insert(ChatEntry(msg_id, time, sender, text, own, ACKED if own else RECEIVED))
        return True

    def add_history(self, messages: list[dict[str, Any]]) -> int:
        """A ``history`` page (oldest first); returns how many were new."""
        added = 0
        for message in messages:
            try:
                added += self.add_stored(int(message["msg_id"]), float(message["time"]),
                                         str(message["from"]), str(message["message"]))
            except (KeyError, TypeError, ValueError):
                continue
        return added

    def add_outgoing(self, outgoing: Any) -> ChatEntry:
        """An own message just written (an `OutgoingMessage`), pending."""
        entry = ChatEntry(None, outgoing.created, self.me, outgoing.text, True, PENDING,
                          request_id=outgoing.request_id, seq=next(_order))
        self._insert(entry)
        self.update_outgoing(outgoing)       # it may have been settled already
        return entry

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


# -- drawing ------------------------------------------------------------------------------

PAD_X, PAD_Y = 12, 8            # inside a bubble
MARGIN_X, GAP = 16, 4           # bubble to the view's edge; between bubbles
DAY_HEIGHT = 36
RADIUS = 14


class BubbleDelegate(QStyledItemDelegate):
    """Own messages right in the accent colour, the other person's left in white; the
    time and (for own messages) sending / ✓ / not sent under the text; a day header
    when the day changes. Long texts wrap at word boundaries, or anywhere in a word
    longer than the line."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._layouts: dict[tuple[str, int, str], tuple[QTextLayout, float, float]] = {}

    # -- geometry -------------------------------------------------------------------------

    def _fonts(self, option: QStyleOptionViewItem) -> tuple[QFont, QFont]:
        text_font = QFont(option.font)
        small = QFont(option.font)
        small.setPointSizeF(max(7.0, option.font.pointSizeF() - 1.5))
        return text_font, small

    def _text_layout(self, text: str, font: QFont, width: int
                     ) -> tuple[QTextLayout, float, float]:
        key = (text, width, font.key())
        cached = self._layouts.get(key)
        if cached is not None:
            return cached
        layout = QTextLayout(text.replace("\n", "\u2028"), font)
        option = QTextOption()
        option.setWrapMode(QTextOption.WrapAtWordBoundaryOrAnywhere)
        layout.setTextOption(option)
        layout.setCacheEnabled(True)
        height = 0.0
        natural = 0.0
        leading = QFontMetrics(font).leading()
        layout.beginLayout()
        while True:
            line = layout.createLine()
            if not line.isValid():
                break
            line.setLineWidth(width)
            height += leading
            line.setPosition(QPointF(0, height))
            height += line.height()
            natural = max(natural, line.naturalTextWidth())
        layout.endLayout()
        if len(self._layouts) > 2000:
            self._layouts.clear()
        self._layouts[key] = (layout, natural, height)
        return layout, natural, height

    def _show_day(self, index: QModelIndex) -> bool:
        entry = index.data(ENTRY_ROLE)
        if index.row() == 0:
            return True
        previous = index.model().index(index.row() - 1, 0).data(ENTRY_ROLE)
        return previous is None or format_day(previous.time) != format_day(entry.time)

    def _footer(self, entry: ChatEntry) -> str:
        clock = format_clock(entry.time)
        if not entry.own:
            return clock
        if entry.status == PENDING:
            return f"{clock}  sending…"
        if entry.status == FAILED:
            return f"not sent: {entry.error}" if entry.error else "not sent"
        return f"{clock}  ✓"

    def _geometry(self, option: QStyleOptionViewItem, index: QModelIndex
                  ) -> tuple[ChatEntry, bool, QTextLayout, QRectF, float]:
        entry: ChatEntry = index.data(ENTRY_ROLE)
        text_font, small = self._fonts(option)
        view_width = max(200, option.rect.width())
        max_text = int(min(640, view_width * 0.68)) - 2 * PAD_X
        layout, natural, text_height = self._text_layout(entry.text, text_font, max_text)
        footer_width = QFontMetrics(small).horizontalAdvance(self._footer(entry))
        footer_height = QFontMetrics(small).height()
        width = min(max(natural, footer_width + 2), max_text) + 2 * PAD_X
        height = text_height + footer_height + 2 * PAD_Y + 2
        show_day = self._show_day(index)
        top = option.rect.top() + (DAY_HEIGHT if show_day else 0) + GAP
        left = (option.rect.left() + view_width - MARGIN_X - width if entry.own
                else option.rect.left() + MARGIN_X)
        return entry, show_day, layout, QRectF(left, top, width, height), footer_height

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        if index.data(ENTRY_ROLE) is None:
            return QSize(0, 0)
        option = QStyleOptionViewItem(option)
        option.rect.setTop(0)
        if self.parent() is not None and hasattr(self.parent(), "viewport"):
            option.rect.setWidth(self.parent().viewport().width())
        _, show_day, _, bubble, _ = self._geometry(option, index)
        return QSize(option.rect.width(), int(bubble.bottom() + GAP + 1))

    # -- painting -------------------------------------------------------------------------

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex) -> None:
        if index.data(ENTRY_ROLE) is None:
            return
        entry, show_day, layout, bubble, footer_height = self._geometry(option, index)
        text_font, small = self._fonts(option)
        painter.save()
        painter.setRenderHint(QPainter.Antialiasing)
        if show_day:
            self._paint_day(painter, option, small, format_day(entry.time))
        path = QPainterPath()
        path.addRoundedRect(bubble, RADIUS, RADIUS)
        if entry.own:
            fill = {PENDING: style.OWN_PENDING, FAILED: style.DANGER_SOFT}.get(
                entry.status, style.OWN_BUBBLE)
            painter.fillPath(path, QColor(fill))
            if entry.status == FAILED:
                painter.setBrush(Qt.NoBrush)
                painter.setPen(QPen(QColor(style.DANGER), 1.2))
                painter.drawPath(path)
            text_colour = QColor(style.TEXT if entry.status == FAILED else "white")
            footer_colour = QColor(style.DANGER if entry.status == FAILED else "#dbe6fd")
        else:
            painter.fillPath(path, QColor(style.OTHER_BUBBLE))
            painter.setBrush(Qt.NoBrush)
            painter.setPen(QPen(QColor(style.BORDER), 1))
            painter.drawPath(path)
            text_colour = QColor(style.TEXT)
            footer_colour = QColor(style.MUTED)
        painter.setPen(text_colour)
        painter.setFont(text_font)
        layout.draw(painter, QPointF(bubble.left() + PAD_X, bubble.top() + PAD_Y))
        painter.setFont(small)
        painter.setPen(footer_colour)
        footer = QRectF(bubble.left() + PAD_X, bubble.bottom() - PAD_Y - footer_height,
                        bubble.width() - 2 * PAD_X, footer_height)
        painter.drawText(footer, Qt.AlignRight | Qt.AlignVCenter, self._footer(entry))
        painter.restore()

    def _paint_day(self, painter: QPainter, option: QStyleOptionViewItem, font: QFont,
                   text: str) -> None:
        painter.setFont(font)
        width = painter.fontMetrics().horizontalAdvance(text) + 24
        pill = QRectF(option.rect.center().x() - width / 2, option.rect.top() + 10,
                      width, 22)
        painter.setPen(Qt.NoPen)
        painter.setBrush(QColor("#dde3ec"))
        painter.drawRoundedRect(pill, 11, 11)
        painter.setPen(QColor("#4b5563"))
        painter.drawText(pill, Qt.AlignCenter, text)
