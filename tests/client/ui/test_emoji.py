"""Emoji in the desktop client: a colour emoji font is installed (./dev's APT_PACKAGES)
and draws emoji in colour, not as empty boxes; the composer's picker puts one at the
cursor and the message arrives with it."""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QColor, QImage, QPainter
from twisted.internet import defer

from messenger.client.ui.emoji import emoji_font, has_colour_emoji
from tests.client.ui.helpers import DesktopTestCase, chat_item, click, wait_for


def coloured_pixels(text: str) -> int:
    """How many clearly coloured (saturated) pixels drawing ``text`` makes."""
    image = QImage(64, 64, QImage.Format_ARGB32)
    image.fill(Qt.white)
    painter = QPainter(image)
    painter.setFont(emoji_font(28))
    painter.setPen(Qt.black)
    painter.drawText(image.rect(), Qt.AlignCenter, text)
    painter.end()
    return sum(1 for x in range(64) for y in range(64)
               if QColor(image.pixel(x, y)).hsvSaturation() > 80)


class EmojiFontTests(DesktopTestCase):
    def test_colour_emoji_are_drawn(self) -> None:
        """The font is there, and a face and a heart come out in colour (an empty box,
        or a black-and-white glyph, has no saturated pixel)."""
        self.assertTrue(has_colour_emoji())
        self.assertGreater(coloured_pixels("😀"), 100)
        self.assertGreater(coloured_pixels("💙"), 100)
        self.assertEqual(coloured_pixels("A"), 0)


class EmojiPickerTests(DesktopTestCase):
    @defer.inlineCallbacks
    def test_picker_puts_emoji_at_the_cursor(self) -> Any:
        """The composer's 🙂 button opens the picker; a click inserts at the cursor and
        leaves the picker open; the message arrives with the emoji."""
        yield self.start_server()
        alice = yield self.register("alice")
        bob = yield self.register("bob")
        pane = alice.main_window.open_chat("bob")
        pane.compose.setPlainText("Good morning !")
        cursor = pane.compose.textCursor()
        cursor.setPosition(len("Good morning "))
        pane.compose.setTextCursor(cursor)
        click(pane.emoji_button)
        picker = pane.emoji_picker
        self.assertTrue(picker.isVisible())
        self.assertGreater(len(picker.buttons), 200)
        click(picker.buttons["👋"])
        click(picker.buttons["💙"])
        self.assertTrue(picker.isVisible())
        self.assertNotIn("✌", picker.buttons)       # the text font's own, in black
        self.assertEqual(pane.compose.toPlainText(), "Good morning 👋💙!")
        picker.close()
        pane.send()
        yield wait_for(lambda: (item := chat_item(bob, "alice")) is not None
                       and item.record.preview == "Good morning 👋💙!",
                       what="bob has it")
