"""The main window's doors to the other windows: the main menu (☰), Find people, the
admin panel, the shortcuts, settings, and the call window. A mixin of `MainWindow`,
which provides ``client``, ``calls``, ``call_bridge``, ``notifier``, ``me``,
``address``, ``account`` and the signals it emits."""

from __future__ import annotations

from typing import Any

from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import QAction, QMenu

from messenger.client.calls import controller as calls
from messenger.client.ui.admin import AdminPanel
from messenger.client.ui.call_window import CallWindow
from messenger.client.ui.message_search import MessageSearchDialog
from messenger.client.ui.search import SearchDialog
from messenger.client.ui.shortcuts import ShortcutsDialog


def _keys(sequence: str) -> str:
    return QKeySequence(sequence).toString(QKeySequence.NativeText)


class WindowsMixin:
    client: Any
    calls: Any
    call_bridge: Any
    notifier: Any
    me: str
    address: str
    account: Any
    admin_action: QAction

    def init_windows(self) -> None:
        self.admin_panel: AdminPanel | None = None
        self.search_dialog: SearchDialog | None = None
        self.call_window: CallWindow | None = None
        self.shortcuts_dialog: ShortcutsDialog | None = None
        self.message_search: MessageSearchDialog | None = None

    def build_main_menu(self) -> QMenu:
        menu = QMenu(self)  # type: ignore[arg-type]
        # The keys are shown after a tab, not bound here: the window's shortcuts (the
        # `shortcuts` table) already are, and a key bound twice would do nothing.
        menu.addAction(f"Find people…\t{_keys('Ctrl+F')}", self.open_search)
        menu.addAction(f"Search messages…\t{_keys('Ctrl+Shift+F')}",
                       self.open_message_search)
        menu.addAction("New group…", self.open_new_group)  # type: ignore[attr-defined]
        self.admin_action = menu.addAction(f"Administration\t{_keys('Ctrl+Shift+A')}",
                                           self.open_admin)
        self.admin_action.setVisible(False)
        menu.addSeparator()
        menu.addAction(f"Settings…\t{_keys('Ctrl+,')}", self.open_preferences)
        menu.addAction("Server settings…", self.settings_requested)  # type: ignore[attr-defined]
        menu.addAction(f"Keyboard shortcuts\t{_keys('F1')}", self.show_shortcuts)
        menu.addSeparator()
        menu.addAction("Log out", self.logout_requested)  # type: ignore[attr-defined]
        menu.addAction(f"Quit\t{_keys('Ctrl+Q')}", self.request_quit)
        self.main_menu = menu
        return menu

    def request_quit(self) -> None:
        self.quit_requested.emit()  # type: ignore[attr-defined]

    def open_preferences(self) -> None:
        self.preferences_requested.emit()  # type: ignore[attr-defined]

    def show_shortcuts(self) -> ShortcutsDialog:
        if self.shortcuts_dialog is None:
            self.shortcuts_dialog = ShortcutsDialog(self)  # type: ignore[arg-type]
        self.shortcuts_dialog.show()
        self.shortcuts_dialog.raise_()
        return self.shortcuts_dialog

    def open_search(self) -> SearchDialog:
        if self.search_dialog is None:
            self.search_dialog = SearchDialog(self.client, self, self.address)  # type: ignore
            self.search_dialog.contact_added.connect(self._searched_contact_added)
        if not self.search_dialog.isVisible():
            self.search_dialog.reset()
        self.search_dialog.show()
        self.search_dialog.raise_()
        self.search_dialog.activateWindow()
        self.search_dialog.query.setFocus()
        return self.search_dialog

    def open_message_search(self) -> MessageSearchDialog:
        if self.message_search is None:
            names = self.conversations.state  # type: ignore[attr-defined]
            self.message_search = MessageSearchDialog(
                self.client, self.me, lambda group_id: names.group(group_id).name,
                self, self.address)  # type: ignore[arg-type]
            self.message_search.open_message.connect(self.show_message)  # type: ignore
        self.message_search.show()
        self.message_search.raise_()
        self.message_search.query.setFocus()
        self.message_search.query.selectAll()
        return self.message_search

    def _searched_contact_added(self, contact: dict[str, Any]) -> None:
        self.contact_added(contact)  # type: ignore[attr-defined]
        name = contact.get("account_name")
        if isinstance(name, str):
            self.open_chat(name)  # type: ignore[attr-defined]

    def open_admin(self) -> AdminPanel | None:
        if self.account is None or not self.account.admin:
            return None
        if self.admin_panel is None:
            self.admin_panel = AdminPanel(self.client, self.me, address=self.address)
        self.admin_panel.show()
        self.admin_panel.raise_()
        self.admin_panel.activateWindow()
        return self.admin_panel

    # -- calls ----------------------------------------------------------------------------

    def start_call(self, peer: str) -> None:
        if self.calls.status.live:
            if self.call_window is not None:
                self.call_window.show()
                self.call_window.raise_()
            return
        self.calls.dial(peer).addErrback(lambda _: None)   # the call window says why

    def show_call(self, status: calls.CallStatus) -> None:
        """A call starts or rings: its window (a new one per call)."""
        if status.state in (calls.OUTGOING, calls.INCOMING) and (
                self.call_window is None or self.call_window.finished):
            if self.call_window is not None:
                self.call_window.close()
            self.call_window = CallWindow(self.calls, self.call_bridge, self.me)
            self.call_window.show()
            self.call_window.raise_()
            self.call_window.activateWindow()
            if status.state == calls.INCOMING:
                self.notifier.notify("Incoming call", f"{status.peer} is calling you.")

    def close_windows(self) -> None:
        for window in (self.admin_panel, self.search_dialog, self.call_window,
                       self.shortcuts_dialog, self.message_search):
            if window is not None:
                window.close()
