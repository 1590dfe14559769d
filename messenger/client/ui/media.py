"""Files in messages (issue 14), as the chat shows them: an image as its preview (the
sender's thumbnail, decoded by the client core with Pillow's limits, in a thread), any
other file as a card with its name, size and type; and the sizes people read.

`Thumbnails` decodes each attachment's thumbnail once per pane and keeps the pixmap; an
image that cannot be decoded (or lies about itself) is drawn as a placeholder, never
trusted. Painting asks the message view's ``thumbnail(entry)`` (None while loading or
for a placeholder).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PyQt5.QtCore import QRectF, Qt
from PyQt5.QtGui import QColor, QFont, QImage, QPainter, QPainterPath, QPixmap

from messenger.client.ui import style

IMAGE_MAX_WIDTH, IMAGE_MAX_HEIGHT, IMAGE_MIN = 280, 240, 48
CARD_WIDTH, CARD_HEIGHT = 250, 50
FAILED = "failed"


def format_size(size: int) -> str:
    """1 B, 12 KB, 3.4 MB, 1.2 GB (powers of 1024, as file managers show them)."""
    if size < 1024:
        return f"{size} B"
    for unit in ("KB", "MB", "GB", "TB"):
        size /= 1024  # type: ignore[assignment]
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if size >= 10 else f"{size:.1f} {unit}"
    return f"{size} B"


def media_size(entry: Any, max_width: int) -> tuple[float, float]:
    """The width and height of a message's preview or card (0, 0 without a file)."""
    attachment = entry.attachment
    if attachment is None:
        return 0.0, 0.0
    if attachment.is_image and attachment.width and attachment.height:
        scale = min(1.0, min(IMAGE_MAX_WIDTH, max_width) / attachment.width,
                    IMAGE_MAX_HEIGHT / attachment.height)
        return (max(IMAGE_MIN, attachment.width * scale),
                max(IMAGE_MIN, attachment.height * scale))
    return float(min(CARD_WIDTH, max_width)), float(CARD_HEIGHT)


def extension_of(name: str) -> str:
    """What the file card's icon says: PDF, ZIP, DOCX ("FILE" without a short one)."""
    stem, dot, extension = name.rpartition(".")
    return extension.upper() if dot and stem and 0 < len(extension) <= 4 else "FILE"


def card_lines(attachment: Any) -> tuple[str, str]:
    """The file card's two lines: the name, then size and type."""
    kind = attachment.mime.split(";")[0] if attachment.mime else ""
    details = " · ".join(part for part in (format_size(attachment.size)
                                           if attachment.size else "", kind) if part)
    return attachment.name, details or "file"


def paint_media(painter: QPainter, rect: QRectF, entry: Any, small: QFont,
                view: Any) -> None:
    attachment = entry.attachment
    path = QPainterPath()
    path.addRoundedRect(rect, 10, 10)
    palette = style.PALETTE
    painter.save()
    if attachment.is_image:
        thumbnail = getattr(view, "thumbnail", lambda _: None)(entry)
        if isinstance(thumbnail, QPixmap) and not thumbnail.isNull():
            painter.setClipPath(path)
            painter.drawPixmap(rect.toRect(), thumbnail)
        else:
            painter.fillPath(path, QColor(palette.day_pill))
            painter.setPen(QColor(palette.muted))
            painter.setFont(small)
            words = "🖼 image not shown" if thumbnail == FAILED else "🖼"
            painter.drawText(rect, Qt.AlignCenter, words)
        painter.restore()
        return
    painter.fillPath(path, QColor(0, 0, 0, 40) if entry.own else QColor(palette.day_pill))
    icon = QRectF(rect.left() + 8, rect.top() + 8, rect.height() - 16, rect.height() - 16)
    painter.setPen(Qt.NoPen)
    painter.setBrush(QColor(palette.accent))
    painter.drawRoundedRect(icon, 6, 6)
    painter.setPen(QColor("white"))
    label = QFont(small)
    label.setBold(True)
    label.setPointSizeF(max(6.0, small.pointSizeF() - 1.5))
    painter.setFont(label)
    painter.drawText(icon, Qt.AlignCenter, extension_of(attachment.name))
    name, details = card_lines(attachment)
    text_left = icon.right() + 10
    width = rect.right() - text_left - 6
    bold = QFont(small)
    bold.setBold(True)
    colour = QColor("white") if entry.own else QColor(palette.text)
    painter.setPen(colour)
    painter.setFont(bold)
    painter.drawText(QRectF(text_left, rect.top() + 6, width, rect.height() / 2 - 4),
                     Qt.AlignLeft | Qt.AlignVCenter,
                     painter.fontMetrics().elidedText(name, Qt.ElideMiddle, int(width)))
    painter.setFont(small)
    painter.setPen(QColor(palette.own_footer if entry.own else palette.muted))
    painter.drawText(QRectF(text_left, rect.center().y(), width, rect.height() / 2 - 6),
                     Qt.AlignLeft | Qt.AlignVCenter, details)
    painter.restore()


class Thumbnails:
    """Decoded thumbnails of one pane, by file id (``changed(file_id)`` when one is
    ready or known to be undecodable)."""

    def __init__(self, client: Any, changed: Callable[[int], None]) -> None:
        self.client = client
        self.changed = changed
        self.pixmaps: dict[int, Any] = {}       # file id -> QPixmap, FAILED, or None

    def get(self, attachment: Any) -> Any:
        """The pixmap (None while loading: it is asked for now)."""
        if attachment is None or not attachment.is_image:
            return None
        file_id = attachment.file_id
        if file_id not in self.pixmaps:
            self.pixmaps[file_id] = None
            if not attachment.thumbnail or not hasattr(self.client, "load_thumbnail"):
                self.pixmaps[file_id] = FAILED
            else:
                d = self.client.load_thumbnail(attachment)
                d.addCallbacks(self._decoded, self._failed, callbackArgs=(file_id,),
                               errbackArgs=(file_id,))
        return self.pixmaps[file_id]

    def _decoded(self, image: Any, file_id: int) -> None:
        self.pixmaps[file_id] = pixmap_of(image) if image is not None else FAILED
        self.changed(file_id)

    def _failed(self, failure: Any, file_id: int) -> None:
        self.pixmaps[file_id] = FAILED
        self.changed(file_id)


def pixmap_of(image: Any) -> QPixmap | str:
    """A Pillow image as a QPixmap (on the GUI thread: the bytes are copied)."""
    try:
        rgba = image.convert("RGBA")
        data = rgba.tobytes("raw", "RGBA")
        qimage = QImage(data, rgba.width, rgba.height, rgba.width * 4,
                        QImage.Format_RGBA8888).copy()
    except Exception:  # noqa: BLE001 (anything odd about a hostile image: a placeholder)
        return FAILED
    return QPixmap.fromImage(qimage)
