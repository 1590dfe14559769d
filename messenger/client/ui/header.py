"""The header of every pane on the right (a conversation, the feed, the service
messages): a back arrow in narrow mode, an avatar, the title and a status line (both
eliding, so a long name never pushes the buttons out), then the pane's own buttons."""

from __future__ import annotations

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import QHBoxLayout, QToolButton, QVBoxLayout, QWidget

from messenger.client.ui import style
from messenger.client.ui.widgets import Avatar, ElidedLabel, Spinner

HEIGHT = 60


class PaneHeader(QWidget):
    back_requested = pyqtSignal()

    def __init__(self, title: str, parent: QWidget | None = None,
                 avatar_name: str | None = None) -> None:
        super().__init__(parent)
        style.named(self, "header")
        self.setAttribute(Qt.WA_StyledBackground, True)
        self.setFixedHeight(HEIGHT)
        self.row = QHBoxLayout(self)
        self.row.setContentsMargins(8, 8, 12, 8)
        self.row.setSpacing(8)
        self.back_button = style.set_kind(QToolButton(), "icon")
        self.back_button.setText("←")
        self.back_button.setToolTip("Back to the chats (Esc)")
        self.back_button.setAccessibleName("Back")
        self.back_button.clicked.connect(self.back_requested)
        self.back_button.hide()
        self.row.addWidget(self.back_button)
        self.avatar = Avatar(avatar_name or title, 40)
        self.row.addSpacing(4)
        self.row.addWidget(self.avatar)
        if avatar_name is None:
            self.avatar.hide()          # (after it has a parent: else it is a window)
        names = QVBoxLayout()
        names.setSpacing(0)
        self.title = style.named(ElidedLabel(title), "heading")
        names.addWidget(self.title)
        self.subtitle = style.named(ElidedLabel(""), "muted")
        names.addWidget(self.subtitle)
        self.row.addLayout(names, 1)
        self.spinner = Spinner(18)
        self.row.addWidget(self.spinner)

    def add(self, widget: QWidget) -> QWidget:
        self.row.addWidget(widget)
        return widget

    def set_narrow(self, narrow: bool) -> None:
        self.back_button.setVisible(narrow)

    def set_subtitle(self, text: str, highlight: bool = False) -> None:
        self.subtitle.set_full_text(text)
        if self.subtitle.property("live") != highlight:
            # A property the application's style sheet selects on (a style sheet of the
            # label's own would keep the old colour after a theme switch).
            self.subtitle.setProperty("live", highlight)
            self.subtitle.style().unpolish(self.subtitle)
            self.subtitle.style().polish(self.subtitle)


def icon_button(text: str, tip: str) -> QToolButton:
    """A flat header button with a symbol (its name for screen readers is the tip)."""
    button = style.set_kind(QToolButton(), "icon")
    button.setText(text)
    button.setToolTip(tip)
    button.setAccessibleName(tip)
    button.setFocusPolicy(Qt.TabFocus)
    return button
