"""How messages look: bubbles, day pills, the "Unread messages" bar, links, and the
selected part of the text; and where a point falls in a bubble's text (for selecting).

Own messages are on the right in the accent colour, the other side's on the left; the
time and (for own messages) sending… / ✓ stored / ✓✓ delivered / ✓✓ read (in a group
"read by N") / not sent under the text. In a group each
other member's bubble starts with its name (in that member's avatar colour), its avatar
beside it; ``@name``
mentions are bold, and a message that mentions the user is tinted and outlined. Long texts wrap at
word boundaries, or anywhere in a word longer than the line. The text is laid out with
one `QTextLayout` per (text, width, font), cached: painting, measuring and hit testing
use the same layout, so a selection lands exactly on the characters drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PyQt5.QtCore import QModelIndex, QPointF, QRectF, QSize, Qt
from PyQt5.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QPainter,
    QPainterPath,
    QPen,
    QTextCharFormat,
    QTextLayout,
    QTextOption,
)
from PyQt5.QtWidgets import QStyledItemDelegate, QStyleOptionViewItem

from messenger.client.ui import style
from messenger.client.ui.chat_model import ENTRY_ROLE, FAILED, PENDING, ChatEntry
from messenger.client.ui.media import media_size, paint_media
from messenger.client.ui.messages import format_clock, format_day

PAD_X, PAD_Y = 12, 8            # inside a bubble
MARGIN_X, GAP = 16, 4           # bubble to the view's edge; between bubbles
DAY_HEIGHT = 36
DIVIDER_HEIGHT = 30
BEGINNING_HEIGHT = 40
RADIUS = 14
QUOTE_HEIGHT, QUOTE_WIDTH = 44, 180     # a reply's quote of the message it answers
DELETED_WORDS = "🚫 message deleted"
SENDER_AVATAR = 30              # a group member's avatar beside its bubble
MEDIA_GAP = 6                   # between an image or file card and the caption
UNREAD_WORDS = "Unread messages"


@dataclass
class Bubble:
    entry: ChatEntry
    beginning: str
    show_day: bool
    divider: bool
    layout: QTextLayout
    rect: QRectF                 # the bubble
    text_origin: QPointF         # where the layout is drawn
    text_height: float
    footer_height: float
    sender_height: float = 0.0   # the sender's name above the text (groups)
    media: QRectF | None = None  # an image preview or a file card, above the text
    quote: QRectF | None = None  # the message it replies to, above the text


class BubbleDelegate(QStyledItemDelegate):
    """Draws `ChatEntry` rows; the view (``parent``) may offer ``selection_range(row)``
    -> (start, end) of the selected characters in that row."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._layouts: dict[tuple[str, int, str], tuple[QTextLayout, float, float]] = {}

    # -- geometry -------------------------------------------------------------------------

    @staticmethod
    def fonts(option: QStyleOptionViewItem) -> tuple[QFont, QFont]:
        text_font = QFont(option.font)
        small = QFont(option.font)
        small.setPointSizeF(max(7.0, option.font.pointSizeF() - 1.5))
        return text_font, small

    def text_layout(self, text: str, font: QFont, width: int
                    ) -> tuple[QTextLayout, float, float]:
        key = (text, width, font.key())
        cached = self._layouts.get(key)
        if cached is not None:
            return cached
        layout = QTextLayout(text.replace("\n", "\u2028"), font)
        option = QTextOption()
        option.setWrapMode(QTextOption.WrapAtWordBoundaryOrAnywhere)
        layout.setTextOption(option)
        layout.setCacheEnabled(True)
        height = natural = 0.0
        leading = QFontMetrics(font).leading()
        layout.beginLayout()
        while True:
            line = layout.createLine()
            if not line.isValid():
                break
            line.setLineWidth(width)
            height += leading
            line.setPosition(QPointF(0, height))
            height += line.height()
            natural = max(natural, line.naturalTextWidth())
        layout.endLayout()
        if len(self._layouts) > 2000:
            self._layouts.clear()
        self._layouts[key] = (layout, natural, height)
        return layout, natural, height

    @staticmethod
    def show_day(index: QModelIndex) -> bool:
        entry = index.data(ENTRY_ROLE)
        if index.row() == 0:
            return True
        previous = index.model().index(index.row() - 1, 0).data(ENTRY_ROLE)
        return previous is None or format_day(previous.time) != format_day(entry.time)

    @staticmethod
    def footer(entry: ChatEntry) -> str:
        clock = format_clock(entry.time)
        if entry.edited and not entry.deleted:
            clock = f"edited {clock}"
        if not entry.own:
            return clock
        if entry.status == PENDING:
            return f"{clock}  sending…"
        if entry.status == FAILED:
            return f"not sent: {entry.error}" if entry.error else "not sent"
        if entry.receipt == "read":
            return f"{clock}  ✓✓ read" + (f" by {entry.read_by}" if entry.read_by else "")
        if entry.receipt == "delivered":
            return f"{clock}  ✓✓"
        return f"{clock}  ✓"

    def bubble(self, option: QStyleOptionViewItem, index: QModelIndex) -> Bubble:
        entry: ChatEntry = index.data(ENTRY_ROLE)
        text_font, small = self.fonts(option)
        view_width = max(200, option.rect.width())
        max_text = int(min(640, view_width * 0.72)) - 2 * PAD_X
        layout, natural, text_height = self.text_layout(shown_text(entry), text_font,
                                                        max_text)
        if not shown_text(entry):
            natural = text_height = 0.0            # a file without a caption
        media_width, media_height = media_size(entry, max_text)
        quote_height = QUOTE_HEIGHT if entry.reply_to is not None else 0.0
        footer_width = QFontMetrics(small).horizontalAdvance(self.footer(entry))
        footer_height = QFontMetrics(small).height()
        model = index.model()
        sender_height = sender_width = 0.0
        if getattr(model, "show_senders", False) and not entry.own:
            metrics = QFontMetrics(self.sender_font(option))
            sender_height = metrics.height() + 2
            sender_width = metrics.horizontalAdvance(entry.sender) + 2
        width = min(max(natural, footer_width + 2, sender_width, media_width,
                        QUOTE_WIDTH if quote_height else 0), max_text) + 2 * PAD_X
        media_gap = MEDIA_GAP if media_height else 0.0
        height = text_height + footer_height + sender_height + quote_height + \
            media_height + media_gap + \
            2 * PAD_Y + 2
        show_day = self.show_day(index)
        divider = getattr(model, "divider_row", None) == index.row()
        beginning = getattr(model, "beginning", "") if index.row() == 0 else ""
        top = option.rect.top() + (BEGINNING_HEIGHT if beginning else 0) + \
            (DAY_HEIGHT if show_day else 0) + (DIVIDER_HEIGHT if divider else 0) + GAP
        left = (option.rect.left() + view_width - MARGIN_X - width if entry.own
                else option.rect.left() + MARGIN_X + (SENDER_AVATAR + 8 if sender_height
                                                      else 0))
        rect = QRectF(left, top, width, height)
        quote = QRectF(left + PAD_X, top + PAD_Y + sender_height, width - 2 * PAD_X,
                       quote_height - 6) if quote_height else None
        media_top = top + PAD_Y + sender_height + quote_height
        media = QRectF(left + PAD_X, media_top, media_width, media_height) \
            if media_height else None
        return Bubble(entry, beginning, show_day, divider, layout, rect,
                      QPointF(left + PAD_X, media_top + media_height + media_gap),
                      text_height, footer_height, sender_height, media, quote)

    def media_at(self, option: QStyleOptionViewItem, index: QModelIndex,
                 point: QPointF) -> bool:
        """Is ``point`` on the row's image preview or file card?"""
        media = self.bubble(option, index).media
        return media is not None and media.contains(point)

    def quote_at(self, option: QStyleOptionViewItem, index: QModelIndex,
                 point: QPointF) -> bool:
        """Is ``point`` on the row's quote of the message it replies to?"""
        quote = self.bubble(option, index).quote
        return quote is not None and quote.contains(point)

    @staticmethod
    def sender_font(option: QStyleOptionViewItem) -> QFont:
        font = QFont(option.font)
        font.setPointSizeF(max(7.0, option.font.pointSizeF() - 1))
        font.setBold(True)
        return font

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        if index.data(ENTRY_ROLE) is None:
            return QSize(0, 0)
        option = QStyleOptionViewItem(option)
        option.rect.setTop(0)
        if self.parent() is not None and hasattr(self.parent(), "viewport"):
            option.rect.setWidth(self.parent().viewport().width())
        bubble = self.bubble(option, index)
        return QSize(option.rect.width(), int(bubble.rect.bottom() + GAP + 1))

    def cursor_at(self, option: QStyleOptionViewItem, index: QModelIndex,
                  point: QPointF) -> tuple[int, bool]:
        """The character position nearest ``point`` in this row's text, and whether the
        point is on the text itself (not beside it)."""
        bubble = self.bubble(option, index)
        local = point - bubble.text_origin
        layout = bubble.layout
        length = len(bubble.entry.text)
        if local.y() < 0:
            return 0, False
        if local.y() >= bubble.text_height:
            return length, False
        for number in range(layout.lineCount()):
            line = layout.lineAt(number)
            if line.y() <= local.y() < line.y() + line.height() + 1:
                position = line.xToCursor(local.x(), line.CursorBetweenCharacters)
                inside = 0 <= local.x() <= line.naturalTextWidth() + 2
                return max(0, min(length, position)), inside
        return length, False

    # -- painting -------------------------------------------------------------------------

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex) -> None:
        if index.data(ENTRY_ROLE) is None:
            return
        bubble = self.bubble(option, index)
        entry = bubble.entry
        text_font, small = self.fonts(option)
        painter.save()
        painter.setRenderHint(QPainter.Antialiasing)
        top = option.rect.top()
        if bubble.beginning:
            self._paint_beginning(painter, option, small, bubble.beginning, top)
            top += BEGINNING_HEIGHT
        if bubble.show_day:
            self._paint_pill(painter, option, small, format_day(entry.time), top)
            top += DAY_HEIGHT
        if bubble.divider:
            self._paint_divider(painter, option, small, top)
        text_colour, footer_colour, link_colour = self._paint_shape(painter, bubble)
        if bubble.sender_height:
            avatar = QRectF(option.rect.left() + MARGIN_X,
                            bubble.rect.bottom() - SENDER_AVATAR, SENDER_AVATAR, SENDER_AVATAR)
            style.paint_avatar(painter, avatar, entry.sender)
            painter.setFont(self.sender_font(option))
            painter.setPen(style.avatar_colour(entry.sender))
            painter.drawText(QRectF(bubble.rect.left() + PAD_X, bubble.rect.top() + PAD_Y,
                                    bubble.rect.width() - 2 * PAD_X, bubble.sender_height),
                             Qt.AlignLeft | Qt.AlignTop, entry.sender)
        if bubble.quote is not None:
            paint_quote(painter, bubble.quote, entry, index.model().quoted(entry), small)
        if bubble.media is not None:
            paint_media(painter, bubble.media, entry, small, self.parent())
        painter.setPen(QColor(style.PALETTE.muted) if entry.deleted and not entry.own
                       else text_colour)
        painter.setFont(text_font)
        bubble.layout.draw(painter, bubble.text_origin,
                           self._formats(entry, index.row(), link_colour))
        painter.setFont(small)
        painter.setPen(footer_colour)
        rect = bubble.rect
        footer = QRectF(rect.left() + PAD_X, rect.bottom() - PAD_Y - bubble.footer_height,
                        rect.width() - 2 * PAD_X, bubble.footer_height)
        painter.drawText(footer, Qt.AlignRight | Qt.AlignVCenter, self.footer(entry))
        painter.restore()

    def _paint_shape(self, painter: QPainter, bubble: Bubble) -> tuple[QColor, QColor, QColor]:
        entry = bubble.entry
        palette = style.PALETTE
        path = QPainterPath()
        path.addRoundedRect(bubble.rect, RADIUS, RADIUS)
        if entry.own:
            fill = {PENDING: palette.own_pending, FAILED: palette.danger_soft}.get(
                entry.status, palette.own_bubble)
            painter.fillPath(path, QColor(fill))
            if entry.status == FAILED:
                painter.setBrush(Qt.NoBrush)
                painter.setPen(QPen(QColor(palette.danger), 1.2))
                painter.drawPath(path)
                return QColor(palette.text), QColor(palette.danger), QColor(palette.link)
            return QColor("white"), QColor(palette.own_footer), QColor(palette.own_link)
        painter.fillPath(path, QColor(palette.accent_soft if entry.mentioned
                                      else palette.other_bubble))
        painter.setBrush(Qt.NoBrush)
        painter.setPen(QPen(QColor(palette.accent if entry.mentioned else palette.border),
                            1.5 if entry.mentioned else 1))
        painter.drawPath(path)
        return QColor(palette.text), QColor(palette.muted), QColor(palette.link)

    def _formats(self, entry: ChatEntry, row: int, link_colour: QColor
                 ) -> list[QTextLayout.FormatRange]:
        """Links underlined, then the selection over them."""
        ranges = []
        for start, end in entry.mention_spans:
            fmt = QTextCharFormat()
            fmt.setFontWeight(QFont.Bold)
            if not entry.own:
                fmt.setForeground(link_colour)
            ranges.append(_range(start, end - start, fmt))
        for start, end, _ in entry.links:
            fmt = QTextCharFormat()
            fmt.setForeground(link_colour)
            fmt.setFontUnderline(True)
            ranges.append(_range(start, end - start, fmt))
        view = self.parent()
        selected = view.selection_range(row) if hasattr(view, "selection_range") else None
        if selected is not None and selected[1] > selected[0]:
            fmt = QTextCharFormat()
            fmt.setBackground(QColor(style.PALETTE.selection))
            fmt.setForeground(QColor(style.PALETTE.text if not entry.own else "white"))
            ranges.append(_range(selected[0], selected[1] - selected[0], fmt))
        return ranges

    @staticmethod
    def _paint_pill(painter: QPainter, option: QStyleOptionViewItem, font: QFont,
                    text: str, top: float) -> None:
        painter.setFont(font)
        width = painter.fontMetrics().horizontalAdvance(text) + 24
        pill = QRectF(option.rect.center().x() - width / 2, top + 10, width, 22)
        painter.setPen(Qt.NoPen)
        painter.setBrush(QColor(style.PALETTE.day_pill))
        painter.drawRoundedRect(pill, 11, 11)
        painter.setPen(QColor(style.PALETTE.day_text))
        painter.drawText(pill, Qt.AlignCenter, text)

    @staticmethod
    def _paint_beginning(painter: QPainter, option: QStyleOptionViewItem, font: QFont,
                         text: str, top: float) -> None:
        painter.setFont(font)
        painter.setPen(QColor(style.PALETTE.muted))
        rect = QRectF(option.rect.left() + MARGIN_X, top + 8,
                      option.rect.width() - 2 * MARGIN_X, BEGINNING_HEIGHT - 8)
        painter.drawText(rect, Qt.AlignCenter, painter.fontMetrics().elidedText(
            text, Qt.ElideRight, int(rect.width())))

    @staticmethod
    def _paint_divider(painter: QPainter, option: QStyleOptionViewItem, font: QFont,
                       top: float) -> None:
        band = QRectF(option.rect.left(), top + 4, option.rect.width(), DIVIDER_HEIGHT - 8)
        painter.setPen(Qt.NoPen)
        painter.setBrush(QColor(style.PALETTE.accent_soft))
        painter.drawRect(band)
        painter.setFont(font)
        painter.setPen(QColor(style.PALETTE.accent_text))
        painter.drawText(band, Qt.AlignCenter, UNREAD_WORDS)


def _range(start: int, length: int, fmt: QTextCharFormat) -> QTextLayout.FormatRange:
    format_range = QTextLayout.FormatRange()
    format_range.start, format_range.length, format_range.format = start, length, fmt
    return format_range


def shown_text(entry: ChatEntry) -> str:
    """What a bubble says: the text, or that the message was deleted."""
    return DELETED_WORDS if entry.deleted else entry.text


def paint_quote(painter: QPainter, rect: QRectF, entry: ChatEntry,
                quoted: ChatEntry | None, font: QFont) -> None:
    """The quoted message: a bar, its sender, its first line (a click jumps to it)."""
    painter.save()
    path = QPainterPath()
    path.addRoundedRect(rect, 6, 6)
    painter.fillPath(path, QColor(0, 0, 0, 35) if entry.own
                     else QColor(style.PALETTE.accent_soft))
    bar = style.avatar_colour(quoted.sender) if quoted is not None else \
        QColor(style.PALETTE.muted)
    painter.fillRect(QRectF(rect.left(), rect.top(), 3, rect.height()),
                     QColor("white") if entry.own else bar)
    who = ("you" if quoted.own else quoted.sender) if quoted is not None else "a message"
    text = (shown_text(quoted) if quoted is not None
            else "earlier in this conversation (click to find it)")
    inner = rect.adjusted(10, 3, -6, -3)
    bold = QFont(font)
    bold.setBold(True)
    painter.setFont(bold)
    painter.setPen(QColor("white") if entry.own else bar)
    half = inner.height() / 2
    painter.drawText(QRectF(inner.left(), inner.top(), inner.width(), half),
                     Qt.AlignLeft | Qt.AlignVCenter, who)
    painter.setFont(font)
    painter.setPen(QColor(style.PALETTE.own_footer if entry.own else style.PALETTE.muted))
    line = " ".join(text.split())
    painter.drawText(QRectF(inner.left(), inner.top() + half, inner.width(), half),
                     Qt.AlignLeft | Qt.AlignVCenter,
                     painter.fontMetrics().elidedText(line, Qt.ElideRight,
                                                      int(inner.width())))
    painter.restore()
