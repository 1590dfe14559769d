"""Desktop notifications: a system tray message where a tray exists, else the window
asks for attention (the taskbar entry flashes); the tray's tooltip and the window's
title carry the unread total.

`NotificationBatcher` groups a burst: messages of one chat that arrive within `QUIET`
seconds of each other (a sync after login brings them all at once) make one
notification per chat ("bob: 12 new messages", the last one's text), not one each.
After a login it holds what comes until the server's unread counts are known
(`hold`/`release`): a message read meanwhile on another computer is not announced, and
the count said is the server's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PyQt5.QtWidgets import QApplication, QMenu, QSystemTrayIcon, QWidget

from messenger.client.ui import style

QUIET = 0.4                  # seconds without a new message before a burst is shown
PREVIEW = 120


class Notifier:
    """``notify(title, text)``; remembers what it showed (``shown``) for the curious."""

    def __init__(self, window: QWidget | None = None, use_tray: bool | None = None) -> None:
        self.window = window
        self.shown: list[tuple[str, str]] = []
        self.unread = 0
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
        """The total for the tray (tooltip) and the taskbar entry."""
        self.unread = count
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


@dataclass
class _Burst:
    title: str
    count: int
    last: str


class NotificationBatcher:
    """One notification per chat for each burst of messages (see the module's doc)."""

    def __init__(self, notifier: Notifier, reactor: Any, quiet: float = QUIET) -> None:
        self.notifier = notifier
        self.reactor = reactor
        self.quiet = quiet
        self.pending: dict[str, _Burst] = {}
        self.held = False
        self._call: Any = None

    def add(self, key: str, title: str, text: str) -> None:
        burst = self.pending.get(key)
        if burst is None:
            self.pending[key] = _Burst(title, 1, text)
        else:
            burst.count += 1
            burst.last = text
        if not self.held:
            self._later()

    def _later(self) -> None:
        if self._call is not None and self._call.active():
            self._call.reset(self.quiet)
        else:
            self._call = self.reactor.callLater(self.quiet, self.flush)

    def hold(self) -> None:
        """Gather without showing until `release` (the sync after a login)."""
        self.held = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def release(self, unread: Callable[[str], int] | None = None) -> None:
        """Show what was gathered; ``unread(key)``, when given, is the chat's count now:
        a chat with none is not announced, the others say that count."""
        if not self.held:
            return
        self.held = False
        if unread is not None:
            for key, burst in list(self.pending.items()):
                count = unread(key)
                if count <= 0:
                    del self.pending[key]
                else:
                    burst.count = count
        if self.pending:
            self._later()

    def flush(self) -> None:
        """Show what is pending now, one notification per chat."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        pending, self.pending = self.pending, {}
        for burst in pending.values():
            text = _cut(burst.last)
            if burst.count > 1:
                text = f"{burst.count} new messages. The last: {text}"
            self.notifier.notify(burst.title, text)

    def retitle(self, key: str, title: str) -> None:
        """The chat's name became known (a group first seen in the sync)."""
        burst = self.pending.get(key)
        if burst is not None:
            burst.title = title

    def drop(self, key: str) -> None:
        """The chat was read meanwhile: nothing to announce for it."""
        self.pending.pop(key, None)

    def cancel(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self.pending = {}
        self.held = False


def _cut(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= PREVIEW else line[:PREVIEW - 1] + "…"
