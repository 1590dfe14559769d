"""Small widgets the windows share: a spinner, a message banner, an avatar, a compose box."""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import QRectF, QSize, Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QColor, QKeyEvent, QPainter, QPen
from PyQt5.QtWidgets import QLabel, QPlainTextEdit, QSizePolicy, QWidget

from messenger.client.ui import style


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
