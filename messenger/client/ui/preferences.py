"""Settings (Ctrl+,): the theme, the sound devices for calls, read receipts and the people
you blocked.

The connection's settings (server, secret, TLS) are the separate Server settings dialog,
reachable before login too. Changes here apply at once: the theme switches every window,
the devices are used from the next call, an unblock is sent to the server.
"""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from twisted.internet import defer

from messenger.client.ui import devices, style
from messenger.client.ui.messages import explain
from messenger.client.ui.settings import DesktopSettings
from messenger.client.ui.widgets import Banner

THEME_CHOICES = (("system", "Same as the system"), ("light", "Light"), ("dark", "Dark"))
DEFAULT_DEVICE = "System default"


class PreferencesDialog(QDialog):
    """``applied(settings)`` when the theme or devices change."""

    applied = pyqtSignal(object)

    def __init__(self, settings: DesktopSettings, conversations: Any = None,
                 run_blocking: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.conversations = conversations
        self.setWindowTitle("Settings — Messenger")
        self.setMinimumSize(360, 380)
        self.resize(520, 460)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 16, 18, 14)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._appearance(), "Appearance")
        self.tabs.addTab(self._calls(), "Calls")
        self.tabs.addTab(self._privacy(), "Privacy")
        layout.addWidget(self.tabs, 1)
        self.banner = Banner()
        layout.addWidget(self.banner)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.devices_loaded: defer.Deferred[devices.DeviceLists] | None = None
        if run_blocking is not None:
            self.devices_loaded = run_blocking(devices.list_devices)
            self.devices_loaded.addCallback(self.show_devices)
        self.load_blocked()
        self.load_privacy()

    # -- appearance -----------------------------------------------------------------------

    def _appearance(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        form.setContentsMargins(8, 16, 8, 8)
        self.theme = QComboBox()
        for value, words in THEME_CHOICES:
            self.theme.addItem(words, value)
        self.theme.setCurrentIndex([v for v, _ in THEME_CHOICES].index(self.settings.theme)
                                   if self.settings.theme in dict(THEME_CHOICES) else 0)
        self.theme.activated.connect(lambda _: self._changed())
        form.addRow("&Theme", self.theme)
        note = style.named(QLabel("“Same as the system” follows your desktop's light or"
                                  " dark choice, also when it changes."), "muted")
        note.setWordWrap(True)
        form.addRow(note)
        return page

    # -- calls ----------------------------------------------------------------------------

    def _calls(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        form.setContentsMargins(8, 16, 8, 8)
        self.input_device = QComboBox()
        self.output_device = QComboBox()
        for box, chosen in ((self.input_device, self.settings.input_device),
                            (self.output_device, self.settings.output_device)):
            box.addItem(DEFAULT_DEVICE, "")
            if chosen:
                box.addItem(chosen, chosen)
                box.setCurrentIndex(1)
            box.activated.connect(lambda _: self._changed())
        form.addRow("&Microphone", self.input_device)
        form.addRow("&Loudspeaker", self.output_device)
        self.devices_note = style.named(QLabel("Looking for sound devices…"), "muted")
        self.devices_note.setWordWrap(True)
        form.addRow(self.devices_note)
        return page

    def show_devices(self, lists: devices.DeviceLists) -> devices.DeviceLists:
        for box, names in ((self.input_device, lists.inputs),
                           (self.output_device, lists.outputs)):
            chosen = box.currentData()
            box.clear()
            box.addItem(DEFAULT_DEVICE, "")
            for name in names:
                box.addItem(name, name)
            if chosen and chosen not in names:
                box.addItem(f"{chosen} (not connected)", chosen)
            box.setCurrentIndex(max(0, box.findData(chosen)))
        self.devices_note.setText(lists.problem or "Used from the next call.")
        return lists

    # -- blocked users --------------------------------------------------------------------

    def _privacy(self) -> QWidget:
        page = QWidget()
        column = QVBoxLayout(page)
        column.setContentsMargins(8, 12, 8, 8)
        self.read_receipts = QCheckBox("Send read receipts")
        self.read_receipts.setToolTip("Off: the people who write to you do not see when"
                                      " you have read their messages (delivery is still"
                                      " shown).")
        self.read_receipts.setEnabled(False)
        self.read_receipts.clicked.connect(self.set_read_receipts)
        column.addWidget(self.read_receipts)
        note = style.named(QLabel("Blocked people cannot send you messages or call you."
                                  " Block someone from their chat's ⋮ menu."), "muted")
        note.setWordWrap(True)
        column.addWidget(note)
        self.blocked_list = QListWidget()
        self.blocked_list.currentItemChanged.connect(lambda *_: self._update_unblock())
        column.addWidget(self.blocked_list, 1)
        row = QHBoxLayout()
        row.addStretch(1)
        self.unblock_button = QPushButton("Unblock")
        self.unblock_button.clicked.connect(self.unblock_selected)
        row.addWidget(self.unblock_button)
        column.addLayout(row)
        self._update_unblock()
        return page

    def load_privacy(self) -> Any:
        """Whether read receipts go out (a server-side setting of the account)."""
        client = getattr(self.conversations, "client", None)
        if client is None or not hasattr(client, "set_read_receipts"):
            return None
        d = client.get_settings()

        def loaded(reply: dict[str, Any]) -> None:
            settings = reply.get("settings") if isinstance(reply, dict) else None
            if isinstance(settings, dict):
                self.read_receipts.setChecked(bool(settings.get("read_receipts", True)))
                self.read_receipts.setEnabled(True)
        d.addCallbacks(loaded, lambda failure: self.banner.show_error(explain(failure)))
        return d

    def set_read_receipts(self, enabled: bool) -> Any:
        self.read_receipts.setEnabled(False)
        d = self.conversations.client.set_read_receipts(enabled)

        def stored(value: bool) -> None:
            self.read_receipts.setChecked(value)
            self.read_receipts.setEnabled(True)
            self.banner.show_info("Read receipts are on." if value else
                                  "Read receipts are off: nobody sees when you read.")

        def refused(failure: Any) -> None:
            self.read_receipts.setChecked(not enabled)
            self.read_receipts.setEnabled(True)
            self.banner.show_error(explain(failure))
        d.addCallbacks(stored, refused)
        return d

    def load_blocked(self) -> Any:
        if self.conversations is None:
            self.blocked_list.addItem("Log in to see the people you blocked.")
            self.blocked_list.setEnabled(False)
            return None
        d = self.conversations.load_blocked()
        d.addCallback(self._show_blocked)
        return d

    def _show_blocked(self, names: Any) -> None:
        self.blocked_list.clear()
        self.blocked_list.setEnabled(bool(names))
        for name in names or ["Nobody is blocked."]:
            self.blocked_list.addItem(name)
        self._update_unblock()

    def _update_unblock(self) -> None:
        item = self.blocked_list.currentItem()
        self.unblock_button.setEnabled(item is not None and self.blocked_list.isEnabled())

    def unblock_selected(self) -> Any:
        item = self.blocked_list.currentItem()
        if item is None or self.conversations is None:
            return None
        name = item.text()
        self.unblock_button.setEnabled(False)
        d = self.conversations.unblock(name)
        d.addCallbacks(lambda names: (self._show_blocked(names),
                                      self.banner.show_info(f"{name} is unblocked.")),
                       lambda failure: (self.banner.show_error(explain(failure)),
                                        self._update_unblock()))
        return d

    # -- applying -------------------------------------------------------------------------

    def chosen(self) -> DesktopSettings:
        return self.settings.with_changes(
            theme=self.theme.currentData() or "system",
            input_device=self.input_device.currentData() or "",
            output_device=self.output_device.currentData() or "")

    def _changed(self) -> None:
        settings = self.chosen()
        if settings != self.settings:
            self.settings = settings
            self.applied.emit(settings)

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802
        if event.key() == Qt.Key_Escape:
            self.reject()
            return
        super().keyPressEvent(event)
