"""Replies, edits and deletions in a conversation pane (issue 15): Reply (a message's
menu) shows "Replying to bob: …" above the composer and the message sent quotes it; a
quote in the chat jumps to the message it quotes (loading older pages until it is
there); Edit (own messages) puts the text in the composer, and Enter saves it for
everyone; Delete… (own messages, and any message of a group the user is an owner or
admin of) asks, then deletes it for everyone. Others' edits and deletions arrive as the
core's ``message_changed`` events (`apply_change`). The client core does the work and
the server checks every right (a refusal is shown in its words). A mixin of
`ConversationPane` (``client``, ``model``, ``view``, ``compose``, ``banner``, ``address``,
``load_older``, ``more``, ``loading``).
"""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import Qt, QTimer
from PyQt5.QtWidgets import QHBoxLayout, QMessageBox, QToolButton, QVBoxLayout, QWidget

from messenger.client.ui import style
from messenger.client.ui.messages import explain
from messenger.client.ui.widgets import ElidedLabel

JUMP_PAGES = 40                      # older pages a jump may load before it gives up


class EditActionsMixin:
    client: Any
    model: Any
    view: Any
    compose: Any
    banner: Any
    address: str
    more: bool
    loading: bool

    def load_older(self) -> None:
        raise NotImplementedError

    def may_delete_others(self) -> bool:
        """Group panes: an owner or admin deletes any message of the group."""
        return False

    def init_edits(self, layout: QVBoxLayout) -> None:
        self.replying_to: Any = None
        self.editing: Any = None
        self._jump_target: int | None = None
        self._jump_pages = 0
        bar = style.named(QWidget(), "header")
        bar.setAttribute(Qt.WA_StyledBackground, True)
        row = QHBoxLayout(bar)
        row.setContentsMargins(14, 6, 8, 0)
        self.context_label = ElidedLabel("")
        row.addWidget(self.context_label, 1)
        close = style.set_kind(QToolButton(), "icon")
        close.setText("✕")
        close.setToolTip("Cancel")
        close.clicked.connect(self.cancel_context)
        row.addWidget(close)
        bar.hide()
        self.context_bar = bar
        layout.insertWidget(layout.count() - 1, bar)
        self.view.quote_activated.connect(lambda entry: self.jump_to(entry.reply_to))
        self.view.menu_extras = self.edit_menu

    # -- the bar above the composer -------------------------------------------------------

    def start_reply(self, entry: Any) -> None:
        if entry.msg_id is None:
            return
        self.editing = None
        self.replying_to = entry
        who = "yourself" if entry.own else entry.sender
        self._show_context(f"Replying to {who}: {' '.join(entry.text.split())}")

    def start_edit(self, entry: Any) -> None:
        self.replying_to = None
        self.editing = entry
        self.compose.setPlainText(entry.text)
        self.compose.moveCursor(self.compose.textCursor().End)
        self._show_context("Editing your message (Enter saves it for everyone)")

    def _show_context(self, words: str) -> None:
        self.context_label.set_full_text(words)
        self.context_bar.show()
        self.compose.setFocus()

    def cancel_context(self) -> None:
        if self.editing is not None:
            self.compose.clear()
        self.replying_to = self.editing = None
        self.context_bar.hide()

    def reply_to_id(self) -> int | None:
        return self.replying_to.msg_id if self.replying_to is not None else None

    # -- editing and deleting -------------------------------------------------------------

    def edit_menu(self, entry: Any, menu: Any) -> None:
        if entry.msg_id is None or entry.deleted:
            return
        if entry.own:
            menu.addAction("Edit", lambda: self.start_edit(entry))
        if entry.own or self.may_delete_others():
            menu.addAction("Delete for everyone…", lambda: self.confirm_delete(entry))

    def save_edit(self, text: str) -> Any:
        """Enter while editing: the new text for everyone."""
        entry = self.editing
        self.cancel_context()
        self.compose.clear()
        if text == entry.text:
            return None
        d = self.client.edit_message(entry.msg_id, text)
        d.addCallbacks(self.apply_change,
                       lambda failure: self.banner.show_error(
                           "The message was not changed: " + explain(failure, self.address)))
        return d

    def confirm_delete(self, entry: Any) -> QMessageBox:
        box = QMessageBox(QMessageBox.Question, "Delete — Messenger",
                          "Delete this message for everyone?", QMessageBox.Cancel,
                          self)  # type: ignore[arg-type]
        box.setInformativeText("It is removed from the server; everyone in the"
                               " conversation sees “message deleted” in its place.")
        delete = style.set_kind(box.addButton("Delete", QMessageBox.DestructiveRole),
                                "danger")
        box.setDefaultButton(QMessageBox.Cancel)
        box.buttonClicked.connect(
            lambda button: self.delete(entry) if button is delete else None)
        box.open()
        self.delete_box = box
        return box

    def delete(self, entry: Any) -> Any:
        d = self.client.delete_message(entry.msg_id)
        d.addCallbacks(self.apply_change,
                       lambda failure: self.banner.show_error(
                           "The message was not deleted: " + explain(failure, self.address)))
        return d

    def apply_change(self, change: Any) -> Any:
        """An edit or deletion (ours, or a ``message_changed`` event)."""
        self.model.apply_change(change.msg_id, change.text, change.is_deleted)
        for current in (self.editing, self.replying_to):
            if current is not None and current.msg_id == change.msg_id and change.is_deleted:
                self.cancel_context()
        return change

    # -- jumping to a quoted message ------------------------------------------------------

    def jump_to(self, msg_id: int | None) -> bool:
        """Show the message ``msg_id``, loading older pages until it is there; True
        when it is shown now."""
        if msg_id is None:
            return False
        row = self.model.row_of_msg_id(msg_id)
        if row is not None:
            self._jump_target = None
            index = self.model.index(row)
            self.view.scrollTo(index, self.view.PositionAtCenter)
            self.view.select((row, 0), (row, len(self.model.entry(row).text)))
            QTimer.singleShot(0, lambda: self.view.scrollTo(index, self.view.PositionAtCenter))
            return True
        if not self.more:
            self.banner.show_error("That message is no longer in this conversation.")
            return False
        self._jump_target, self._jump_pages = msg_id, 0
        self.load_older()
        return False

    def continue_jump(self) -> None:
        """A page of history came: the message jumped to is there, or ask for more."""
        target = self._jump_target
        if target is None:
            return
        if self.model.row_of_msg_id(target) is not None:
            QTimer.singleShot(0, lambda: self.jump_to(target))
        elif self._jump_pages < JUMP_PAGES and self.more:
            self._jump_pages += 1
            QTimer.singleShot(0, self.load_older)
        else:
            self._jump_target = None
