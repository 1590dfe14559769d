"""Fixtures for the desktop client's widget tests: a real server in this process, desktops
with their own config dirs, and QTest-driven logins.

Every desktop gets a fresh config dir under the test's temp dir (its own client key file
is not made: the cached 2048-bit test key is injected), so tokens, pins and settings never
leak between tests and ``~/.config`` is never touched.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PyQt5.QtCore import Qt, qInstallMessageHandler
from PyQt5.QtTest import QTest
from PyQt5.QtWidgets import QAbstractButton, QLabel, QWidget
from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from messenger.client.calls.audio import FakeAudioDevice
from messenger.client.calls.engine import CallEngine
from messenger.client.calls.media import SessionTiming
from messenger.client.reconnect import backoff_policy
from messenger.client.ui import qtreactor, style
from messenger.client.ui.chat_state import person_key
from messenger.client.ui.desktop import Desktop
from messenger.client.ui.settings import DesktopSettings
from messenger.client.ui.widgets import ElidedLabel
from messenger.server.service import MessengerServer
from tests.support.keys import rsa_key
from tests.support.server import SECRET, start_server

PASSWORD = "correct horse"
FAST_MEDIA = SessionTiming(tick=0.02, hello_first=0.05, probe_first=0.05,
                           direct_timeout=0.3)

style.apply(qtreactor.application())


def _quiet_offscreen(kind: Any, context: Any, message: str) -> None:
    """The offscreen platform says it cannot raise windows; everything else is shown."""
    if "This plugin does not support" not in message:
        sys.stderr.write(message + "\n")


qInstallMessageHandler(_quiet_offscreen)


@defer.inlineCallbacks
def wait_for(condition: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Poll ``condition`` while the (Qt) reactor runs; fail after ``timeout`` seconds."""
    deadline = reactor.seconds() + timeout
    while True:
        value = condition()
        if value:
            return value
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        yield task.deferLater(reactor, 0.02, lambda: None)


def type_into(widget: QWidget, text: str) -> None:
    widget.setFocus()
    QTest.keyClicks(widget, text)


def click(widget: QWidget) -> None:
    QTest.mouseClick(widget, Qt.LeftButton)


class DesktopTestCase(TestCase):
    timeout = 90

    @defer.inlineCallbacks
    def start_server(self, **overrides: Any) -> Any:
        # The relay's UDP port defaults to the TCP port's number, which another UDP
        # socket (a call's, another test's) may hold: let the system pick one.
        overrides.setdefault("udp_port", 0)
        self.server = yield start_server(self, **overrides)
        return self.server

    @defer.inlineCallbacks
    def stop_server(self) -> Any:
        """Stop the server (its port and data dir are kept for `restart_server`)."""
        if self.server.port is not None:
            self._server_port = self.server.tcp_port
        yield self.server.stop()

    @defer.inlineCallbacks
    def restart_server(self) -> Any:
        """Start the server again on the same port and data dir (stopping it first)."""
        yield self.stop_server()
        config = self.server.config
        config.port = self._server_port
        server = MessengerServer(config, reactor)
        yield server.start()
        self.addCleanup(server.stop)
        self.server = server
        return server

    def make_desktop(self, secret: bytes = SECRET, port: int | None = None,
                     audio: FakeAudioDevice | None = None, **settings: Any) -> Desktop:
        config_dir = Path(self.mktemp())
        config_dir.mkdir(parents=True, mode=0o700)
        secret_file = config_dir / "secret"
        secret_file.write_bytes(secret + b"\n")
        values: dict[str, Any] = {
            "server": f"127.0.0.1:{port if port is not None else self.server.tcp_port}",
            "secret_file": str(secret_file)}
        values.update(settings)
        device = audio if audio is not None else FakeAudioDevice()

        def engine(**callbacks: Any) -> CallEngine:
            return CallEngine(reactor, audio=device, interface="127.0.0.1",
                              timing=FAST_MEDIA, **callbacks)

        desktop = Desktop(config_dir, DesktopSettings(**values),
                          client_options={"client_key": rsa_key("client", 2048),
                                          "backoff": backoff_policy(0.05, 0.3)},
                          engine_factory=engine, use_tray=False, follow_system_theme=False)
        desktop.audio = device
        self.addCleanup(desktop.shutdown)
        return desktop

    @defer.inlineCallbacks
    def started(self, desktop: Desktop) -> Any:
        """Start the desktop and wait until the login window is ready for input."""
        yield desktop.start()
        yield wait_for(lambda: not desktop.login_window.busy, what="the login form")
        return desktop

    @defer.inlineCallbacks
    def register(self, name: str, email: str | None = None, password: str = PASSWORD,
                 code: str = "", desktop: Desktop | None = None) -> Any:
        """A desktop that registered ``name`` through the login window's Register tab."""
        if desktop is None:
            desktop = self.make_desktop()
        yield self.started(desktop)
        window = desktop.login_window
        window.tabs.setCurrentIndex(1)
        type_into(window.reg_name, name)
        type_into(window.reg_email, email or f"{name}@example.org")
        type_into(window.reg_password, password)
        type_into(window.reg_password2, password)
        if code:
            type_into(window.reg_code, code)
        click(window.register_button)
        yield wait_for(lambda: desktop.main_window is not None
                       or window.banner.kind == "error", what=f"{name} registered")
        if desktop.main_window is None:
            raise AssertionError(f"registering {name} failed: {window.banner.text()}")
        yield wait_for(lambda: desktop.client.state.name == "online", what="online")
        return desktop

    @defer.inlineCallbacks
    def login(self, desktop: Desktop, name: str, password: str = PASSWORD,
              expect_error: bool = False) -> Any:
        """Log in through the login window's first tab; fires with the banner text."""
        window = desktop.login_window
        window.tabs.setCurrentIndex(0)
        window.name.clear()
        type_into(window.name, name)
        type_into(window.password, password)
        click(window.login_button)
        yield wait_for(lambda: desktop.main_window is not None
                       or window.banner.kind == "error", what=f"{name} logging in")
        if expect_error:
            return window.banner.text()
        if desktop.main_window is None:
            raise AssertionError(f"login of {name} failed: {window.banner.text()}")
        return desktop

    @defer.inlineCallbacks
    def add_contact(self, desktop: Desktop, name: str) -> Any:
        """Through the main window's search dialog."""
        dialog = desktop.main_window.open_search()
        type_into(dialog.query, name[:3])
        yield wait_for(lambda: any(dialog.results.item(row).data(Qt.UserRole + 1) == name
                                   for row in range(dialog.results.count())),
                       what=f"{name} among the results")
        for row in range(dialog.results.count()):
            if dialog.results.item(row).data(Qt.UserRole + 1) == name:
                dialog.results.setCurrentRow(row)
        click(dialog.add_button)
        yield wait_for(lambda: (item := chat_item(desktop, name)) is not None
                       and item.is_contact, what=f"{name} in the contacts")


def chat_item(desktop: Desktop, name: str) -> Any:
    """The chat list's row of a person (None when not listed)."""
    return desktop.conversations.model.item(person_key(name))


def unread_of(desktop: Desktop, name: str) -> int:
    item = chat_item(desktop, name)
    return item.unread if item is not None else 0


def clipped(root: QWidget) -> list[str]:
    """Every visible label or button under ``root`` whose text does not fit it (the
    widget is narrower, or shorter, than its text needs). Labels that elide themselves
    (`ElidedLabel`) shorten their text on purpose and are checked to do so."""
    problems = []
    for widget in [root, *root.findChildren(QWidget)]:
        if not widget.isVisibleTo(root) or widget.width() <= 0:
            continue
        if isinstance(widget, ElidedLabel):
            text = widget.text()
            if widget.fontMetrics().horizontalAdvance(text) > widget.contentsRect().width():
                problems.append(f"elided label {widget.full_text()!r} still too wide")
            continue
        if isinstance(widget, QLabel) and widget.text() and not widget.pixmap():
            rect = widget.contentsRect()
            if widget.wordWrap():
                needed = widget.heightForWidth(widget.width())
                if needed > widget.height() + 1:
                    problems.append(f"label {widget.text()[:40]!r}: {needed} px tall in"
                                    f" {widget.height()}")
            else:
                shown = widget.text().replace("&&", "\0").replace("&", "").replace("\0", "&")
                needed = widget.fontMetrics().horizontalAdvance(shown)
                if needed > rect.width() + 1:
                    problems.append(f"label {widget.text()!r}: {needed} px in {rect.width()}")
        elif isinstance(widget, QAbstractButton) and widget.text():
            needed = widget.fontMetrics().horizontalAdvance(widget.text().replace("&", ""))
            if needed > widget.width() - 4:
                problems.append(f"button {widget.text()!r}: {needed} px in {widget.width()}")
    return problems
