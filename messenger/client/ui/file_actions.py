"""Files in a conversation pane (issue 14): the 📎 button, files dropped on the pane and
images pasted into the composer are sent (``send_file`` / ``send_group_file``, the
composer's text as the first file's caption); each transfer has a row above the composer
with its progress and Cancel; a click on a file or image (or its menu's Save file…)
saves it where the user chooses (``download_file``). The client core moves the bytes,
resumes after a reconnect and checks the SHA-256; this only shows it. A mixin of
`ConversationPane` (``client``, ``view``, ``compose``, ``banner``, ``model``,
``conversation()``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QEvent, Qt
from PyQt5.QtGui import QGuiApplication, QKeySequence
from PyQt5.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from messenger.client.ui import style
from messenger.client.ui.media import Thumbnails, format_size
from messenger.client.ui.messages import explain

WAITING_WORDS = "waiting for the connection…"


class TransferRow(QWidget):
    """One transfer: its name, a progress bar and Cancel (Dismiss once it failed)."""

    def __init__(self, transfer: Any, cancel: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.transfer = transfer
        row = QHBoxLayout(self)
        row.setContentsMargins(12, 4, 12, 4)
        verb = "Sending" if transfer.kind == "upload" else "Saving"
        self.label = QLabel(f"{verb} {transfer.name}")
        self.label.setMinimumWidth(60)
        row.addWidget(self.label, 1)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setFixedWidth(120)
        row.addWidget(self.bar)
        self.button = style.set_kind(QPushButton("Cancel"), "flat")
        self.button.clicked.connect(lambda: cancel(self))
        row.addWidget(self.button)
        self.update_from(transfer)

    def update_from(self, transfer: Any) -> None:
        self.bar.setValue(int(transfer.fraction * 1000))
        size = f" ({format_size(transfer.size)})" if transfer.size else ""
        verb = "Sending" if transfer.kind == "upload" else "Saving"
        state = f" — {WAITING_WORDS}" if transfer.state == "waiting" else ""
        self.label.setText(f"{verb} {transfer.name}{size}{state}")


class FileActionsMixin:
    client: Any
    view: Any
    compose: Any
    banner: Any
    model: Any
    address: str

    def conversation(self) -> dict[str, Any]:
        raise NotImplementedError

    def init_files(self, layout: QVBoxLayout, composer_row: QHBoxLayout) -> None:
        self.thumbnails = Thumbnails(self.client, self._thumbnail_ready)
        self.view.thumbnail = lambda entry: self.thumbnails.get(entry.attachment)
        self.view.attachment_activated.connect(self.choose_save_path)
        self.view.menu_extras = self._menu_extras
        self.transfer_rows: dict[int, TransferRow] = {}
        self.transfers_box = QVBoxLayout()
        self.transfers_box.setContentsMargins(0, 0, 0, 0)
        self.transfers_box.setSpacing(0)
        layout.insertLayout(layout.count() - 1, self.transfers_box)
        self.attach_button = style.set_kind(QToolButton(), "emoji")
        self.attach_button.setText("📎")
        self.attach_button.setFixedSize(38, 38)
        self.attach_button.setFocusPolicy(Qt.NoFocus)
        self.attach_button.setToolTip("Send a file or an image (or drop it here, or paste"
                                      " an image)")
        self.attach_button.setAccessibleName("Attach a file")
        self.attach_button.clicked.connect(self.choose_files)
        composer_row.insertWidget(0, self.attach_button, 0, Qt.AlignBottom)
        self.setAcceptDrops(True)  # type: ignore[attr-defined]
        self.compose.installEventFilter(self)  # type: ignore[arg-type]

    # -- sending --------------------------------------------------------------------------

    def choose_files(self) -> QFileDialog:
        dialog = QFileDialog(self, "Send files")  # type: ignore[arg-type]
        dialog.setFileMode(QFileDialog.ExistingFiles)
        dialog.filesSelected.connect(lambda paths: self.send_files([Path(p) for p in paths]))
        dialog.open()
        self.file_dialog = dialog
        return dialog

    def send_files(self, paths: list[Path]) -> list[Any]:
        """Send each file; the composer's text goes with the first as its caption."""
        caption = self.compose.toPlainText().strip()
        where = self.conversation()
        sent = []
        for path in paths:
            try:
                if "group" in where:
                    transfer = self.client.send_group_file(where["group"], path, caption)
                else:
                    transfer = self.client.send_file(where["to"], path, caption)
            except Exception as error:  # noqa: BLE001 (NotConnected, too long: said)
                self.banner.show_error(f"{path.name} was not sent: "
                                       + explain(error, self.address))
                continue
            caption = ""
            self._track(transfer)
            sent.append(transfer)
        if sent:
            self.compose.clear()
        return sent

    def paste_image(self) -> Any:
        """An image on the clipboard (a screenshot) is sent as a PNG file."""
        image = QGuiApplication.clipboard().image()
        if image.isNull():
            return None
        folder = Path(tempfile.mkdtemp(prefix="messenger-paste-"))
        path = folder / "pasted-image.png"
        if not image.save(str(path), "PNG"):
            self.banner.show_error("The pasted image could not be prepared for sending.")
            return None
        return self.send_files([path])

    def eventFilter(self, watched: Any, event: Any) -> bool:  # noqa: N802
        if watched is getattr(self, "compose", None) and event.type() == QEvent.KeyPress and \
                event.matches(QKeySequence.Paste) and \
                QGuiApplication.clipboard().mimeData().hasImage():
            self.paste_image()
            return True
        return super().eventFilter(watched, event)  # type: ignore[misc]

    def dragEnterEvent(self, event: Any) -> None:  # noqa: N802
        if event.mimeData().hasUrls() or event.mimeData().hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event: Any) -> None:  # noqa: N802
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls()
                 if url.isLocalFile() and Path(url.toLocalFile()).is_file()]
        if paths:
            self.send_files(paths)
            event.acceptProposedAction()

    # -- saving ---------------------------------------------------------------------------

    def _menu_extras(self, entry: Any, menu: Any) -> None:
        if entry.attachment is not None and entry.msg_id is not None:
            menu.addAction("Save file…", lambda: self.choose_save_path(entry))

    def choose_save_path(self, entry: Any) -> QFileDialog | None:
        attachment = entry.attachment
        if attachment is None or entry.msg_id is None:
            return None
        from messenger.client.filesapi import safe_file_name
        start = Path.home() / "Downloads"
        folder = start if start.is_dir() else Path.home()
        dialog = QFileDialog(self, "Save file", str(folder / safe_file_name(attachment.name)))  # type: ignore[arg-type]
        dialog.setAcceptMode(QFileDialog.AcceptSave)
        dialog.fileSelected.connect(lambda path: self.save_attachment(entry, Path(path)))
        dialog.open()
        self.file_dialog = dialog
        return dialog

    def save_attachment(self, entry: Any, path: Path) -> Any:
        try:
            transfer = self.client.download_file(entry.attachment.file_id, path)
        except Exception as error:  # noqa: BLE001 (already saving, not connected: said)
            self.banner.show_error(explain(error, self.address))
            return None
        self._track(transfer)
        return transfer

    # -- transfers ------------------------------------------------------------------------

    def _track(self, transfer: Any) -> None:
        row = TransferRow(transfer, self._cancel)
        self.transfer_rows[transfer.transfer_id] = row
        self.transfers_box.addWidget(row)

    def _cancel(self, row: TransferRow) -> None:
        if row.transfer.finished:
            self._drop_row(row.transfer)
        else:
            self.client.cancel_transfer(row.transfer)

    def on_transfer(self, transfer: Any) -> None:
        """A ``transfer_*`` event: this pane's rows follow theirs."""
        row = self.transfer_rows.get(transfer.transfer_id)
        if row is None:
            return
        if transfer.state == "done":
            self._drop_row(transfer)
            if transfer.kind == "download":
                self.banner.show_info(f"Saved {transfer.name} to {transfer.path}.")
        elif transfer.state == "failed":
            cancelled = type(transfer.error).__name__ == "TransferCancelled"
            if cancelled:
                self._drop_row(transfer)
            else:
                row.label.setText(f"{transfer.name}: " + explain(transfer.error,
                                                                 self.address))
                row.label.setWordWrap(True)
                row.button.setText("Dismiss")
        else:
            row.update_from(transfer)

    def _drop_row(self, transfer: Any) -> None:
        row = self.transfer_rows.pop(transfer.transfer_id, None)
        if row is not None:
            self.transfers_box.removeWidget(row)
            row.deleteLater()

    def _thumbnail_ready(self, file_id: int) -> None:
        for row, entry in enumerate(self.model.entries()):
            if entry.attachment is not None and entry.attachment.file_id == file_id:
                self.model.dataChanged.emit(self.model.index(row), self.model.index(row))
