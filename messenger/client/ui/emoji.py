"""The composer's emoji picker: a popup of the emoji people use most, by category; a
click puts one at the cursor and the popup stays open for the next (Esc or a click
outside closes it). Symbols older than emoji that the text font draws itself, in black
(❤, ✌, ☀: Qt 5 ignores the emoji presentation selector), are left out, so that what is
picked looks in the message as it did in the picker.

Emoji are drawn by the system's colour emoji font (Debian's fonts-noto-color-emoji, in
./dev's APT_PACKAGES): without one they show as empty boxes. `has_colour_emoji` tells
whether one is installed.
"""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import QPoint, Qt, pyqtSignal
from PyQt5.QtGui import QFont, QFontDatabase, QFontMetrics
from PyQt5.QtWidgets import (
    QApplication,
    QFrame,
    QGridLayout,
    QScrollArea,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from messenger.client.ui import style

COLUMNS = 8
EMOJI_FONTS = ("Noto Color Emoji", "Apple Color Emoji", "Segoe UI Emoji", "Twemoji")

CATEGORIES: dict[str, str] = {
    "😀": "😀😃😄😁😆😅😂🤣🙂🙃😉😊😇🥰😍🤩😘😗😚😙😋😛😜🤪😝🤑🤗🤭🤫🤔🤐🤨"
          "😐😑😶😏😒🙄😬😌😔😪🤤😴😷🤒🤕🥵🥶😵🤯🤠🥳😎🤓🧐😕😟🙁😮😯😲😳🥺"
          "😦😧😨😰😥😢😭😱😖😣😞😓😩😫🥱😤😡😠🤬",
    "👍": "👍👎👌🤌🤏✌🤞🤟🤘🤙👈👉👆👇☝✋🤚🖐🖖👋👏🙌👐🤲🙏✍💪🦾🤝",
    "❤": "❤🧡💛💚💙💜🤎🖤🤍💔❣💕💞💓💗💖💘💝💯💢💥💫💦💨🕳💬💭💤",
    "🎉": "🎉🎊🎈🎁🎂🏆🥇🥈🥉⚽🏀🏈⚾🎾🏐🎮🎲🧩🎨🎬🎤🎧🎵🎶🎹🥁🎸📚📖✏📝📎📌"
          "📅📈📉💡🔍🔒🔑⏰⌛📢📣🔔💻📱☎✉📦🧮",
    "🍕": "🍏🍎🍐🍊🍋🍌🍉🍇🍓🫐🍒🍑🥭🍍🥥🥝🍅🥑🥦🌽🥕🥐🍞🧀🍳🥞🍔🍟🍕🌭🥪🌮🍝🍜"
          "🍣🍦🍩🍪🎂🍫🍿☕🍵🍺🍷🥤",
    "🌍": "🌍🌞🌝🌛⭐🌟⚡🔥🌈☀⛅☁🌧❄☃🌊🌸🌻🌹🌷🌱🌲🌴🍀🍁🐶🐱🐭🐰🦊🐻🐼🐨🐯🦁🐮🐷"
          "🐸🐵🐔🐧🐦🦄🐝🦋🐢🐬🐳",
    "✅": "✅☑✔❌❎➕➖❓❗⚠🚫⛔🔴🟠🟡🟢🔵🟣⚫⚪⬆⬇⬅➡↩↪🔁🔄🆗🆕🆒",
}


def has_colour_emoji() -> bool:
    """Is a colour emoji font installed (else emoji show as empty boxes)?"""
    families = set(QFontDatabase().families())
    return any(name in families for name in EMOJI_FONTS)


def emoji_font(size: float) -> QFont:
    font = QFont()
    font.setFamilies([*EMOJI_FONTS])
    font.setPointSizeF(size)
    return font


class EmojiPicker(QFrame):
    """A popup of emoji buttons in tabs; ``chosen`` carries the one clicked."""

    chosen = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.Popup)
        style.named(self, "emojiPicker")
        self.setFrameShape(QFrame.StyledPanel)
        self.setAccessibleName("Emoji")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        layout.addWidget(self.tabs)
        self.buttons: dict[str, QToolButton] = {}
        for icon, emoji in CATEGORIES.items():
            self.tabs.addTab(self._page(emoji), icon)
        self.tabs.tabBar().setFont(emoji_font(13))
        self.resize(max(COLUMNS * 40 + 40, self.tabs.tabBar().sizeHint().width() + 20), 300)

    def _page(self, emoji: str) -> QWidget:
        page = QWidget()
        grid = QGridLayout(page)
        grid.setSpacing(2)
        grid.setContentsMargins(2, 2, 2, 2)
        font = emoji_font(18)
        text_font = QFontMetrics(QApplication.font())
        shown = [c for c in emoji if ord(c) >= 0x1F000 or not text_font.inFontUcs4(ord(c))]
        for number, character in enumerate(shown):
            button = style.set_kind(QToolButton(), "emoji")
            button.setText(character)
            button.setFont(font)
            button.setFixedSize(38, 38)
            button.setAutoRaise(True)
            button.setAccessibleName(character)
            button.clicked.connect(lambda _=False, c=character: self.chosen.emit(c))
            grid.addWidget(button, number // COLUMNS, number % COLUMNS)
            self.buttons.setdefault(character, button)
        grid.setRowStretch(grid.rowCount(), 1)
        scroll = QScrollArea()
        scroll.setWidget(page)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        return scroll

    def popup_above(self, anchor: QWidget) -> None:
        """Open above ``anchor`` (the composer's emoji button), inside the screen."""
        corner = anchor.mapToGlobal(QPoint(anchor.width(), 0))
        x = max(0, corner.x() - self.width())
        y = max(0, corner.y() - self.height() - 4)
        self.move(x, y)
        self.show()
        self.raise_()


def insert_emoji(editor: Any, emoji: str) -> None:
    """Put ``emoji`` at the editor's cursor (replacing a selection), and focus it."""
    editor.textCursor().insertText(emoji)
    editor.setFocus()
