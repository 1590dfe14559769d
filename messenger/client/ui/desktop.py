"""The desktop client as a whole: which window is up, and the client core behind them.

`Desktop` owns the settings (`desktop_settings`), the client core built from them
(`session`: the `MessengerClient`, its bridge, the `Conversations`, the call
controller), the login window and, once logged in, the main window. It logs in with a
saved token at start, or with what the user types; goes back to the login window with a
sentence when the session cannot go on (token refused, account locked, server key
changed); and stops the client cleanly on quit. Every call into the core returns a
Deferred; nothing here waits for one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QObject, QTimer, pyqtSignal
from twisted.internet import defer, threads
from twisted.logger import Logger

from messenger.client.errors import (
    NoSavedLogin,
    NotConnected,
    ServerKeyChanged,
    ServerUnreachable,
)
from messenger.client.events import ConnectionState, State
from messenger.client.ui.desktop_settings import DesktopSettingsMixin
from messenger.client.ui.login import LoginWindow
from messenger.client.ui.main_window import MainWindow
from messenger.client.ui.messages import describe_state, explain
from messenger.client.ui.notify import Notifier
from messenger.client.ui.session import ClientSessionMixin
from messenger.client.ui.settings import DesktopSettings

REGISTERING = "Connecting to {address} to create your account…"


class Desktop(ClientSessionMixin, DesktopSettingsMixin, QObject):
    """The running desktop client."""

    log = Logger()
    quit_requested = pyqtSignal()
    logged_in = pyqtSignal()

    def __init__(self, config_dir: Path, settings: DesktopSettings, *, reactor: Any = None,
                 client_options: dict[str, Any] | None = None,
                 engine_factory: Callable[..., Any] | None = None,
                 use_tray: bool | None = None, accept_new_key: bool = False,
                 run_blocking: Any = None, follow_system_theme: bool = True) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.reactor = reactor
        self.config_dir = Path(config_dir)
        self.settings = settings
        self.client_options = dict(client_options or {})
        self._engine_factory = engine_factory
        self._run = run_blocking or threads.deferToThread
        self.accept_new_key = accept_new_key
        self.key_changed = False
        self.quit_on_close = False

        self.init_session()
        self.main_window: MainWindow | None = None
        self._busy_what = ""
        self._attempt = 0
        self.init_settings(use_dbus=follow_system_theme)

        self.login_window = LoginWindow()
        self.login_window.login_requested.connect(self.login)
        self.login_window.register_requested.connect(self.register)
        self.login_window.settings_requested.connect(self.open_settings)
        self.login_window.cancel_requested.connect(self.cancel)
        self.login_window.closed.connect(self._login_window_closed)
        self.login_window.set_server(self._address_text())
        self.login_window.set_account(settings.last_account)
        self.login_window.remember.setChecked(settings.remember)
        self.notifier = Notifier(self.login_window, use_tray)
        self._busy_timer = QTimer(self)
        self._busy_timer.setInterval(1000)
        self._busy_timer.timeout.connect(self._refresh_busy)

    # == start ==============================================================================

    def start(self) -> defer.Deferred[Any]:
        """Show the login window and log in with a saved token if there is one. Fires
        once that is settled either way (never fails)."""
        self.login_window.show()
        self._set_busy("Starting…")
        attempt = self._next_attempt()
        d = self._ensure_client()
        d.addCallback(lambda client: client.start(fail_fast=False))
        d.addCallbacks(self._logged_in, self._start_failed, callbackArgs=(attempt,),
                       errbackArgs=(attempt,))
        d.addErrback(self._unexpected)
        return d

    def _start_failed(self, failure: Any, attempt: int) -> None:
        if attempt != self._attempt:
            return
        error = failure.value
        if isinstance(error, NoSavedLogin):
            self.login_window.set_idle()
            self.login_window._focus_first_empty()
        elif isinstance(error, NotConnected):
            self.login_window.set_idle()
        else:
            self._show_login_error(error)

    # == logging in =========================================================================

    def login(self, name: str, password: str, remember: bool = True) -> defer.Deferred[Any]:
        self._set_busy("Connecting to {address}…")
        self._remember_choice(name, remember)
        attempt = self._next_attempt()
        d = self._ensure_client()
        d.addCallback(lambda client: client.login(name, password, remember=remember))
        d.addCallbacks(self._logged_in, self._login_failed, callbackArgs=(attempt,),
                       errbackArgs=(attempt,))
        d.addErrback(self._unexpected)
        return d

    def register(self, name: str, email: str, password: str, code: str = ""
                 ) -> defer.Deferred[Any]:
        self._set_busy(REGISTERING)
        remember = self.login_window.remember.isChecked()
        self._remember_choice(name, remember)
        attempt = self._next_attempt()
        d = self._ensure_client()
        d.addCallback(lambda client: client.register(name, password, email, code or None,
                                                     remember=remember))
        d.addCallbacks(self._logged_in, self._login_failed, callbackArgs=(attempt,),
                       errbackArgs=(attempt,))
        d.addErrback(self._unexpected)
        return d

    def cancel(self) -> None:
        """The user gave up waiting: stop trying (nothing is left running)."""
        self._next_attempt()
        if self.client is not None:
            self.client.stop()
        self._busy_timer.stop()
        self.login_window.set_idle(keep_password=True)

    def _next_attempt(self) -> int:
        self._attempt += 1
        return self._attempt

    def _login_failed(self, failure: Any, attempt: int) -> None:
        if attempt == self._attempt:
            self._show_login_error(failure.value)

    def _unexpected(self, failure: Any) -> None:
        """A bug of ours: the traceback goes to the log, a sentence to the window."""
        self.log.failure("Unexpected failure in the desktop client", failure)
        self._back_to_login()
        self._show_login_error(failure.value)

    def _show_login_error(self, error: BaseException) -> None:
        self._busy_timer.stop()
        if isinstance(error, ServerKeyChanged):
            self.key_changed = True
        address = self._address_text()
        # Only unreachable: the password was never judged, keep it for the next try.
        self.login_window.show_error(explain(error, address),
                                     keep_password=isinstance(error, ServerUnreachable))

    def _logged_in(self, reply: Any, attempt: int) -> None:
        if attempt != self._attempt or self.client is None:
            return
        self._busy_timer.stop()
        client = self.client
        if self.accept_new_key:
            self.accept_new_key = False           # the new key is pinned now
            client.accept_new_key = False
            self.key_changed = False
        account = client.account
        name = account.account_name if account else self.settings.last_account
        self.settings = self.settings.with_changes(last_account=name)
        self.save_settings()
        self.login_window.set_idle()
        self.login_window.banner.clear_message()
        self.login_window.hide()
        self._open_main_window(name)
        self.logged_in.emit()

    def _remember_choice(self, name: str, remember: bool) -> None:
        self.settings = self.settings.with_changes(last_account=name, remember=remember)

    # == the session as it goes =============================================================

    def _on_state(self, state: ConnectionState) -> None:
        if self.login_window.busy:
            self._refresh_busy()
            if state.name == State.RECONNECTING:
                self._busy_timer.start()
            return
        if self.main_window is None:
            return
        if state.name in (State.LOGIN_REQUIRED, State.FAILED):
            # The session cannot go on by itself: say why, where the user can act on it.
            error = state.error if state.error is not None else state.reason or ""
            self._back_to_login()
            if isinstance(error, BaseException):
                self._show_login_error(error)
            else:
                self.login_window.show_error(str(error))

    def _set_busy(self, what: str) -> None:
        self._busy_what = what
        self.login_window.set_busy(what.format(address=self._address_text()))

    def _refresh_busy(self) -> None:
        client = self.client
        if client is None or not self.login_window.busy:
            self._busy_timer.stop()
            return
        state = client.state
        address = client.address
        words = {
            State.CONNECTING: f"Connecting to {address}…",
            State.HANDSHAKING: "Securing the connection…",
            State.LOGGING_IN: "Creating your account…" if self._busy_what == REGISTERING
            else "Logging in…",
            State.SYNCING: "Fetching what arrived while you were away…",
        }.get(state.name)
        if state.name == State.RECONNECTING:
            words = (describe_state(state, self.reactor.seconds()) + ". The server cannot be"
                     " reached right now; Messenger keeps trying.")
        elif state.name != State.RECONNECTING:
            self._busy_timer.stop()
        if words:
            self.login_window.update_busy(words)

    # == windows ============================================================================

    def _open_main_window(self, name: str) -> None:
        assert self.client is not None and self.bridge is not None
        assert self.calls is not None and self.call_bridge is not None
        assert self.conversations is not None
        if self.main_window is not None:
            self.main_window.close_all()
        window = MainWindow(self.client, self.bridge, self.conversations, self.calls,
                            self.call_bridge, self.notifier, name, self.client.address,
                            self.reactor)
        window.logout_requested.connect(self.logout)
        window.settings_requested.connect(self.open_settings)
        window.preferences_requested.connect(self.open_preferences)
        window.quit_requested.connect(self.quit_requested)
        window.quit_on_close = self.quit_on_close
        self.notifier.window = window
        self.main_window = window
        window.show()
        window.raise_()
        window.activateWindow()

    def _back_to_login(self) -> None:
        if self.main_window is not None:
            self.main_window.close_all()
            self.main_window = None
        self.notifier.window = self.login_window
        self.login_window.set_server(self._address_text())
        self.login_window.show()
        self.login_window.raise_()
        self.login_window.activateWindow()

    def logout(self) -> defer.Deferred[Any]:
        """Log out: the token is revoked and forgotten; back to the login window."""
        client = self.client
        if self.calls is not None and self.calls.status.live:
            self.calls.hangup()
        self._back_to_login()
        self.login_window.show_info("You are logged out.")
        if client is None:
            return defer.succeed(None)
        return client.logout()

    def _address_text(self) -> str:
        try:
            return self.settings.address
        except ValueError:
            return self.settings.server

    def _login_window_closed(self) -> None:
        if self.quit_on_close and self.main_window is None:
            self.quit_requested.emit()

    # == the end ============================================================================

    def shutdown(self) -> defer.Deferred[Any]:
        """Hang up, say quit to the server, close every window."""
        self.quit_on_close = False
        self._busy_timer.stop()
        if self.main_window is not None:
            self.main_window.close_all()
            self.main_window = None
        self.login_window.close()
        for dialog in (self.settings_dialog, self.preferences_dialog):
            if dialog is not None:
                dialog.close()
        self.notifier.close()
        return self._drop_client()
