"""How the desktop client looks: colours, the style sheet, avatars and presence dots."""

from __future__ import annotations

import zlib

from PyQt5.QtCore import QPointF, QRectF, Qt
from PyQt5.QtGui import QColor, QFont, QIcon, QPainter, QPixmap, QPolygonF
from PyQt5.QtWidgets import QApplication, QPushButton, QWidget

BACKGROUND = "#f3f5f9"
SURFACE = "#ffffff"
TEXT = "#1f2937"
MUTED = "#6b7280"
BORDER = "#e3e7ee"
ACCENT = "#2563eb"
ACCENT_DARK = "#1d4ed8"
ACCENT_SOFT = "#dbe7fe"
DANGER = "#dc2626"
DANGER_SOFT = "#fde8e8"
SUCCESS = "#16a34a"
WARNING = "#d97706"
CHAT_BACKGROUND = "#eef2f7"
OWN_BUBBLE = "#2563eb"
OWN_PENDING = "#8fb0f4"
OTHER_BUBBLE = "#ffffff"

PRESENCE_COLOURS = {"online": "#22c55e", "away": "#f59e0b", "offline": "#9ca3af"}
PRESENCE_WORDS = {"online": "Online", "away": "Away", "offline": "Offline"}

AVATAR_COLOURS = ("#2563eb", "#7c3aed", "#db2777", "#ea580c", "#0891b2", "#059669",
                  "#4f46e5", "#b45309", "#0d9488", "#9333ea")

STYLE_SHEET = f"""
QWidget {{ color: {TEXT}; }}
QMainWindow, QDialog, QWidget#window {{ background: {BACKGROUND}; }}
QWidget#sidebar {{ background: {SURFACE}; border-right: 1px solid {BORDER}; }}
QWidget#card, QFrame#card {{ background: {SURFACE}; border: 1px solid {BORDER};
    border-radius: 10px; }}
QWidget#header {{ background: {SURFACE}; border-bottom: 1px solid {BORDER}; }}
QLabel#title {{ font-size: 20pt; font-weight: 600; }}
QLabel#subtitle, QLabel#muted {{ color: {MUTED}; }}
QLabel#heading {{ font-size: 12pt; font-weight: 600; }}
QLabel#error {{ background: {DANGER_SOFT}; color: #991b1b; border: 1px solid #f5b5b5;
    border-radius: 8px; }}
QLabel#info {{ background: {ACCENT_SOFT}; color: #1e3a8a; border: 1px solid #b9cdf8;
    border-radius: 8px; }}
QLabel#badge {{ background: {ACCENT_SOFT}; color: {ACCENT_DARK}; border-radius: 8px;
    padding: 1px 7px; font-size: 8pt; font-weight: 600; }}
QLabel#code {{ font-family: "DejaVu Sans Mono", monospace; font-size: 16pt; }}
QLineEdit, QPlainTextEdit, QTextEdit {{
    background: {SURFACE}; border: 1px solid #cfd6e2; border-radius: 7px;
    padding: 5px 8px; selection-background-color: {ACCENT}; }}
QLineEdit:focus, QPlainTextEdit:focus, QTextEdit:focus {{ border: 1px solid {ACCENT}; }}
QLineEdit:disabled, QPlainTextEdit:disabled {{ background: #f1f3f7; color: {MUTED}; }}
QPushButton {{ background: {SURFACE}; border: 1px solid #cfd6e2; border-radius: 7px;
    padding: 6px 14px; }}
QPushButton:hover {{ background: #f5f8fd; border-color: #b7c3d6; }}
QPushButton:focus {{ border: 1px solid {ACCENT}; }}
QPushButton:disabled {{ color: #a3aab5; background: #f4f5f8; border-color: #e1e4ea; }}
QPushButton[kind="primary"] {{ background: {ACCENT}; color: white; border: 1px solid
    {ACCENT}; font-weight: 600; }}
QPushButton[kind="primary"]:hover {{ background: {ACCENT_DARK}; }}
QPushButton[kind="primary"]:disabled {{ background: #9db5ec; border-color: #9db5ec;
    color: #eef3fd; }}
QPushButton[kind="danger"] {{ background: {DANGER}; color: white; border: 1px solid
    {DANGER}; font-weight: 600; }}
QPushButton[kind="danger"]:hover {{ background: #b91c1c; }}
QPushButton[kind="success"] {{ background: {SUCCESS}; color: white; border: 1px solid
    {SUCCESS}; font-weight: 600; }}
QPushButton[kind="success"]:hover {{ background: #15803d; }}
QPushButton[kind="flat"] {{ background: transparent; border: none; color: {ACCENT};
    padding: 2px 4px; }}
QPushButton[kind="flat"]:hover {{ text-decoration: underline; }}
QPushButton::menu-indicator {{ image: none; width: 0; }}
QTabWidget::pane {{ border: none; }}
QTabBar::tab {{ background: transparent; padding: 8px 18px; margin-right: 2px;
    border-bottom: 2px solid transparent; color: {MUTED}; }}
QTabBar::tab:selected {{ color: {ACCENT}; border-bottom: 2px solid {ACCENT}; }}
QTabBar::tab:hover {{ color: {TEXT}; }}
QListView, QListWidget, QTableWidget, QTextBrowser {{ background: {SURFACE};
    border: 1px solid {BORDER}; border-radius: 8px; }}
QListView#contacts {{ border: none; background: transparent; }}
QListWidget::item {{ padding: 2px 4px; border-radius: 6px; }}
QListWidget::item:selected {{ background: {ACCENT_SOFT}; color: {TEXT}; }}
QListWidget::item:hover:!selected {{ background: #f2f5fa; }}
QListView#chat {{ border: none; background: {CHAT_BACKGROUND}; }}
QTableWidget {{ gridline-color: #edf0f4; selection-background-color: {ACCENT_SOFT};
    selection-color: {TEXT}; }}
QHeaderView::section {{ background: #f7f8fb; border: none; border-bottom: 1px solid
    {BORDER}; padding: 6px; font-weight: 600; color: {MUTED}; }}
QStatusBar {{ background: {SURFACE}; border-top: 1px solid {BORDER}; }}
QStatusBar QLabel {{ padding: 0 6px; }}
QToolTip {{ background: #111827; color: white; border: none; padding: 5px; }}
QCheckBox {{ spacing: 6px; }}
QScrollBar:vertical {{ background: transparent; width: 10px; margin: 2px; }}
QScrollBar::handle:vertical {{ background: #c6ceda; border-radius: 4px; min-height: 30px; }}
QScrollBar::add-line:vertical, QScrollBar::sub-line:vertical {{ height: 0; }}
QScrollBar::add-page:vertical, QScrollBar::sub-page:vertical {{ background: none; }}
"""


def apply(app: QApplication) -> None:
    """Fonts and the style sheet for the whole application."""
    app.setStyle("Fusion")
    font = QFont(app.font())
    if font.pointSizeF() < 10:
        font.setPointSizeF(10)
    app.setFont(font)
    app.setStyleSheet(STYLE_SHEET)
    app.setWindowIcon(app_icon())


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
        painter.setPen(QColor("white"))
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
