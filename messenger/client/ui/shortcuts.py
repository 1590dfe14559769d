"""The keyboard shortcuts, in one table: the main window binds them from here and the help
dialog (F1, or Keyboard shortcuts in the menu) lists the same rows, so the two never
disagree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QShortcut,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from messenger.client.ui import style

# (name of the MainWindow method, keys, what it does)
MAIN_WINDOW = (
    ("jump_to_chat", ("Ctrl+K",), "Jump to a chat: type part of its name, Enter opens it"),
    ("open_search", ("Ctrl+F",), "Find people on the server (and add them)"),
    ("open_message_search", ("Ctrl+Shift+F",), "Search your messages (every conversation)"),
    ("previous_chat", ("Alt+Up",), "Open the chat above in the list"),
    ("next_chat", ("Alt+Down",), "Open the chat below in the list"),
    ("go_back", ("Esc",), "Back: close the chat (narrow window: back to the list)"),
    ("call_current", ("Ctrl+Shift+C",), "Call the person of the open chat"),
    ("toggle_mute_current", ("Ctrl+Shift+M",), "Mute or unmute the open chat"),
    ("open_admin", ("Ctrl+Shift+A",), "Administration (administrators only)"),
    ("open_preferences", ("Ctrl+,",), "Settings: theme, sound devices, blocked users"),
    ("show_shortcuts", ("F1", "Ctrl+/"), "This list of shortcuts"),
    ("request_quit", ("Ctrl+Q",), "Quit Messenger"),
)

# Keys handled by a widget itself, listed for completeness.
ELSEWHERE = (
    ("Enter", "In the composer: send"),
    ("Shift+Enter", "In the composer: new line"),
    ("Ctrl+C", "In a conversation: copy the selected text"),
    ("Ctrl+A", "In a conversation: select every message's text"),
    ("Right click", "On a message: copy, copy link, reply; on a chat: mute, block"),
    ("Enter / Ctrl+M / Ctrl+D", "Call window: accept / mute / hang up"),
    ("F5", "Administration: reload"),
)


def bind(window: QWidget, method: Callable[[str], Callable[[], object]]) -> list[QShortcut]:
    """Make the main window's shortcuts; ``method(name)`` gives the callable to run."""
    made = []
    for name, keys, _ in MAIN_WINDOW:
        for key in keys:
            shortcut = QShortcut(QKeySequence(key), window)
            shortcut.setContext(Qt.WindowShortcut)
            shortcut.activated.connect(method(name))
            made.append(shortcut)
    return made


def rows() -> list[tuple[str, str]]:
    listed = [(" or ".join(QKeySequence(k).toString(QKeySequence.NativeText) for k in keys),
               words) for _, keys, words in MAIN_WINDOW]
    return listed + list(ELSEWHERE)


class ShortcutsDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts — Messenger")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 18, 20, 14)
        layout.addWidget(style.named(QLabel("Keyboard shortcuts"), "heading"))
        entries = rows()
        self.table = QTableWidget(len(entries), 2)
        self.table.setHorizontalHeaderLabels(("Keys", "Does"))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.NoSelection)
        self.table.setShowGrid(False)
        self.table.setWordWrap(True)
        self.table.setFocusPolicy(Qt.NoFocus)
        for row, (keys, words) in enumerate(entries):
            key_item = QTableWidgetItem(keys)
            font = key_item.font()
            font.setBold(True)
            key_item.setFont(font)
            self.table.setItem(row, 0, key_item)
            self.table.setItem(row, 1, QTableWidgetItem(words))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.Stretch)
        header.sectionResized.connect(lambda *_: self.table.resizeRowsToContents())
        layout.addWidget(self.table, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.setMinimumSize(360, 300)
        self.resize(560, 520)

    def showEvent(self, event: Any) -> None:  # noqa: N802
        super().showEvent(event)
        self.table.resizeRowsToContents()       # the words wrap to the final width
