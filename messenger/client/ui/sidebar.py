"""The left side of the main window: who you are (presence, roles), the main menu, a field
that narrows the chat list as you type (Ctrl+K), and the chat list itself."""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import QModelIndex, QSortFilterProxyModel, Qt, pyqtSignal
from PyQt5.QtGui import QIcon
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from messenger.client.ui import style
from messenger.client.ui.chat_list import ITEM_ROLE
from messenger.client.ui.chat_rows import ChatRowDelegate
from messenger.client.ui.widgets import Avatar, ElidedLabel


class Sidebar(QWidget):
    chat_activated = pyqtSignal(str)                 # a chat's key
    context_requested = pyqtSignal(str, object)      # a chat's key, the global position
    presence_chosen = pyqtSignal(str)

    def __init__(self, me: str, model: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        style.named(self, "sidebar")
        self.setAttribute(Qt.WA_StyledBackground, True)
        self.setMinimumWidth(260)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 8)
        layout.setSpacing(8)
        layout.addLayout(self._profile(me))

        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Search chats  (Ctrl+K)")
        self.filter.setClearButtonEnabled(True)
        self.filter.setAccessibleName("Search chats")
        layout.addWidget(self.filter)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(model)
        self.proxy.setFilterCaseSensitivity(Qt.CaseInsensitive)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.filter.returnPressed.connect(self.open_first_match)

        self.view = QListView()
        self.view.setObjectName("chats")
        self.view.setModel(self.proxy)
        self.delegate = ChatRowDelegate(me, self.view)
        self.view.setItemDelegate(self.delegate)
        self.view.setMouseTracking(True)
        self.view.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.view.setSelectionMode(QAbstractItemView.SingleSelection)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.view.setContextMenuPolicy(Qt.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._context_menu)
        self.view.clicked.connect(self._activated)
        self.view.activated.connect(self._activated)
        self.view.setAccessibleName("Chats")
        layout.addWidget(self.view, 1)
        self.empty_note = style.named(QLabel("No chat matches. Find people on the server"
                                             " with Ctrl+F."), "muted")
        self.empty_note.setWordWrap(True)
        self.empty_note.hide()
        layout.addWidget(self.empty_note)
        buttons = QHBoxLayout()
        buttons.setSpacing(8)
        self.find_button = style.set_kind(QPushButton("Find people…"), "primary")
        self.find_button.setToolTip("Search for people and add them as contacts (Ctrl+F)")
        buttons.addWidget(self.find_button, 1)
        self.new_group_button = QPushButton("New group…")
        self.new_group_button.setToolTip("A group or an announcement channel with people"
                                         " you choose")
        buttons.addWidget(self.new_group_button, 1)
        layout.addLayout(buttons)
        self.proxy.rowsInserted.connect(self._update_empty)
        self.proxy.rowsRemoved.connect(self._update_empty)
        self.proxy.modelReset.connect(self._update_empty)
        self.proxy.layoutChanged.connect(self._update_empty)

    def _profile(self, me: str) -> QHBoxLayout:
        profile = QHBoxLayout()
        profile.setSpacing(8)
        self.menu_button = style.set_kind(QToolButton(), "icon")
        self.menu_button.setText("☰")
        self.menu_button.setToolTip("Menu: find people, settings, shortcuts, log out")
        self.menu_button.setAccessibleName("Menu")
        self.menu_button.setPopupMode(QToolButton.InstantPopup)
        profile.addWidget(self.menu_button)
        self.avatar = Avatar(me, 38)
        self.avatar.set_presence("online")
        profile.addWidget(self.avatar)
        names = QVBoxLayout()
        names.setSpacing(1)
        self.name_label = style.named(ElidedLabel(me), "heading")
        names.addWidget(self.name_label)
        self.roles_label = style.named(ElidedLabel(""), "muted")
        names.addWidget(self.roles_label)
        profile.addLayout(names, 1)
        self.presence_box = QComboBox()
        for status in ("online", "away"):
            self.presence_box.addItem(QIcon(style.dot_pixmap(style.PRESENCE_COLOURS[status])),
                                      style.PRESENCE_WORDS[status], status)
        self.presence_box.setToolTip("Your presence, as your contacts see it")
        self.presence_box.setAccessibleName("Your presence")
        self.presence_box.activated.connect(
            lambda index: self.presence_chosen.emit(self.presence_box.itemData(index)))
        profile.addWidget(self.presence_box)
        return profile

    def set_roles(self, admin: bool, premium: bool) -> None:
        roles = [word for word, has in (("administrator", admin), ("premium", premium))
                 if has]
        self.roles_label.set_full_text(" · ".join(roles) if roles else "member")

    # -- the list -------------------------------------------------------------------------

    def key_at(self, index: QModelIndex) -> str | None:
        item = index.data(ITEM_ROLE) if index.isValid() else None
        return item.key if item is not None else None

    def keys_in_order(self) -> list[str]:
        """The chats as listed now (after the filter)."""
        keys = []
        for row in range(self.proxy.rowCount()):
            key = self.key_at(self.proxy.index(row, 0))
            if key is not None:
                keys.append(key)
        return keys

    def select(self, key: str | None) -> None:
        """Show ``key`` as the open chat (None: no selection)."""
        selection = self.view.selectionModel()
        if key is None:
            selection.clearSelection()
            self.view.setCurrentIndex(QModelIndex())
            return
        for row in range(self.proxy.rowCount()):
            index = self.proxy.index(row, 0)
            if self.key_at(index) == key:
                self.view.setCurrentIndex(index)
                self.view.scrollTo(index)
                return

    def open_first_match(self) -> None:
        keys = self.keys_in_order()
        if keys:
            self.chat_activated.emit(keys[0])

    def _activated(self, index: QModelIndex) -> None:
        key = self.key_at(index)
        if key is not None:
            self.chat_activated.emit(key)

    def _context_menu(self, position: Any) -> None:
        key = self.key_at(self.view.indexAt(position))
        if key is not None:
            self.context_requested.emit(key, self.view.viewport().mapToGlobal(position))

    def _update_empty(self, *_: Any) -> None:
        self.empty_note.setVisible(self.proxy.rowCount() == 0 and bool(self.filter.text()))
