"""Files in the desktop client (issue 14), real desktops on a real server: a PNG dropped
on a chat arrives as a preview on the other side; a file sent with the 📎 path shows as a
card and is saved where the user chooses, intact; a pasted image is sent; an image whose
thumbnail cannot be decoded shows a placeholder; a transfer shows progress and can be
cancelled."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from PIL import Image
from PyQt5.QtCore import QMimeData, QPoint, Qt, QUrl
from PyQt5.QtGui import QDropEvent, QGuiApplication, QImage, QPixmap
from PyQt5.QtTest import QTest
from twisted.internet import defer

from messenger.client.events import Attachment
from messenger.client.ui.media import FAILED
from tests.client.ui.helpers import DesktopTestCase, chat_item, wait_for


def make_png(path: Path, width: int = 640, height: int = 400) -> Path:
    image = Image.new("RGB", (width, height), (30, 120, 200))
    for x in range(0, width, 40):
        for y in range(height):
            image.putpixel((x, y), (250, 200, 40))
    image.save(path, "PNG")
    return path


def drop(widget: Any, paths: list[Path]) -> None:
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    event = QDropEvent(QPoint(10, 10), Qt.CopyAction, data, Qt.LeftButton, Qt.NoModifier)
    widget.dropEvent(event)


class FileTestCase(DesktopTestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield self.start_server()
        self.alice = yield self.register("alice")
        self.bob = yield self.register("bob")
        self.folder = Path(self.mktemp())
        self.folder.mkdir()


class FileTests(FileTestCase):
    @defer.inlineCallbacks
    def test_dropped_png_arrives_as_a_preview(self) -> Any:
        """A PNG dropped on alice's chat is uploaded (a progress row while it goes) and
        shows on bob's side as an image with its size and a decoded thumbnail; the
        composer's text went with it as the caption."""
        pane = self.alice.main_window.open_chat("bob")
        pane.compose.setPlainText("the diagram")
        drop(pane, [make_png(self.folder / "diagram.png")])
        self.assertEqual(pane.compose.toPlainText(), "")
        self.assertEqual(len(pane.transfer_rows), 1)
        yield wait_for(lambda: not pane.transfer_rows, what="the upload done")
        yield wait_for(lambda: (item := chat_item(self.bob, "alice")) is not None
                       and item.record.preview == "the diagram", what="bob has it")
        bob_pane = self.bob.main_window.open_chat("alice")
        yield wait_for(lambda: bob_pane.model.rowCount() == 1, what="the message")
        entry = bob_pane.model.entry(0)
        self.assertTrue(entry.attachment.is_image)
        self.assertEqual((entry.attachment.width, entry.attachment.height), (640, 400))
        self.assertEqual(entry.text, "the diagram")
        yield wait_for(lambda: isinstance(bob_pane.view.thumbnail(entry), QPixmap),
                       what="the thumbnail decoded")
        thumbnail = bob_pane.view.thumbnail(entry)
        self.assertEqual(thumbnail.width() * 400, thumbnail.height() * 640)
        own = [e for e in pane.model.entries() if e.own][0]
        self.assertTrue(own.attachment.is_image)

    @defer.inlineCallbacks
    def test_a_file_card_saved_intact(self) -> Any:
        """A document arrives as a card (name, size); Save writes it where bob chose,
        the same bytes; a transfer can be cancelled."""
        document = self.folder / "homework.pdf"
        document.write_bytes(b"%PDF-1.4 " + bytes(range(256)) * 4000)
        pane = self.alice.main_window.open_chat("bob")
        [transfer] = pane.send_files([document])
        yield transfer.when_done()
        bob_pane = self.bob.main_window.open_chat("alice")
        yield wait_for(lambda: bob_pane.model.rowCount() == 1, what="the message")
        entry = bob_pane.model.entry(0)
        self.assertFalse(entry.attachment.is_image)
        self.assertEqual(chat_item(self.bob, "alice").record.preview, "📎 homework.pdf")
        self.assertEqual((entry.attachment.name, entry.attachment.size),
                         ("homework.pdf", document.stat().st_size))
        self.assertIsNone(bob_pane.view.thumbnail(entry))
        dialog = bob_pane.choose_save_path(entry)
        self.assertTrue(dialog.selectedFiles()[0].endswith("homework.pdf"))
        dialog.close()
        target = self.folder / "saved.pdf"
        download = bob_pane.save_attachment(entry, target)
        yield wait_for(lambda: bob_pane.banner.kind == "info", what="saved")
        self.assertIn("saved.pdf", bob_pane.banner.text())
        self.assertEqual(download.state, "done")
        self.assertEqual(hashlib.sha256(target.read_bytes()).hexdigest(),
                         hashlib.sha256(document.read_bytes()).hexdigest())
        big = self.folder / "big.bin"
        big.write_bytes(bytes(20 * 1024 * 1024))
        [upload] = pane.send_files([big])
        row = pane.transfer_rows[upload.transfer_id]
        QTest.mouseClick(row.button, Qt.LeftButton)
        yield self.assertFailure(upload.when_done(), Exception)
        yield wait_for(lambda: not pane.transfer_rows, what="the row gone")

    @defer.inlineCallbacks
    def test_pasted_image_is_sent(self) -> Any:
        pane = self.alice.main_window.open_chat("bob")
        image = QImage(120, 80, QImage.Format_RGB32)
        image.fill(Qt.red)
        QGuiApplication.clipboard().setImage(image)
        pane.compose.setFocus()
        QTest.keyClick(pane.compose, Qt.Key_V, Qt.ControlModifier)
        self.assertEqual(len(pane.transfer_rows), 1)
        yield wait_for(lambda: not pane.transfer_rows, what="sent")
        bob_pane = self.bob.main_window.open_chat("alice")
        yield wait_for(lambda: bob_pane.model.rowCount() == 1, what="bob has it")
        attachment = bob_pane.model.entry(0).attachment
        self.assertEqual((attachment.name, attachment.width, attachment.height),
                         ("pasted-image.png", 120, 80))

    @defer.inlineCallbacks
    def test_an_undecodable_thumbnail_is_a_placeholder(self) -> Any:
        """A thumbnail that is not an image (a hostile sender) is never shown: the
        preview is a placeholder."""
        pane = self.bob.main_window.open_chat("alice")
        bogus = Attachment(99, "evil.png", 10, "image/png", "0" * 64, 100, 100,
                           "bm90IGFuIGltYWdl")
        pane.model.add_stored(5, 1.0, "alice", "", attachment=bogus)
        entry = pane.model.entry(0)
        pane.view.thumbnail(entry)
        yield wait_for(lambda: pane.view.thumbnail(entry) == FAILED, what="refused")
