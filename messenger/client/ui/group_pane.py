"""A group's conversation in the right-hand pane: a `ConversationPane` whose messages go
to the group and whose history is the group's, with each other member's name on its
bubble, mentions of the user highlighted, a Members button in the header, and instead of
the composer a line saying why when the user may not post (an announcement channel for
a plain member; a group the user left, was removed from, or that was deleted).
"""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from messenger.client.ui import style
from messenger.client.ui.chat_list import group_words
from messenger.client.ui.chat_state import GroupMeta
from messenger.client.ui.conversation import PAGE, ConversationPane

CHANNEL_LINE = ("Only the group's owner and admins post in this announcement channel;"
                " you can read and follow it.")
GONE_LINES = {"left": "You left this group. What was said while you were in it stays here.",
              "removed": "You were removed from this group. What was said until then"
                         " stays here.",
              "deleted": "This group was deleted."}
COMPOSER, BLOCKED, READ_ONLY = 0, 1, 2


class GroupPane(ConversationPane):
    members_requested = pyqtSignal(int)           # the group's id

    def __init__(self, client: Any, me: str, meta: GroupMeta, parent: QWidget | None = None,
                 address: str = "") -> None:
        self.meta = meta
        self.group_id = meta.group_id
        super().__init__(client, me, meta.name, parent, address=address)
        self.model.show_senders = True
        self.call_button.hide()
        self.members_button = style.set_kind(QPushButton("Members"), "flat")
        self.members_button.setToolTip("The group's members, its name and topic")
        self.members_button.clicked.connect(lambda: self.members_requested.emit(self.group_id))
        self.header.row.insertWidget(self.header.row.indexOf(self.menu_button),
                                     self.members_button)
        self.menu_button.setToolTip("More: mute, members, leave")
        self.view.setAccessibleName(f"Group {meta.name}")
        self.bottom.addWidget(self._read_only_line())
        self.set_meta(meta, None)

    def _read_only_line(self) -> QWidget:
        box = style.named(QWidget(), "header")
        box.setAttribute(Qt.WA_StyledBackground, True)
        row = QHBoxLayout(box)
        row.setContentsMargins(14, 12, 14, 14)
        self.read_only_label = style.named(QLabel(""), "muted")
        self.read_only_label.setWordWrap(True)
        self.read_only_label.setAlignment(Qt.AlignCenter)
        self.read_only_label.setAccessibleName("Why you cannot post here")
        row.addWidget(self.read_only_label, 1)
        return box

    # -- what the group is ----------------------------------------------------------------

    @property
    def can_post(self) -> bool:
        return self.meta.can_post

    def set_meta(self, meta: GroupMeta, connection_words: str | None) -> None:
        """The group's state (name, channel, role, gone) and the connection's."""
        self.meta = meta
        self.peer = meta.name
        self.header.title.set_full_text(meta.name)
        self.header.avatar.set_name(meta.name)
        words = group_words(meta)
        if meta.topic and not meta.gone:
            words = f"{words} · {' '.join(meta.topic.split())}"
        self.set_subtitle(connection_words or words)
        self.header.subtitle.setToolTip(meta.topic)
        self.members_button.setEnabled(not meta.gone)
        self.compose.setPlaceholderText(f"Message {meta.name}…")
        self.compose.setAccessibleName(f"Message to the group {meta.name}")
        if meta.can_post:
            self.bottom.setCurrentIndex(COMPOSER)
        else:
            self.read_only_label.setText(GONE_LINES.get(meta.gone, CHANNEL_LINE)
                                         if meta.gone else CHANNEL_LINE)
            self.bottom.setCurrentIndex(READ_ONLY)

    def set_presence(self, status: str, connection_words: str | None,
                     is_contact: bool = True) -> None:
        self.set_meta(self.meta, connection_words)

    def set_blocked(self, blocked: bool) -> None:
        """Groups are not blocked."""

    def focus_composer(self) -> None:
        if self.can_post:
            QTimer.singleShot(0, self.compose.setFocus)

    # -- the group's messages -------------------------------------------------------------

    def conversation(self) -> dict[str, Any]:
        return {"group": self.group_id}

    def belongs(self, outgoing: Any) -> bool:
        return outgoing.group == self.group_id

    def queue(self, text: str, reply_to: int | None = None) -> Any:
        return self.client.queue_group_message(self.group_id, text, reply_to=reply_to)

    def may_delete_others(self) -> bool:
        return self.meta.manages

    def fetch_page(self, before: int | None) -> Any:
        return self.client.group_history(self.group_id, before=before, limit=PAGE)

    def load_older(self) -> None:
        if self.meta.gone:
            self.more = False                # history is for members only
            self.loaded_once = True
            self._update_note()
            return
        super().load_older()

    def beginning_words(self) -> tuple[str, str]:
        kind = "announcement channel" if self.meta.announce_only else "group"
        return (f"This is the beginning of the {kind} {self.meta.name}.",
                f"No messages in {self.meta.name} yet."
                + (" Say hello!" if self.can_post else ""))
