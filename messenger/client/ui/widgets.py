"""Small widgets the windows share: a spinner, a message banner and a floating one (toast),
an avatar, a compose box, a label that elides."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from PyQt5 import sip
from PyQt5.QtCore import QEvent, QRectF, QSize, Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QColor, QKeyEvent, QPainter, QPen
from PyQt5.QtWidgets import (
    QFrame,
    QLabel,
    QPlainTextEdit,
    QSizePolicy,
    QToolButton,
    QWidget,
)

from messenger.client.ui import style

F = TypeVar("F", bound=Callable[..., Any])


def if_alive(method: F) -> F:
    """For a widget's reply callbacks: a reply that comes after the window was closed
    and deleted (a logout, back to the login window) is dropped."""
    @functools.wraps(method)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        if sip.isdeleted(self):
            return None
        return method(self, *args, **kwargs)
    return guarded  # type: ignore[return-value]


class Spinner(QWidget):
    """A turning arc: shows that something is under way (and that nothing is frozen)."""

    def __init__(self, size: int = 22, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._angle = 0
        self._timer = QTimer(self)
        self._timer.setInterval(40)
        self._timer.timeout.connect(self._turn)
        self.setFixedSize(size, size)
        self.hide()

    @property
    def spinning(self) -> bool:
        return self._timer.isActive()

    def start(self) -> None:
        self._timer.start()
        self.show()

    def stop(self) -> None:
        self._timer.stop()
        self.hide()

    def _turn(self) -> None:
        self._angle = (self._angle + 30) % 360
        self.update()

    def paintEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        width = max(2.0, self.width() / 8)
        rect = QRectF(width, width, self.width() - 2 * width, self.height() - 2 * width)
        painter.setPen(QPen(QColor(style.BORDER), width))
        painter.drawEllipse(rect)
        pen = QPen(QColor(style.ACCENT), width)
        pen.setCapStyle(Qt.RoundCap)
        painter.setPen(pen)
        painter.drawArc(rect, -self._angle * 16, 100 * 16)


class Banner(QLabel):
    """A sentence for the user: an error (red), information (blue), or hidden."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setMargin(9)
        self.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Minimum)
        self.kind = ""
        self.hide()

    def show_error(self, text: str) -> None:
        self._show(text, "error")

    def show_info(self, text: str) -> None:
        self._show(text, "info")

    def clear_message(self) -> None:
        self.kind = ""
        self.setText("")
        self.hide()

    def _show(self, text: str, kind: str) -> None:
        self.kind = kind
        self.setObjectName(kind)
        self.setText(text)
        self.style().unpolish(self)
        self.style().polish(self)
        self.show()


class Avatar(QWidget):
    """A round avatar with initials and an optional presence dot."""

    def __init__(self, name: str = "", size: int = 40, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._name = name
        self._presence: str | None = None
        self.setFixedSize(size, size)

    def set_name(self, name: str) -> None:
        self._name = name
        self.update()

    def set_presence(self, presence: str | None) -> None:
        self._presence = presence
        self.update()

    def paintEvent(self, event: Any) -> None:  # noqa: N802
        painter = QPainter(self)
        style.paint_avatar(painter, QRectF(1, 1, self.width() - 2, self.height() - 2),
                           self._name or "?", self._presence)


class ComposeEdit(QPlainTextEdit):
    """Where a message is written: Enter sends, Shift+Enter starts a new line; grows
    with its text up to ``max_lines``."""

    submitted = pyqtSignal()

    def __init__(self, placeholder: str = "", max_lines: int = 6,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setPlaceholderText(placeholder)
        self.setTabChangesFocus(True)
        self.setLineWrapMode(QPlainTextEdit.WidgetWidth)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self._max_lines = max_lines
        self.document().contentsChanged.connect(self._fit)
        self._fit()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() in (Qt.Key_Return, Qt.Key_Enter):
            if event.modifiers() & Qt.ShiftModifier:
                self.insertPlainText("\n")
            else:
                self.submitted.emit()
            event.accept()
            return
        super().keyPressEvent(event)

    def _fit(self) -> None:
        line = self.fontMetrics().lineSpacing()
        wanted = max(1, int(self.document().size().height()))
        lines = min(self._max_lines, wanted)
        margins = self.contentsMargins()
        height = lines * line + int(2 * self.document().documentMargin()) + \
            margins.top() + margins.bottom() + 14
        self.setFixedHeight(max(height, 38))
        self.setVerticalScrollBarPolicy(Qt.ScrollBarAsNeeded if wanted > self._max_lines
                                        else Qt.ScrollBarAlwaysOff)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(300, self.height())


class ElidedLabel(QLabel):
    """One line that shortens itself with "…" when narrower than its text (the whole
    text is the tooltip): a long name never pushes buttons out of a header, and never
    shows cut off in the middle of a letter."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Preferred)
        self.set_full_text(text)

    def full_text(self) -> str:
        return self._full

    def set_full_text(self, text: str) -> None:
        self._full = text
        self._elide()

    def resizeEvent(self, event: Any) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        width = max(0, self.contentsRect().width())
        shown = self.fontMetrics().elidedText(self._full, Qt.ElideRight, width)
        self.setText(shown)
        self.setToolTip(self._full if shown != self._full else "")

    def sizeHint(self) -> QSize:  # noqa: N802
        margins = self.contentsMargins()
        frame = margins.left() + margins.right() + 2 * self.margin() + 2 * self.frameWidth()
        return QSize(self.fontMetrics().horizontalAdvance(self._full) + frame + 4,
                     super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(24, super().minimumSizeHint().height())


class Toast(QFrame):
    """A sentence floating over the bottom of its host widget: it covers what is below
    instead of pushing it (no layout jumps). Information goes away by itself after a few
    seconds; an error stays until closed (✕) or replaced."""

    INFO_SECONDS = 6

    def __init__(self, host: QWidget) -> None:
        super().__init__(host)
        self.host = host
        self.kind = ""
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.close_button = QToolButton(self)
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Close")
        self.close_button.clicked.connect(self.clear_message)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.clear_message)
        host.installEventFilter(self)
        self.hide()

    def text(self) -> str:
        return self.label.text()

    def show_error(self, text: str) -> None:
        self._show(text, "error")

    def show_info(self, text: str) -> None:
        self._show(text, "info")
        self._timer.start(self.INFO_SECONDS * 1000)

    def clear_message(self) -> None:
        self._timer.stop()
        self.kind = ""
        self.label.setText("")
        self.hide()

    def _show(self, text: str, kind: str) -> None:
        self._timer.stop()
        self.kind = kind
        self.setObjectName(kind)
        self.label.setText(text)
        self.style().unpolish(self)
        self.style().polish(self)
        self._place()
        self.show()
        self.raise_()

    def eventFilter(self, watched: Any, event: Any) -> bool:  # noqa: N802
        if watched is self.host and event.type() == QEvent.Resize and self.kind:
            self._place()
        return False

    def _place(self) -> None:
        margin = 10
        width = max(120, self.host.width() - 2 * margin)
        button = self.close_button.sizeHint()
        text_width = width - button.width() - 30
        height = max(button.height(), self.label.heightForWidth(text_width)) + 18
        self.setGeometry(margin, self.host.height() - height - margin, width, height)
        self.label.setGeometry(12, 9, text_width, height - 18)
        self.close_button.setGeometry(width - button.width() - 8,
                                      (height - button.height()) // 2,
                                      button.width(), button.height())
