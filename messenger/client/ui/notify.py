"""Desktop notifications: a system tray message where a tray exists, else the window
asks for attention (the taskbar entry flashes)."""

from __future__ import annotations

from PyQt5.QtWidgets import QApplication, QMenu, QSystemTrayIcon, QWidget

from messenger.client.ui import style


class Notifier:
    """``notify(title, text)``; remembers what it showed (``shown``) for the curious."""

    def __init__(self, window: QWidget | None = None, use_tray: bool | None = None) -> None:
        self.window = window
        self.shown: list[tuple[str, str]] = []
        self.tray: QSystemTrayIcon | None = None
        if use_tray is None:
            use_tray = QSystemTrayIcon.isSystemTrayAvailable()
        if use_tray:
            self.tray = QSystemTrayIcon(style.app_icon())
            self.tray.setToolTip("Messenger")
            menu = QMenu()
            menu.addAction("Show Messenger", self._raise)
            menu.addAction("Quit", QApplication.quit)
            self.tray.setContextMenu(menu)
            self._menu = menu
            self.tray.activated.connect(lambda reason: self._raise())
            self.tray.show()

    @property
    def has_tray(self) -> bool:
        return self.tray is not None

    def notify(self, title: str, text: str) -> None:
        self.shown.append((title, text))
        if self.tray is not None and self.tray.supportsMessages():
            self.tray.showMessage(title, text, style.app_icon(), 6000)
        elif self.window is not None:
            QApplication.alert(self.window)

    def set_unread(self, count: int) -> None:
        if self.tray is not None:
            self.tray.setToolTip(f"Messenger — {count} unread" if count else "Messenger")

    def _raise(self) -> None:
        if self.window is not None:
            self.window.showNormal()
            self.window.raise_()
            self.window.activateWindow()

    def close(self) -> None:
        if self.tray is not None:
            self.tray.hide()
            self.tray = None
