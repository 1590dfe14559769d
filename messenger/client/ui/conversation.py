"""One conversation in the right-hand pane: the header (presence, or "connecting…" while
the connection is down), the messages with history loaded in pages as one scrolls up,
own messages pending until the server acknowledges them, and the composer.

Notes float over the list (loading, the beginning of the conversation) and failures over
its bottom, so nothing moves under the user's hand when they appear.
"""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import QEvent, Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from messenger.client.errors import MessageTooLong, MessengerError
from messenger.client.ui import style
from messenger.client.ui.chat_model import ChatModel
from messenger.client.ui.edit_actions import EditActionsMixin
from messenger.client.ui.emoji import EmojiPicker, insert_emoji
from messenger.client.ui.file_actions import FileActionsMixin
from messenger.client.ui.header import PaneHeader, icon_button
from messenger.client.ui.live_marks import LiveMarksMixin
from messenger.client.ui.message_view import MessageView
from messenger.client.ui.messages import explain
from messenger.client.ui.widgets import ComposeEdit, Toast, if_alive

PAGE = 50
NEAR_TOP = 24                 # pixels from the top that ask for an older page


GONE_LINE = ("{peer}'s account was deleted: nobody can receive messages here any more."
             " What was said stays.")


class ConversationPane(EditActionsMixin, FileActionsMixin, LiveMarksMixin, QWidget):
    back_requested = pyqtSignal()
    call_requested = pyqtSignal(str)
    menu_requested = pyqtSignal(str, object)      # peer, the QMenu to fill

    def __init__(self, client: Any, me: str, peer: str, parent: QWidget | None = None,
                 address: str = "") -> None:
        super().__init__(parent)
        self.client = client
        self.me = me
        self.peer = peer
        self.address = address
        self.more = True                 # older history may exist
        self.loading = False
        self.loaded_once = False
        self.blocked = False
        self._gone_box: QWidget | None = None  # "this account was deleted", made when needed
        self._stick_to_bottom = True
        self._anchor: tuple[int, int] | None = None
        style.named(self, "pane")
        self.setAttribute(Qt.WA_StyledBackground, True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.header = PaneHeader(peer, avatar_name=peer)
        self.header.back_requested.connect(self.back_requested)
        self.call_button = self.header.add(style.set_kind(QPushButton("Call"), "flat"))
        self.call_button.setToolTip(f"Start a voice call with {peer} (Ctrl+Shift+C)")
        self.call_button.clicked.connect(lambda: self.call_requested.emit(self.peer))
        self.menu_button = self.header.add(icon_button("⋮", "More: mute, block, contacts"))
        self.menu_button.clicked.connect(self._open_menu)
        layout.addWidget(self.header)

        self.model = ChatModel(me, self)
        self.view = MessageView()
        self.view.setModel(self.model)
        self.view.setAccessibleName(f"Conversation with {peer}")
        self.view.verticalScrollBar().valueChanged.connect(self._scrolled)
        self.view.verticalScrollBar().rangeChanged.connect(self._range_changed)
        self.view.reply_requested.connect(self.quote)
        self.model.rowsInserted.connect(lambda *_: self._update_note())
        layout.addWidget(self.view, 1)
        self.top_note = style.named(QLabel("", self.view), "info")
        self.top_note.setAlignment(Qt.AlignCenter)
        self.top_note.setContentsMargins(10, 3, 10, 3)
        self.top_note.hide()
        self.view.installEventFilter(self)         # the note follows the view's size
        self.banner = Toast(self.view)
        layout.addWidget(self._bottom())
        self.init_files(layout, self.composer_row)
        self.init_live_marks()
        self.init_edits(layout)
        self.view.menu_extras = self._message_menu_extras
        self.show_pending()

    def _bottom(self) -> QWidget:
        self.bottom = QStackedWidget()
        box = style.named(QWidget(), "header")
        box.setAttribute(Qt.WA_StyledBackground, True)
        row = self.composer_row = QHBoxLayout(box)
        row.setContentsMargins(10, 8, 10, 10)
        row.setSpacing(8)
        self.compose = ComposeEdit(f"Message {self.peer}…")
        self.compose.setToolTip("Enter sends; Shift+Enter starts a new line")
        self.compose.setAccessibleName(f"Message to {self.peer}")
        self.compose.submitted.connect(self.send)
        row.addWidget(self.compose, 1)
        self.emoji_button = style.set_kind(icon_button("🙂", "Emoji"), "emoji")
        self.emoji_button.setFixedSize(38, 38)
        self.emoji_button.setFocusPolicy(Qt.NoFocus)
        self.emoji_button.clicked.connect(self.show_emoji)
        row.addWidget(self.emoji_button, 0, Qt.AlignBottom)
        self.emoji_picker: EmojiPicker | None = None
        self.send_button = style.set_kind(QPushButton("Send"), "primary")
        self.send_button.clicked.connect(self.send)
        row.addWidget(self.send_button, 0, Qt.AlignBottom)
        self.bottom.addWidget(box)
        blocked = style.named(QWidget(), "header")
        blocked.setAttribute(Qt.WA_StyledBackground, True)
        blocked_row = QHBoxLayout(blocked)
        blocked_row.setContentsMargins(10, 8, 10, 10)
        self.unblock_button = style.set_kind(QPushButton(f"Unblock {self.peer}"), "flat")
        blocked_row.addWidget(self.unblock_button, 1)
        self.bottom.addWidget(blocked)
        return self.bottom

    # -- state from the main window -------------------------------------------------------

    def set_presence(self, status: str, connection_words: str | None,
                     is_contact: bool = True) -> None:
        """Presence as known, or the connection's word ("connecting…") when it is not."""
        online = connection_words is None
        gone = status == "deleted"
        self._show_gone(gone)
        if gone:
            words, live = "account deleted", False
        elif self.blocked:
            words, live = "blocked", False
        elif not online:
            words, live = connection_words or "", False
        elif not is_contact:
            words, live = "not in your contacts", False
        else:
            words, live = style.PRESENCE_WORDS.get(status, status).lower(), status == "online"
        self.set_subtitle(words, live)
        self.header.avatar.set_presence(status if online and is_contact and not self.blocked
                                        else None)
        self.call_button.setEnabled(online and is_contact and status not in ("offline", "deleted")
                                    and not self.blocked)

    def set_blocked(self, blocked: bool) -> None:
        self.blocked = blocked
        if self.bottom.currentWidget() is not self._gone_box:
            self.bottom.setCurrentIndex(1 if blocked else 0)

    def _show_gone(self, gone: bool) -> None:
        """Instead of the composer, say that the peer's account was deleted (nobody can
        receive what would be written); what was said stays readable above."""
        if gone:
            if self._gone_box is None:
                box = self._gone_box = style.named(QWidget(), "header")
                box.setAttribute(Qt.WA_StyledBackground, True)
                row = QHBoxLayout(box)
                row.setContentsMargins(14, 12, 14, 14)
                self.gone_label = style.named(QLabel(GONE_LINE.format(peer=self.peer)),
                                              "muted")
                self.gone_label.setWordWrap(True)
                self.gone_label.setAlignment(Qt.AlignCenter)
                row.addWidget(self.gone_label, 1)
                self.bottom.addWidget(box)
            self.bottom.setCurrentWidget(self._gone_box)
        elif self._gone_box is not None and self.bottom.currentWidget() is self._gone_box:
            self.bottom.setCurrentIndex(1 if self.blocked else 0)

    def set_narrow(self, narrow: bool) -> None:
        self.header.set_narrow(narrow)

    def set_unread_after(self, msg_id: int | None) -> None:
        self.model.set_unread_after(msg_id)

    def showEvent(self, event: Any) -> None:  # noqa: N802
        super().showEvent(event)
        if not self.loaded_once:
            self.load_older()

    def focus_composer(self) -> None:
        target = self.compose if not self.blocked else self.unblock_button
        QTimer.singleShot(0, target.setFocus)

    def connection_ready(self) -> None:
        """Logged in (again): load the first page if that failed for want of a session."""
        if not self.loaded_once and self.isVisible():
            self.load_older()

    def _open_menu(self) -> None:
        menu = QMenu(self)
        self.menu_requested.emit(self.peer, menu)
        self.menu = menu
        menu.popup(self.menu_button.mapToGlobal(self.menu_button.rect().bottomLeft()))

    # -- messages -------------------------------------------------------------------------

    def add_incoming(self, message: Any) -> bool:
        """A live (or synced) message of this conversation; True if it is new here."""
        at_bottom = self._at_bottom()
        added = self.model.add_stored(message.msg_id, message.time, message.sender,
                                      message.text, tuple(getattr(message, "mentions", ())),
                                      getattr(message, "attachment", None),
                                      getattr(message, "reply_to", None),
                                      getattr(message, "edited", None) is not None,
                                      getattr(message, "deleted", None) is not None)
        if added and at_bottom:
            self.scroll_to_bottom()
        return added

    def _message_menu_extras(self, entry: Any, menu: Any) -> None:
        """A message's menu: Save file…, then Edit and Delete… where they apply."""
        self._menu_extras(entry, menu)
        self.edit_menu(entry, menu)

    def conversation(self) -> dict[str, Any]:
        return {"to": self.peer}

    def belongs(self, outgoing: Any) -> bool:
        """Is this own message (an `OutgoingMessage`) one of this conversation's?"""
        return outgoing.group is None and (outgoing.to or "").lower() == self.peer.lower()

    def show_pending(self) -> None:
        """The messages of this conversation still in the outbox (written before this
        pane was opened, or before the program was last closed), shown as pending."""
        for outgoing in self.client.pending_messages():
            if self.belongs(outgoing):
                self.model.add_outgoing(outgoing)

    def update_outgoing(self, outgoing: Any) -> None:
        if not self.model.update_outgoing(outgoing):
            if outgoing.status == "pending" and self.belongs(outgoing):
                self.model.add_outgoing(outgoing)        # queued elsewhere, or restored
            return
        if outgoing.status == "acked":
            self.refresh_receipts()
        if outgoing.status == "failed":
            self.banner.show_error("A message could not be sent: "
                                   + explain(outgoing.error, self.address))

    def send(self) -> None:
        text = self.compose.toPlainText().strip()
        if not text:
            return
        if self.editing is not None:
            self.save_edit(text)
            return
        try:
            outgoing = self.queue(text, self.reply_to_id())
        except MessageTooLong as error:
            self.banner.show_error(f"This message is too long ({error.size} bytes; at most"
                                   f" {error.limit}). Split it into several.")
            return
        except MessengerError as error:
            self.banner.show_error(explain(error, self.address))
            return
        self.banner.clear_message()
        self.model.set_unread_after(None)
        self.model.add_outgoing(outgoing)
        self.compose.clear()
        self.cancel_context()
        self.scroll_to_bottom()

    def show_emoji(self) -> EmojiPicker:
        """The emoji picker, above the composer; a click puts one at the cursor."""
        if self.emoji_picker is None:
            self.emoji_picker = EmojiPicker(self)
            self.emoji_picker.chosen.connect(lambda emoji: insert_emoji(self.compose, emoji))
        self.emoji_picker.popup_above(self.emoji_button)
        return self.emoji_picker

    def queue(self, text: str, reply_to: int | None = None) -> Any:
        """Hand a message to the client core's outbox (a group pane sends to its group),
        quoting ``reply_to`` when it is a reply."""
        return self.client.queue_message(self.peer, text, reply_to=reply_to)

    def fetch_page(self, before: int | None) -> Any:
        """The page of history before ``before`` (a group pane asks for its group's)."""
        return self.client.history(self.peer, before=before, limit=PAGE)

    def quote(self, entry: Any) -> None:
        """Reply: the message quoted above the composer; the next one sent answers it."""
        self.start_reply(entry)

    # -- history --------------------------------------------------------------------------

    def load_older(self) -> None:
        """Ask for the page of history before the oldest message shown."""
        if self.loading or not self.more:
            return
        self.loading = True
        self.header.spinner.start()
        self._note("Loading earlier messages…")
        d = self.fetch_page(self.model.first_msg_id())
        d.addCallbacks(self._page_loaded, self._page_failed)

    @if_alive
    def _page_loaded(self, reply: dict[str, Any]) -> None:
        self.loading = False
        self.header.spinner.stop()
        first = not self.loaded_once
        self.loaded_once = True
        bar = self.view.verticalScrollBar()
        if not first:
            self._anchor = (bar.maximum(), bar.value())
        messages = reply.get("alert") if isinstance(reply.get("alert"), list) else []
        self.model.add_history(messages)
        self.refresh_receipts()
        self.more = bool(reply.get("more")) and bool(messages)
        self._update_note()
        if first:
            self.scroll_to_bottom()
        QTimer.singleShot(0, self._fill_view)
        self.continue_jump()

    @if_alive
    def _page_failed(self, failure: Any) -> None:
        self.loading = False
        self.header.spinner.stop()
        self._note("")
        self.banner.show_error("Earlier messages could not be loaded: "
                               + explain(failure, self.address))

    def _update_note(self) -> None:
        if self.loading:
            return
        beginning, empty = self.beginning_words()
        self.model.set_beginning(beginning if self.loaded_once and not self.more else "")
        if self.loaded_once and not self.more and not self.model.rowCount():
            self._note(empty)
        else:
            self._note("")

    def beginning_words(self) -> tuple[str, str]:
        """Above the first message, and over an empty conversation."""
        return (f"This is the beginning of your conversation with {self.peer}.",
                f"No messages with {self.peer} yet. Say hello!")

    @property
    def beginning_shown(self) -> str:
        return self.model.beginning

    def _note(self, text: str) -> None:
        """A sentence floating over the top of the list (loading, an empty chat)."""
        self.top_note.setText(text)
        self._place_note()

    def _place_note(self) -> None:
        text = self.top_note.text()
        if text:
            note = self.top_note
            margins = note.contentsMargins()
            natural = note.fontMetrics().horizontalAdvance(text) + margins.left() + \
                margins.right() + 8
            width = max(60, min(self.view.width() - 20, natural))
            note.setWordWrap(width < natural)
            height = note.heightForWidth(width) if note.wordWrap() else \
                note.fontMetrics().height() + margins.top() + margins.bottom() + 4
            note.setGeometry((self.view.width() - width) // 2, 8, width, height)
            note.raise_()
        self.top_note.setVisible(bool(text))

    def eventFilter(self, watched: Any, event: Any) -> bool:  # noqa: N802
        if watched is self.view and event.type() == QEvent.Resize:
            self._place_note()
            return False
        return super().eventFilter(watched, event)      # the composer's paste

    def _fill_view(self) -> None:
        """Keep loading while the messages do not fill the pane (no scrolling yet)."""
        self.view.ensure_layout()
        if self.more and not self.loading and self.view.verticalScrollBar().maximum() == 0:
            self.load_older()

    def _scrolled(self, value: int) -> None:
        if self.view.laying_out:
            return
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
