"""How the desktop client looks: the palette in use, the style sheet made from it, avatars
and presence dots. The palettes themselves, and following the system's light or dark
choice, are in `theme`."""

from __future__ import annotations

import gc
import zlib

from PyQt5.QtCore import QPointF, QRectF, Qt
from PyQt5.QtGui import QColor, QFont, QIcon, QPainter, QPalette, QPen, QPixmap, QPolygonF
from PyQt5.QtWidgets import QApplication, QPushButton, QWidget

from messenger.client.ui import theme
from messenger.client.ui.theme import LIGHT, Palette

# The colours of the palette in use, as module names read at paint time: `use` rebinds
# them when the theme changes, so delegates and HTML made afterwards follow at once.
PALETTE: Palette = LIGHT
BACKGROUND = SURFACE = TEXT = MUTED = BORDER = ACCENT = ACCENT_DARK = ACCENT_SOFT = ""
DANGER = DANGER_SOFT = SUCCESS = WARNING = CHAT_BACKGROUND = OWN_BUBBLE = OWN_PENDING = ""
OTHER_BUBBLE = HOVER = LINK = ""

PRESENCE_COLOURS = {"online": "#22c55e", "away": "#f59e0b", "offline": "#9ca3af",
                    "deleted": "#9ca3af"}
PRESENCE_WORDS = {"online": "Online", "away": "Away", "offline": "Offline",
                  "deleted": "Account deleted"}

AVATAR_COLOURS = ("#2563eb", "#7c3aed", "#db2777", "#ea580c", "#0891b2", "#059669",
                  "#4f46e5", "#b45309", "#0d9488", "#9333ea")


def use(palette: Palette) -> None:
    """Make ``palette`` the one the module's colour names stand for."""
    global PALETTE, BACKGROUND, SURFACE, TEXT, MUTED, BORDER, ACCENT, ACCENT_DARK
    global ACCENT_SOFT, DANGER, DANGER_SOFT, SUCCESS, WARNING, CHAT_BACKGROUND, OWN_BUBBLE
    global OWN_PENDING, OTHER_BUBBLE, HOVER, LINK
    PALETTE = palette
    (BACKGROUND, SURFACE, TEXT, MUTED, BORDER, ACCENT, ACCENT_DARK, ACCENT_SOFT, DANGER,
     DANGER_SOFT, SUCCESS, WARNING, CHAT_BACKGROUND, OWN_BUBBLE, OWN_PENDING, OTHER_BUBBLE,
     HOVER, LINK) = (
        palette.background, palette.surface, palette.text, palette.muted, palette.border,
        palette.accent, palette.accent_dark, palette.accent_soft, palette.danger,
        palette.danger_soft, palette.success, palette.warning, palette.chat_background,
        palette.own_bubble, palette.own_pending, palette.other_bubble, palette.hover,
        palette.link)


use(LIGHT)


def style_sheet(p: Palette) -> str:
    """The application's style sheet for a palette. Every kind of button has its
    disabled look: a disabled button must never look clickable."""
    return f"""
QWidget {{ color: {p.text}; }}
QWidget:disabled {{ color: {p.disabled_text}; }}
QMainWindow, QDialog, QWidget#window {{ background: {p.background}; }}
QWidget#sidebar {{ background: {p.surface}; }}
QWidget#card, QFrame#card {{ background: {p.surface}; border: 1px solid {p.border};
    border-radius: 10px; }}
QWidget#header {{ background: {p.surface}; border-bottom: 1px solid {p.border}; }}
QWidget#pane {{ background: {p.chat_background}; }}
QLabel#title {{ font-size: 20pt; font-weight: 600; }}
QLabel#subtitle, QLabel#muted {{ color: {p.muted}; }}
QLabel[live="true"] {{ color: {p.success}; }}
QLabel#heading {{ font-size: 12pt; font-weight: 600; }}
QLabel#error, QFrame#error {{ background: {p.danger_soft}; color: {p.danger_text};
    border: 1px solid {p.danger}; border-radius: 8px; }}
QLabel#info, QFrame#info {{ background: {p.accent_soft}; color: {p.accent_text};
    border: 1px solid {p.accent}; border-radius: 8px; }}
QFrame#error QLabel {{ background: transparent; border: none; color: {p.danger_text}; }}
QFrame#info QLabel {{ background: transparent; border: none; color: {p.accent_text}; }}
QLabel#badge {{ background: {p.accent_soft}; color: {p.accent_text}; border-radius: 8px;
    padding: 1px 7px; font-size: 8pt; font-weight: 600; }}
QLabel#code {{ font-family: "DejaVu Sans Mono", monospace; font-size: 16pt; }}
QLineEdit, QPlainTextEdit, QTextEdit {{
    background: {p.surface}; border: 1px solid {p.input_border}; border-radius: 7px;
    padding: 5px 8px; selection-background-color: {p.accent}; selection-color: white; }}
QLineEdit:focus, QPlainTextEdit:focus, QTextEdit:focus {{
    border: 1px solid {p.accent}; }}
QLineEdit:disabled, QPlainTextEdit:disabled, QTextEdit:disabled {{
    background: {p.disabled_background}; color: {p.disabled_text};
    border-color: {p.disabled_border}; }}
QComboBox QAbstractItemView {{ background: {p.surface}; border: 1px solid {p.border};
    selection-background-color: {p.accent_soft}; selection-color: {p.text}; }}
QPushButton, QToolButton {{ background: {p.surface}; border: 1px solid {p.input_border};
    border-radius: 7px; padding: 6px 14px; }}
QToolButton {{ padding: 4px 8px; }}
QPushButton:hover, QToolButton:hover {{ background: {p.hover}; border-color: {p.muted}; }}
QPushButton:focus, QToolButton:focus {{ border: 1px solid {p.accent}; }}
QPushButton:disabled, QToolButton:disabled {{ color: {p.disabled_text};
    background: {p.disabled_background}; border-color: {p.disabled_border}; }}
QPushButton[kind="primary"] {{ background: {p.accent}; color: white; border: 1px solid
    {p.accent}; font-weight: 600; }}
QPushButton[kind="primary"]:hover {{ background: {p.accent_dark}; }}
QPushButton[kind="primary"]:disabled {{ background: {p.primary_disabled};
    border-color: {p.primary_disabled}; color: {p.disabled_background}; }}
QPushButton[kind="danger"] {{ background: {p.danger}; color: white; border: 1px solid
    {p.danger}; font-weight: 600; }}
QPushButton[kind="danger"]:hover {{ background: #b91c1c; }}
QPushButton[kind="danger"]:disabled {{ background: {p.danger_soft};
    color: {p.disabled_text}; border-color: {p.disabled_border}; }}
QPushButton[kind="success"] {{ background: {p.success}; color: white; border: 1px solid
    {p.success}; font-weight: 600; }}
QPushButton[kind="success"]:hover {{ background: #15803d; }}
QPushButton[kind="success"]:disabled {{ background: {p.disabled_background};
    color: {p.disabled_text}; border-color: {p.disabled_border}; }}
QPushButton[kind="flat"], QToolButton[kind="flat"] {{ background: transparent;
    border: none; color: {p.accent}; padding: 2px 6px; }}
QPushButton[kind="flat"]:hover, QToolButton[kind="flat"]:hover {{ background: {p.hover}; }}
QPushButton[kind="flat"]:disabled, QToolButton[kind="flat"]:disabled {{
    color: {p.disabled_text}; background: transparent; }}
QToolButton[kind="icon"] {{ background: transparent; border: none; border-radius: 6px;
    padding: 4px 6px; font-size: 13pt; color: {p.muted}; }}
QToolButton[kind="icon"]:hover {{ background: {p.hover}; color: {p.text}; }}
QToolButton[kind="icon"]:disabled {{ color: {p.disabled_text}; background: transparent; }}
QToolButton[kind="emoji"] {{ background: transparent; border: none; border-radius: 6px;
    padding: 0; font-family: "Noto Color Emoji"; font-size: 18pt; }}
QToolButton[kind="emoji"]:hover {{ background: {p.hover}; }}
QPushButton::menu-indicator, QToolButton::menu-indicator {{ image: none; width: 0; }}
QCheckBox, QRadioButton {{ spacing: 6px; }}
QTabWidget::pane {{ border: none; }}
QTabBar::tab {{ background: transparent; padding: 8px 18px; margin-right: 2px;
    border-bottom: 2px solid transparent; color: {p.muted}; }}
QTabBar::tab:selected {{ color: {p.accent}; border-bottom: 2px solid {p.accent}; }}
QTabBar::tab:hover {{ color: {p.text}; }}
QTabBar::tab:disabled {{ color: {p.disabled_text}; }}
QListView, QListWidget, QTableWidget, QTextBrowser {{ background: {p.surface};
    border: 1px solid {p.border}; border-radius: 8px; }}
QListView#chats {{ border: none; background: transparent; }}
QListWidget::item {{ padding: 2px 4px; border-radius: 6px; }}
QListWidget::item:selected {{ background: {p.accent_soft}; color: {p.text}; }}
QListWidget::item:hover:!selected {{ background: {p.hover}; }}
QListView#chat {{ border: none; background: {p.chat_background}; }}
QTextBrowser#feed {{ background: {p.chat_background}; border: none; border-radius: 0; }}
QTableWidget {{ gridline-color: {p.border}; selection-background-color: {p.accent_soft};
    selection-color: {p.text}; }}
QHeaderView::section {{ background: {p.background}; border: none; border-bottom: 1px solid
    {p.border}; padding: 6px; font-weight: 600; color: {p.muted}; }}
QMenu {{ background: {p.surface}; border: 1px solid {p.border}; padding: 4px; }}
QMenu::item {{ padding: 6px 22px 6px 14px; border-radius: 5px; }}
QMenu::item:selected {{ background: {p.accent_soft}; color: {p.text}; }}
QMenu::item:disabled {{ color: {p.disabled_text}; }}
QMenu::separator {{ height: 1px; background: {p.border}; margin: 4px 6px; }}
QStatusBar {{ background: {p.surface}; border-top: 1px solid {p.border}; }}
QStatusBar QLabel {{ padding: 0 4px; }}
QToolTip {{ background: #111827; color: white; border: none; padding: 5px; }}
QScrollBar:vertical {{ background: transparent; width: 10px; margin: 2px; }}
QScrollBar::handle:vertical {{ background: {p.scrollbar}; border-radius: 4px;
    min-height: 30px; }}
QScrollBar::add-line:vertical, QScrollBar::sub-line:vertical {{ height: 0; }}
QScrollBar::add-page:vertical, QScrollBar::sub-page:vertical {{ background: none; }}
QSplitter::handle {{ background: {p.border}; }}
"""


def apply(app: QApplication, palette: Palette | None = None) -> None:
    """Fonts and the style sheet for the whole application (light unless told)."""
    theme.remember_platform()
    app.setStyle("Fusion")
    font = QFont(app.font())
    if font.pointSizeF() < 10:
        font.setPointSizeF(10)
    app.setFont(font)
    set_palette(app, palette or LIGHT)
    app.setWindowIcon(app_icon())


def set_palette(app: QApplication, palette: Palette) -> bool:
    """Switch every window to ``palette`` (Qt repolishes them all); False when it was
    in use already (nothing done)."""
    if palette is PALETTE and app.styleSheet():
        return False
    use(palette)
    qt = QPalette()
    for role, colour in ((QPalette.Window, palette.background),
                         (QPalette.Base, palette.surface),
                         (QPalette.AlternateBase, palette.background),
                         (QPalette.Text, palette.text), (QPalette.WindowText, palette.text),
                         (QPalette.ButtonText, palette.text),
                         (QPalette.Button, palette.surface),
                         (QPalette.Highlight, palette.accent),
                         (QPalette.HighlightedText, "#ffffff"),
                         (QPalette.ToolTipBase, "#111827"), (QPalette.ToolTipText, "#ffffff"),
                         (QPalette.PlaceholderText, palette.muted),
                         (QPalette.Link, palette.link)):
        qt.setColor(role, QColor(colour))
    for role in (QPalette.Text, QPalette.WindowText, QPalette.ButtonText):
        qt.setColor(QPalette.Disabled, role, QColor(palette.disabled_text))
    app.setPalette(qt)
    # Qt repolishes every widget from a list it made beforehand; a garbage collection
    # that ran meanwhile (Python code runs in the events it sends) could delete a
    # Python-owned window of that list under it (a crash seen in the tests). Collect
    # first, and not during.
    gc.collect()
    gc.disable()
    try:
        app.setStyleSheet(style_sheet(palette))
    finally:
        gc.enable()
    return True


def set_kind(button: QPushButton, kind: str) -> QPushButton:
    """Style a button as ``primary``, ``danger``, ``success`` or ``flat``."""
    button.setProperty("kind", kind)
    button.style().unpolish(button)
    button.style().polish(button)
    return button


def named(widget: QWidget, name: str) -> QWidget:
    widget.setObjectName(name)
    return widget


def avatar_colour(name: str) -> QColor:
    return QColor(AVATAR_COLOURS[zlib.crc32(name.lower().encode("utf-8"))
                                 % len(AVATAR_COLOURS)])


def initials(name: str) -> str:
    parts = [p for p in name.replace("_", " ").replace(".", " ").split() if p]
    if len(parts) >= 2:
        return (parts[0][0] + parts[1][0]).upper()
    return name[:1].upper() or "?"


def paint_avatar(painter: QPainter, rect: QRectF, name: str,
                 presence: str | None = None) -> None:
    """A coloured circle with the name's initials; a presence dot at the bottom right."""
    painter.save()
    painter.setRenderHint(QPainter.Antialiasing)
    painter.setPen(Qt.NoPen)
    painter.setBrush(avatar_colour(name))
    painter.drawEllipse(rect)
    font = QFont(painter.font())
    font.setBold(True)
    font.setPixelSize(max(8, int(rect.height() * 0.38)))
    painter.setFont(font)
    painter.setPen(QColor("white"))
    painter.drawText(rect, Qt.AlignCenter, initials(name))
    if presence is not None:
        size = max(8.0, rect.width() * 0.3)
        dot = QRectF(rect.right() - size + 1, rect.bottom() - size + 1, size, size)
        painter.setBrush(QColor(PRESENCE_COLOURS.get(presence, PRESENCE_COLOURS["offline"])))
        painter.setPen(QPen(QColor(SURFACE), 1.5))      # a ring in the background's colour
        painter.drawEllipse(dot)
    painter.restore()


def avatar_pixmap(name: str, size: int, presence: str | None = None) -> QPixmap:
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.transparent)
    painter = QPainter(pixmap)
    paint_avatar(painter, QRectF(1, 1, size - 2, size - 2), name, presence)
    painter.end()
    return pixmap


def avatar_icon(name: str, size: int, presence: str | None = None) -> QIcon:
    return QIcon(avatar_pixmap(name, size, presence))


def dot_pixmap(colour: str, size: int = 10) -> QPixmap:
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.Antialiasing)
    painter.setPen(Qt.NoPen)
    painter.setBrush(QColor(colour))
    painter.drawEllipse(QRectF(0.5, 0.5, size - 1, size - 1))
    painter.end()
    return pixmap


def app_icon() -> QIcon:
    """A speech bubble in the accent colour (drawn, so no image files are shipped)."""
    icon = QIcon()
    for size in (16, 32, 64, 128):
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.Antialiasing)
        painter.setPen(Qt.NoPen)
        painter.setBrush(QColor(ACCENT))
        body = QRectF(size * 0.06, size * 0.1, size * 0.88, size * 0.66)
        painter.drawRoundedRect(body, size * 0.2, size * 0.2)
        painter.drawPolygon(QPolygonF([QPointF(size * 0.25, size * 0.7),
                                       QPointF(size * 0.22, size * 0.94),
                                       QPointF(size * 0.48, size * 0.72)]))
        painter.setBrush(QColor("white"))
        for i in range(3):
            r = size * 0.07
            cx = size * (0.3 + 0.2 * i)
            painter.drawEllipse(QPointF(cx, size * 0.43), r, r)
        painter.end()
        icon.addPixmap(pixmap)
    return icon
