"""Light and dark, following the system: the two palettes and how the system's choice is
read and followed.

`Palette` names every colour the windows use; `LIGHT` and `DARK` fill it. Which one
applies comes from the user's setting (``theme`` in `DesktopSettings`: ``system``,
``light`` or ``dark``); with ``system``, `SystemTheme` asks, in this order, the desktop
portal's ``org.freedesktop.appearance color-scheme`` (GNOME, KDE and others publish it
over D-Bus, and announce changes), ``GTK_THEME`` ending in ``:dark``, and the platform
palette Qt got from the desktop (a dark window colour). It emits ``changed(dark)`` when
the portal says the choice changed, so an open window switches at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from PyQt5.QtCore import QObject, pyqtSignal, pyqtSlot
from PyQt5.QtDBus import (
    QDBusConnection,
    QDBusInterface,
    QDBusMessage,
    QDBusPendingCallWatcher,
    QDBusReply,
)
from PyQt5.QtGui import QGuiApplication, QPalette

THEMES = ("system", "light", "dark")


@dataclass(frozen=True)
class Palette:
    dark: bool
    background: str       # behind everything
    surface: str          # sidebars, headers, cards, inputs
    text: str
    muted: str
    border: str
    input_border: str
    hover: str            # a row or button under the mouse
    accent: str
    accent_dark: str
    accent_soft: str      # a selected row, info banners
    accent_text: str      # text on accent_soft
    danger: str
    danger_soft: str
    danger_text: str
    success: str
    warning: str
    chat_background: str
    own_bubble: str
    own_pending: str
    own_footer: str       # time and ticks on an own bubble
    other_bubble: str
    day_pill: str
    day_text: str
    disabled_text: str
    disabled_background: str
    disabled_border: str
    primary_disabled: str
    scrollbar: str
    link: str
    own_link: str
    selection: str        # selected message text


LIGHT = Palette(
    dark=False, background="#f3f5f9", surface="#ffffff", text="#1f2937", muted="#6b7280",
    border="#e3e7ee", input_border="#cfd6e2", hover="#f2f5fa", accent="#2563eb",
    accent_dark="#1d4ed8", accent_soft="#dbe7fe", accent_text="#1e3a8a", danger="#dc2626",
    danger_soft="#fde8e8", danger_text="#991b1b", success="#16a34a", warning="#b45309",
    chat_background="#eef2f7", own_bubble="#2563eb", own_pending="#8fb0f4",
    own_footer="#dbe6fd", other_bubble="#ffffff", day_pill="#dde3ec", day_text="#4b5563",
    disabled_text="#8b93a1", disabled_background="#eef0f4", disabled_border="#dde1e8",
    primary_disabled="#9db5ec", scrollbar="#c6ceda", link="#1d4ed8", own_link="#ffffff",
    selection="#93b4f5")

DARK = Palette(
    dark=True, background="#0f172a", surface="#1e293b", text="#e5e7eb", muted="#94a3b8",
    border="#334155", input_border="#475569", hover="#273449", accent="#3b82f6",
    accent_dark="#2563eb", accent_soft="#1e3a5f", accent_text="#bfdbfe", danger="#ef4444",
    danger_soft="#3f1d24", danger_text="#fecaca", success="#22c55e", warning="#f59e0b",
    chat_background="#111827", own_bubble="#2563eb", own_pending="#1e40af",
    own_footer="#c7d7fb", other_bubble="#1f2a3c", day_pill="#273449", day_text="#cbd5e1",
    disabled_text="#64748b", disabled_background="#1a2333", disabled_border="#2b3648",
    primary_disabled="#1e3a6e", scrollbar="#475569", link="#93c5fd", own_link="#ffffff",
    selection="#3b5f99")


def palette_for(dark: bool) -> Palette:
    return DARK if dark else LIGHT


_platform_dark: bool | None = None     # read before our own palette replaces the desktop's


def remember_platform() -> None:
    """Note the desktop's palette (call before `style.apply` sets ours)."""
    global _platform_dark
    if _platform_dark is None and QGuiApplication.instance() is not None:
        _platform_dark = platform_prefers_dark(QGuiApplication.palette())


def platform_prefers_dark(palette: QPalette | None = None) -> bool:
    """True when ``GTK_THEME`` names a dark variant, or the palette Qt got from the
    desktop (``palette``, else the one noted by `remember_platform`) has a dark window
    colour."""
    if os.environ.get("GTK_THEME", "").lower().endswith(":dark"):
        return True
    if palette is None:
        return bool(_platform_dark)
    return palette.color(QPalette.Window).lightness() < 128


PORTAL = ("org.freedesktop.portal.Desktop", "/org/freedesktop/portal/desktop",
          "org.freedesktop.portal.Settings")
APPEARANCE = "org.freedesktop.appearance"
COLOR_SCHEME = "color-scheme"          # 0 no preference, 1 prefer dark, 2 prefer light


def scheme_is_dark(value: Any, fallback: bool) -> bool:
    """The portal's color-scheme value (an int, maybe wrapped in variants) as dark."""
    while hasattr(value, "variant"):
        value = value.variant()
    if value == 1:
        return True
    if value == 2:
        return False
    return fallback


class SystemTheme(QObject):
    """The system's light/dark choice, read once at start and followed afterwards."""

    changed = pyqtSignal(bool)

    def __init__(self, parent: QObject | None = None, use_dbus: bool = True) -> None:
        super().__init__(parent)
        self.platform_dark = platform_prefers_dark()
        self.dark = self.platform_dark
        self._bus: Any = None
        if use_dbus:
            self._watch_portal()

    def _watch_portal(self) -> None:
        bus = QDBusConnection.sessionBus()
        if not bus.isConnected():
            return
        self._bus = bus
        service, path, interface = PORTAL
        bus.connect(service, path, interface, "SettingChanged", self._setting_changed)
        portal = QDBusInterface(service, path, interface, bus)
        if not portal.isValid():
            return
        call = portal.asyncCall("Read", APPEARANCE, COLOR_SCHEME)
        self._watcher = QDBusPendingCallWatcher(call, self)
        self._watcher.finished.connect(self._read_done)

    def _read_done(self, watcher: Any) -> None:
        reply = QDBusReply(watcher)
        if reply.isValid():
            self._set(scheme_is_dark(reply.value(), self.platform_dark))
        watcher.deleteLater()

    @pyqtSlot(QDBusMessage)
    def _setting_changed(self, message: QDBusMessage) -> None:
        arguments = message.arguments()
        if len(arguments) == 3 and arguments[:2] == [APPEARANCE, COLOR_SCHEME]:
            self._set(scheme_is_dark(arguments[2], self.platform_dark))

    def _set(self, dark: bool) -> None:
        if dark != self.dark:
            self.dark = dark
            self.changed.emit(dark)


def wants_dark(choice: str, system: SystemTheme | None) -> bool:
    """The user's setting resolved: ``dark``, ``light``, or the system's choice."""
    if choice == "dark":
        return True
    if choice == "light":
        return False
    return bool(system is not None and system.dark)
