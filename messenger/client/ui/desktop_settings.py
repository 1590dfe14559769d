"""The desktop's settings as the user changes them: Server settings (before login too),
Settings (theme, call devices, blocked users), and the theme that follows the system.
A mixin of `Desktop`."""

from __future__ import annotations

from typing import Any

from PyQt5.QtWidgets import QApplication

from messenger.client.ui import style
from messenger.client.ui.preferences import PreferencesDialog
from messenger.client.ui.settings import DesktopSettings, save_settings
from messenger.client.ui.settings_dialog import SettingsDialog
from messenger.client.ui.theme import SystemTheme, palette_for, wants_dark


class DesktopSettingsMixin:
    settings: DesktopSettings
    config_dir: Any
    login_window: Any
    main_window: Any
    conversations: Any
    calls: Any
    key_changed: bool
    accept_new_key: bool
    log: Any
    _run: Any

    def _address_text(self) -> str:
        raise NotImplementedError

    def init_settings(self, use_dbus: bool) -> None:
        self.settings_dialog: SettingsDialog | None = None
        self.preferences_dialog: PreferencesDialog | None = None
        self.system_theme = SystemTheme(self, use_dbus=use_dbus)  # type: ignore[arg-type]
        self.system_theme.changed.connect(lambda _: self.apply_theme())
        self.apply_theme()

    def apply_theme(self) -> bool:
        """Light or dark, as the settings (or the system) say; True when it changed."""
        app = QApplication.instance()
        dark = wants_dark(self.settings.theme, self.system_theme)
        if app is None or not style.set_palette(app, palette_for(dark)):
            return False
        if self.main_window is not None:
            self.main_window.theme_changed()
        return True

    def open_settings(self) -> SettingsDialog:
        parent = self.main_window if self.main_window is not None else self.login_window
        dialog = SettingsDialog(self.settings, parent, key_changed=self.key_changed)
        dialog.applied.connect(self.apply_settings)
        self.settings_dialog = dialog
        dialog.open()
        return dialog

    def apply_settings(self, settings: DesktopSettings, trust_new_key: bool = False) -> None:
        changed = settings.connection != self.settings.connection
        self.settings = settings
        if trust_new_key:
            self.accept_new_key = True
        self.save_settings()
        self.login_window.set_server(self._address_text())
        if self.main_window is not None:
            if changed:
                self.main_window.statusBar().showMessage(
                    "The new server settings apply the next time you log in.", 8000)
        else:
            self.login_window.banner.clear_message()
            if trust_new_key:
                self.login_window.show_info("The server's new key will be trusted at the"
                                            " next login.")

    def save_settings(self) -> None:
        """Write the settings file (off the reactor thread)."""
        d = save_settings(self.config_dir, self.settings, self._run)
        d.addErrback(lambda failure: self.log.failure("Cannot save the desktop settings",
                                                      failure))

    def open_preferences(self) -> PreferencesDialog:
        parent = self.main_window if self.main_window is not None else self.login_window
        dialog = PreferencesDialog(self.settings, self.conversations, self._run, parent)
        dialog.applied.connect(self.apply_preferences)
        self.preferences_dialog = dialog
        dialog.open()
        return dialog

    def apply_preferences(self, settings: DesktopSettings) -> None:
        """Theme and devices: at once (devices from the next call), and saved."""
        devices_changed = (settings.input_device, settings.output_device) != (
            self.settings.input_device, self.settings.output_device)
        self.settings = settings
        self.save_settings()
        self.apply_theme()
        if devices_changed and self.calls is not None:
            self.calls.set_devices(settings.input_device or None,
                                   settings.output_device or None)

