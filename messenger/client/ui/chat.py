"""The chat window: one conversation, history in pages as one scrolls up, live messages,
own messages pending until the server acknowledges them, Enter to send."""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import QEvent, Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListView,
    QPushButton,
    QShortcut,
    QVBoxLayout,
    QWidget,
)

from messenger.client.errors import MessageTooLong, MessengerError
from messenger.client.ui import style
from messenger.client.ui.chat_model import BubbleDelegate, ChatModel
from messenger.client.ui.messages import explain
from messenger.client.ui.widgets import Avatar, Banner, ComposeEdit, Spinner

PAGE = 50
NEAR_TOP = 24                 # pixels from the top that ask for an older page


class ChatWindow(QWidget):
    activated = pyqtSignal(str)          # the window came to the front: read
    call_requested = pyqtSignal(str)

    def __init__(self, client: Any, me: str, peer: str, parent: QWidget | None = None,
                 address: str = "") -> None:
        super().__init__(parent, Qt.Window)
        self.client = client
        self.me = me
        self.peer = peer
        self.address = address
        self.more = True                 # older history may exist
        self.loading = False
        self.loaded_once = False
        self._stick_to_bottom = True
        self.setObjectName("window")
        self.setWindowTitle(f"{peer} — Messenger")
        self.setMinimumSize(420, 420)
        self.resize(560, 680)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self._header())

        self.top_note = style.named(QLabel(""), "muted")
        self.top_note.setAlignment(Qt.AlignCenter)
        self.top_note.setContentsMargins(0, 6, 0, 6)
        self.top_note.hide()
        layout.addWidget(self.top_note)

        self.model = ChatModel(me, self)
        self.view = QListView()
        self.view.setObjectName("chat")
        self.view.setModel(self.model)
        self.view.setItemDelegate(BubbleDelegate(self.view))
        self.view.setVerticalScrollMode(QAbstractItemView.ScrollPerPixel)
        self.view.verticalScrollBar().setSingleStep(24)
        self.view.setSelectionMode(QAbstractItemView.NoSelection)
        self.view.setResizeMode(QListView.Adjust)
        self.view.setUniformItemSizes(False)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.view.setFocusPolicy(Qt.StrongFocus)
        self.view.setAccessibleName(f"Conversation with {peer}")
        self.view.verticalScrollBar().valueChanged.connect(self._scrolled)
        self.view.verticalScrollBar().rangeChanged.connect(self._range_changed)
        layout.addWidget(self.view, 1)

        self.banner = Banner()
        self.banner.setContentsMargins(12, 0, 12, 0)
        layout.addWidget(self.banner)
        layout.addWidget(self._composer())
        self._anchor: tuple[int, int] | None = None

        QShortcut(QKeySequence("Ctrl+W"), self, activated=self.close)
        QShortcut(QKeySequence("Esc"), self, activated=self.close)

    def _header(self) -> QWidget:
        header = style.named(QWidget(), "header")
        header.setAttribute(Qt.WA_StyledBackground, True)
        row = QHBoxLayout(header)
        row.setContentsMargins(16, 10, 16, 10)
        row.setSpacing(12)
        self.avatar = Avatar(self.peer, 40)
        row.addWidget(self.avatar)
        names = QVBoxLayout()
        names.setSpacing(0)
        self.name_label = style.named(QLabel(self.peer), "heading")
        names.addWidget(self.name_label)
        self.presence_label = style.named(QLabel(""), "muted")
        names.addWidget(self.presence_label)
        row.addLayout(names, 1)
        self.spinner = Spinner(18)
        row.addWidget(self.spinner)
        self.call_button = style.set_kind(QPushButton("Call"), "success")
        self.call_button.setToolTip(f"Start a voice call with {self.peer}")
        self.call_button.clicked.connect(lambda: self.call_requested.emit(self.peer))
        row.addWidget(self.call_button)
        return header

    def _composer(self) -> QWidget:
        box = style.named(QWidget(), "header")
        box.setAttribute(Qt.WA_StyledBackground, True)
        row = QHBoxLayout(box)
        row.setContentsMargins(12, 10, 12, 12)
        row.setSpacing(8)
        self.compose = ComposeEdit(f"Message {self.peer}…")
        self.compose.setToolTip("Enter sends; Shift+Enter starts a new line")
        self.compose.setAccessibleName(f"Message to {self.peer}")
        self.compose.submitted.connect(self.send)
        row.addWidget(self.compose, 1)
        self.send_button = style.set_kind(QPushButton("Send"), "primary")
        self.send_button.clicked.connect(self.send)
        row.addWidget(self.send_button, 0, Qt.AlignBottom)
        return box

    # -- state from the main window -------------------------------------------------------

    def set_presence(self, status: str) -> None:
        self.avatar.set_presence(status)
        self.presence_label.setText(style.PRESENCE_WORDS.get(status, status))
        self.call_button.setEnabled(status != "offline")

    def is_in_front(self) -> bool:
        return self.isVisible() and not self.isMinimized() and self.isActiveWindow()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802
        super().changeEvent(event)
        if event.type() == QEvent.ActivationChange and self.isActiveWindow():
            self.activated.emit(self.peer)

    def showEvent(self, event: Any) -> None:  # noqa: N802
        super().showEvent(event)
        if not self.loaded_once:
            self.load_older()
        QTimer.singleShot(0, self.compose.setFocus)

    def connection_ready(self) -> None:
        """Logged in (again): load the first page if that failed for want of a session."""
        if not self.loaded_once and self.isVisible():
            self.load_older()

    # -- messages -------------------------------------------------------------------------

    def add_incoming(self, message: Any) -> bool:
        """A live (or synced) message of this conversation; True if it is new here."""
        at_bottom = self._at_bottom()
        added = self.model.add_stored(message.msg_id, message.time, message.sender,
                                      message.text)
        if added and at_bottom:
            self.scroll_to_bottom()
        return added

    def update_outgoing(self, outgoing: Any) -> None:
        if self.model.update_outgoing(outgoing) and outgoing.status == "failed":
            self.banner.show_error("A message could not be sent: "
                                   + explain(outgoing.error, self.address))

    def send(self) -> None:
        text = self.compose.toPlainText().strip()
        if not text:
            return
        try:
            outgoing = self.client.queue_message(self.peer, text)
        except MessageTooLong as error:
            self.banner.show_error(f"This message is too long ({error.size} bytes; at most"
                                   f" {error.limit}). Split it into several.")
            return
        except MessengerError as error:
            self.banner.show_error(explain(error, self.address))
            return
        self.banner.clear_message()
        self.model.add_outgoing(outgoing)
        self.compose.clear()
        self.scroll_to_bottom()

    # -- history --------------------------------------------------------------------------

    def load_older(self) -> None:
        """Ask for the page of history before the oldest message shown."""
        if self.loading or not self.more:
            return
        self.loading = True
        self.spinner.start()
        self.top_note.setText("Loading earlier messages…")
        self.top_note.show()
        before = self.model.first_msg_id()
        d = self.client.history(self.peer, before=before, limit=PAGE)
        d.addCallbacks(self._page_loaded, self._page_failed)

    def _page_loaded(self, reply: dict[str, Any]) -> None:
        self.loading = False
        self.spinner.stop()
        first = not self.loaded_once
        self.loaded_once = True
        bar = self.view.verticalScrollBar()
        if not first:
            self._anchor = (bar.maximum(), bar.value())
        messages = reply.get("alert") if isinstance(reply.get("alert"), list) else []
        self.model.add_history(messages)
        self.more = bool(reply.get("more")) and bool(messages)
        if self.more:
            self.top_note.hide()
        else:
            self.top_note.setText(f"This is the beginning of your conversation with"
                                  f" {self.peer}." if self.model.rowCount() else
                                  f"No messages with {self.peer} yet. Say hello!")
            self.top_note.show()
        if first:
            self.scroll_to_bottom()
        QTimer.singleShot(0, self._fill_view)

    def _page_failed(self, failure: Any) -> None:
        self.loading = False
        self.spinner.stop()
        self.top_note.hide()
        self.banner.show_error("Earlier messages could not be loaded: "
                               + explain(failure, self.address))

    def _fill_view(self) -> None:
        """Keep loading while the messages do not fill the window (no scrolling yet)."""
        if self.more and not self.loading and self.view.verticalScrollBar().maximum() == 0:
            self.load_older()

    def _scrolled(self, value: int) -> None:
        bar = self.view.verticalScrollBar()
        self._stick_to_bottom = value >= bar.maximum() - 4
        if value <= bar.minimum() + NEAR_TOP and bar.maximum() > 0:
            self.load_older()

    def _range_changed(self, minimum: int, maximum: int) -> None:
        bar = self.view.verticalScrollBar()
        if self._anchor is not None:
            old_max, old_value = self._anchor
            self._anchor = None
            bar.setValue(old_value + (maximum - old_max))       # keep what was on screen
        elif self._stick_to_bottom:
            bar.setValue(maximum)

    def _at_bottom(self) -> bool:
        bar = self.view.verticalScrollBar()
        return bar.value() >= bar.maximum() - 4

    def scroll_to_bottom(self) -> None:
        self._stick_to_bottom = True
        self.view.scrollToBottom()
        QTimer.singleShot(0, self.view.scrollToBottom)
