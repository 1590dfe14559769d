"""The list of messages as objects: text selected with the mouse (across messages too),
Ctrl+C and Ctrl+A, a context menu per message, links that open on a click.

The bubbles are painted (`bubbles.BubbleDelegate`), not widgets, so a long history stays
cheap; selection is kept here as two (row, character) ends and drawn by the delegate.
Rows shift when a page of older messages arrives above: the ends follow them.
"""

from __future__ import annotations

import re
from typing import Any

from PyQt5.QtCore import QEvent, QModelIndex, QPoint, QPointF, Qt, QUrl, pyqtSignal
from PyQt5.QtGui import QDesktopServices, QGuiApplication, QKeySequence
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QListView,
    QMenu,
    QStyleOptionViewItem,
    QToolTip,
)

from messenger.client.ui.bubbles import BubbleDelegate
from messenger.client.ui.chat_model import ENTRY_ROLE, ChatEntry

End = tuple[int, int]                   # (row, character position)
WORD = re.compile(r"\w+|\S")


class MessageView(QListView):
    reply_requested = pyqtSignal(object)     # ChatEntry
    attachment_activated = pyqtSignal(object)  # ChatEntry: its file or image clicked
    quote_activated = pyqtSignal(object)     # ChatEntry: its quote clicked (jump to it)
    link_activated = pyqtSignal(str)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("chat")
        self.bubbles = BubbleDelegate(self)
        self.setItemDelegate(self.bubbles)
        self.setVerticalScrollMode(QAbstractItemView.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(24)
        self.setSelectionMode(QAbstractItemView.NoSelection)
        self.setResizeMode(QListView.Adjust)
        self.setUniformItemSizes(False)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setMouseTracking(True)
        self.setContextMenuPolicy(Qt.DefaultContextMenu)
        self.anchor: End | None = None
        self.cursor_end: End | None = None
        self._pressed: End | None = None
        self._dragged = False
        self.open_links = True                # tests turn the browser off
        self.menu: QMenu | None = None
        self.laying_out = False
        self.tooltip_for: Any = None          # ChatEntry -> str, or None
        self.menu_extras: Any = None          # (ChatEntry, QMenu) -> None: more actions
        self.thumbnail: Any = lambda entry: None   # ChatEntry -> QPixmap (images)

    def setModel(self, model: Any) -> None:  # noqa: N802
        super().setModel(model)
        model.rowsInserted.connect(self._rows_inserted)
        model.dataChanged.connect(lambda *_: self.scheduleDelayedItemsLayout())
        model.rowsRemoved.connect(self._rows_removed)
        model.modelReset.connect(self.clear_selection)

    def doItemsLayout(self) -> None:  # noqa: N802
        """Measure every row again, keeping what was on screen: the bottom if the view
        was at the bottom, else the same scroll position. ``laying_out`` tells scroll
        listeners that the moves meanwhile are not the user's."""
        bar = self.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        value = bar.value()
        self.laying_out = True
        try:
            super().doItemsLayout()
            bar.setValue(bar.maximum() if at_bottom else value)
        finally:
            self.laying_out = False

    def ensure_layout(self) -> None:
        """Measure the rows now (not at the next event loop turn)."""
        self.executeDelayedItemsLayout()

    def resizeEvent(self, event: Any) -> None:  # noqa: N802
        """Bubble heights depend on the width: measure them again."""
        super().resizeEvent(event)
        if event.oldSize().width() != event.size().width():
            self.scheduleDelayedItemsLayout()

    # -- selection ------------------------------------------------------------------------

    def ordered(self) -> tuple[End, End] | None:
        if self.anchor is None or self.cursor_end is None:
            return None
        return (self.anchor, self.cursor_end) if self.anchor <= self.cursor_end else \
            (self.cursor_end, self.anchor)

    def selection_range(self, row: int) -> tuple[int, int] | None:
        """The selected characters of ``row`` (for the delegate)."""
        ends = self.ordered()
        if ends is None or not ends[0][0] <= row <= ends[1][0]:
            return None
        entry = self._entry(row)
        length = len(entry.text) if entry is not None else 0
        start = ends[0][1] if row == ends[0][0] else 0
        end = ends[1][1] if row == ends[1][0] else length
        return start, end

    def selected_text(self) -> str:
        """The selected text; messages joined by line breaks."""
        ends = self.ordered()
        if ends is None:
            return ""
        parts = []
        for row in range(ends[0][0], ends[1][0] + 1):
            entry, span = self._entry(row), self.selection_range(row)
            if entry is not None and span is not None and span[1] > span[0]:
                parts.append(entry.text[span[0]:span[1]])
        return "\n".join(parts)

    def select(self, anchor: End, end: End) -> None:
        self.anchor, self.cursor_end = anchor, end
        self.viewport().update()

    def select_all(self) -> None:
        rows = self.model().rowCount() if self.model() is not None else 0
        if rows:
            last = self._entry(rows - 1)
            self.select((0, 0), (rows - 1, len(last.text) if last else 0))

    def clear_selection(self) -> None:
        self.anchor = self.cursor_end = None
        self.viewport().update()

    def copy(self, entry: ChatEntry | None = None) -> str:
        """Put the selection (or ``entry``'s whole text) on the clipboard."""
        text = self.selected_text() if entry is None else entry.text
        if text:
            QGuiApplication.clipboard().setText(text)
        return text

    def _rows_inserted(self, parent: QModelIndex, first: int, last: int) -> None:
        count = last - first + 1
        for name in ("anchor", "cursor_end"):
            end = getattr(self, name)
            if end is not None and end[0] >= first:
                setattr(self, name, (end[0] + count, end[1]))

    def _rows_removed(self, parent: QModelIndex, first: int, last: int) -> None:
        ends = [end for end in (self.anchor, self.cursor_end) if end is not None]
        if any(first <= end[0] <= last for end in ends):
            self.clear_selection()
            return
        count = last - first + 1
        for name in ("anchor", "cursor_end"):
            end = getattr(self, name)
            if end is not None and end[0] > last:
                setattr(self, name, (end[0] - count, end[1]))

    # -- where the mouse is ---------------------------------------------------------------

    def _entry(self, row: int) -> ChatEntry | None:
        model = self.model()
        return model.index(row, 0).data(ENTRY_ROLE) if model is not None else None

    def position_at(self, point: QPoint) -> tuple[End | None, bool]:
        """The (row, character) under ``point`` (the nearest one beside the text), and
        whether the point is on the text."""
        index = self.indexAt(point)
        if not index.isValid():
            rows = self.model().rowCount() if self.model() is not None else 0
            if not rows:
                return None, False
            first = self.visualRect(self.model().index(0, 0))
            row = 0 if point.y() < first.top() else rows - 1
            entry = self._entry(row)
            return (row, 0 if row == 0 and point.y() < first.top()
                    else len(entry.text) if entry else 0), False
        option = QStyleOptionViewItem(self.viewOptions())
        option.rect = self.visualRect(index)
        position, inside = self.bubbles.cursor_at(option, index, QPointF(point))
        return (index.row(), position), inside

    def media_at(self, point: QPoint) -> ChatEntry | None:
        """The message whose image or file card is under ``point``."""
        index = self.indexAt(point)
        entry = self._entry(index.row()) if index.isValid() else None
        if entry is None or entry.attachment is None:
            return None
        option = QStyleOptionViewItem(self.viewOptions())
        option.rect = self.visualRect(index)
        return entry if self.bubbles.media_at(option, index, QPointF(point)) else None

    def quote_at(self, point: QPoint) -> ChatEntry | None:
        """The reply whose quote is under ``point``."""
        index = self.indexAt(point)
        entry = self._entry(index.row()) if index.isValid() else None
        if entry is None or entry.reply_to is None:
            return None
        option = QStyleOptionViewItem(self.viewOptions())
        option.rect = self.visualRect(index)
        return entry if self.bubbles.quote_at(option, index, QPointF(point)) else None

    def link_at(self, point: QPoint) -> str | None:
        end, inside = self.position_at(point)
        if end is None or not inside:
            return None
        entry = self._entry(end[0])
        for start, stop, url in entry.links if entry is not None else ():
            if start <= end[1] < stop:
                return url
        return None

    # -- mouse and keys -------------------------------------------------------------------

    def mousePressEvent(self, event: Any) -> None:  # noqa: N802
        self.setFocus()
        if event.button() != Qt.LeftButton:
            super().mousePressEvent(event)
            return
        end, inside = self.position_at(event.pos())
        self._pressed, self._dragged = end, False
        if end is not None and inside:
            self.select(end, end)
        else:
            self.clear_selection()

    def mouseMoveEvent(self, event: Any) -> None:  # noqa: N802
        if self._pressed is not None:
            end, _ = self.position_at(event.pos())
            if end is not None:
                if self.anchor is None:
                    self.anchor = self._pressed
                self._dragged = self._dragged or end != self._pressed
                self.select(self.anchor, end)
            return
        link = self.link_at(event.pos()) or self.media_at(event.pos()) or \
            self.quote_at(event.pos())
        _, inside = self.position_at(event.pos())
        self.viewport().setCursor(Qt.PointingHandCursor if link else
                                  Qt.IBeamCursor if inside else Qt.ArrowCursor)

    def mouseReleaseEvent(self, event: Any) -> None:  # noqa: N802
        pressed, self._pressed = self._pressed, None
        if event.button() == Qt.LeftButton and pressed is not None and not self._dragged:
            entry = self.media_at(event.pos())
            if entry is not None:
                self.attachment_activated.emit(entry)
                return
            quoting = self.quote_at(event.pos())
            if quoting is not None:
                self.quote_activated.emit(quoting)
                return
            link = self.link_at(event.pos())
            if link:
                self.link_activated.emit(link)
                if self.open_links:
                    QDesktopServices.openUrl(QUrl(link))

    def mouseDoubleClickEvent(self, event: Any) -> None:  # noqa: N802
        end, inside = self.position_at(event.pos())
        entry = self._entry(end[0]) if end is not None else None
        if entry is None or not inside:
            return
        for match in WORD.finditer(entry.text):
            if match.start() <= end[1] <= match.end():
                self.select((end[0], match.start()), (end[0], match.end()))
                return

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802
        if event.matches(QKeySequence.Copy):
            self.copy()
        elif event.matches(QKeySequence.SelectAll):
            self.select_all()
        else:
            super().keyPressEvent(event)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.ShortcutOverride and (
                event.matches(QKeySequence.Copy) or event.matches(QKeySequence.SelectAll)):
            event.accept()                  # ours, not a window shortcut's
            return True
        return super().event(event)

    def viewportEvent(self, event: QEvent) -> bool:  # noqa: N802
        """A tooltip over a message, when the pane gives one (who read it, in a group)."""
        if event.type() == QEvent.ToolTip and self.tooltip_for is not None:
            entry = self._entry(self.indexAt(event.pos()).row())
            text = self.tooltip_for(entry) if entry is not None else ""
            if text:
                QToolTip.showText(event.globalPos(), text, self)
            else:
                QToolTip.hideText()
            return True
        return super().viewportEvent(event)

    # -- the context menu -----------------------------------------------------------------

    def message_menu(self, point: QPoint) -> QMenu | None:
        """The menu of the message under ``point`` (None over empty space)."""
        index = self.indexAt(point)
        entry: ChatEntry | None = index.data(ENTRY_ROLE) if index.isValid() else None
        if entry is None:
            return None
        menu = QMenu(self)
        selected = self.selected_text()
        if selected:
            menu.addAction("Copy selected text", self.copy)
        menu.addAction("Copy text", lambda: self.copy(entry))
        link = self.link_at(point)
        if link:
            menu.addAction("Copy link", lambda: QGuiApplication.clipboard().setText(link))
            menu.addAction("Open link", lambda: self._open(link))
        if self.menu_extras is not None:
            self.menu_extras(entry, menu)
        menu.addSeparator()
        reply = menu.addAction("Reply", lambda: self.reply_requested.emit(entry))
        reply.setEnabled(entry.msg_id is not None)
        menu.addAction("Select all", self.select_all)
        self.menu = menu
        return menu

    def contextMenuEvent(self, event: Any) -> None:  # noqa: N802
        menu = self.message_menu(event.pos())
        if menu is not None:
            menu.popup(event.globalPos())

    def _open(self, link: str) -> None:
        self.link_activated.emit(link)
        if self.open_links:
            QDesktopServices.openUrl(QUrl(link))
