"""A group's members panel: the name, topic and announcement-channel switch (editable by
the owner and admins), the members with their roles, and what the user's role allows:
add and remove members (owner, admins: an admin only plain members), make a member an
admin or the owner (the owner), leave (anyone but the owner), delete (the owner).

It reads the group with ``group_info`` (page by page) and reads it again after every
change, its own or one pushed by the server (`Conversations.group_event`), so it never
shows a stale list. Refusals are shown in the panel in the server's words.
"""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import QSize, Qt
from PyQt5.QtWidgets import (
    QCheckBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from twisted.internet import defer

from messenger.client.groupevents import GroupInfo
from messenger.client.ui import style
from messenger.client.ui.chat_list import group_words
from messenger.client.ui.chat_state import ADMIN, MEMBER, OWNER
from messenger.client.ui.messages import explain
from messenger.client.ui.widgets import Banner, Spinner, if_alive

NAME_ROLE, ROLE_ROLE = Qt.UserRole + 1, Qt.UserRole + 2
ORDER = {OWNER: 0, ADMIN: 1, MEMBER: 2}
PAGE = 1000


class MembersDialog(QDialog):
    def __init__(self, client: Any, conversations: Any, group_id: int, me: str,
                 parent: QWidget | None = None, address: str = "") -> None:
        super().__init__(parent)
        self.client, self.conversations = client, conversations
        self.group_id, self.me, self.address = group_id, me, address
        self.meta = conversations.state.group(group_id)
        self.roles: dict[str, str] = {}
        self.loading = False
        self.setWindowTitle(f"{self.meta.name} — Members — Messenger")
        self.setMinimumSize(420, 560)
        self.resize(460, 640)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 18, 20, 16)
        layout.setSpacing(8)
        self.title = style.named(QLabel(self.meta.name), "heading")
        layout.addWidget(self.title)
        self.subtitle = style.named(QLabel(""), "muted")
        layout.addWidget(self.subtitle)
        self._settings(layout)
        self.members = QListWidget()
        self.members.setIconSize(QSize(28, 28))
        self.members.setAccessibleName("Members")
        self.members.currentItemChanged.connect(lambda *_: self._update_buttons())
        layout.addWidget(self.members, 1)
        self._member_actions(layout)
        self.banner = Banner()
        layout.addWidget(self.banner)
        self._bottom(layout)
        self._follow = conversations.group_event
        self._follow.connect(self._pushed)
        self.finished.connect(lambda _: self._unfollow())
        self.show_meta()
        self.reload()

    def _settings(self, layout: QVBoxLayout) -> None:
        self.name_edit = QLineEdit()
        self.name_edit.setMaxLength(64)
        self.name_edit.setAccessibleName("Group name")
        self.topic_edit = QLineEdit()
        self.topic_edit.setPlaceholderText("No topic")
        self.topic_edit.setAccessibleName("Topic")
        self.channel_box = QCheckBox("Announcement channel")
        self.channel_box.setToolTip("Only the owner and admins post; the members read.")
        self.save_button = QPushButton("Save changes")
        self.save_button.clicked.connect(self.save)
        for widget in (self.name_edit, self.topic_edit, self.channel_box):
            layout.addWidget(widget)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.save_button)
        layout.addLayout(row)

    def _member_actions(self, layout: QVBoxLayout) -> None:
        add_row = QHBoxLayout()
        self.add_name = QLineEdit()
        self.add_name.setPlaceholderText("Account name to add…")
        self.add_name.setMaxLength(32)
        self.add_name.returnPressed.connect(self.add_member)
        add_row.addWidget(self.add_name, 1)
        self.add_button = QPushButton("Add member")
        self.add_button.clicked.connect(self.add_member)
        add_row.addWidget(self.add_button)
        layout.addLayout(add_row)
        row = QHBoxLayout()
        self.admin_button = QPushButton("Make admin")
        self.admin_button.clicked.connect(self.toggle_admin)
        self.owner_button = QPushButton("Make owner")
        self.owner_button.clicked.connect(self.confirm_owner)
        self.remove_button = style.set_kind(QPushButton("Remove"), "danger")
        self.remove_button.clicked.connect(self.remove_member)
        for button in (self.admin_button, self.owner_button, self.remove_button):
            row.addWidget(button)
        row.addStretch(1)
        layout.addLayout(row)

    def _bottom(self, layout: QVBoxLayout) -> None:
        row = QHBoxLayout()
        self.leave_button = style.set_kind(QPushButton("Leave group"), "danger")
        self.leave_button.clicked.connect(self.confirm_leave)
        self.delete_button = style.set_kind(QPushButton("Delete group"), "danger")
        self.delete_button.clicked.connect(self.confirm_delete)
        row.addWidget(self.leave_button)
        row.addWidget(self.delete_button)
        self.spinner = Spinner(18)
        row.addWidget(self.spinner)
        row.addStretch(1)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        row.addWidget(close)
        layout.addLayout(row)

    # -- showing --------------------------------------------------------------------------

    def show_meta(self) -> None:
        meta = self.meta
        manages = meta.manages
        self.setWindowTitle(f"{meta.name} — Members — Messenger")
        self.title.setText(meta.name)
        self.subtitle.setText(f"{group_words(meta)} · you are {_role_words(meta.role)}"
                              if not meta.gone else group_words(meta))
        for edit, value in ((self.name_edit, meta.name), (self.topic_edit, meta.topic)):
            if not edit.hasFocus():
                edit.setText(value)
            edit.setReadOnly(not manages)
        self.channel_box.setChecked(meta.announce_only)
        self.channel_box.setEnabled(manages)
        for widget in (self.save_button, self.add_name, self.add_button):
            widget.setVisible(manages)
        self._update_buttons()

    def _show_members(self, members: list[dict[str, Any]]) -> None:
        selected = self.selected()
        self.members.clear()
        self.roles = {}
        for member in sorted(members, key=lambda m: (ORDER.get(m["role"], 3),
                                                     m["account_name"].lower())):
            name, role = member["account_name"], member["role"]
            self.roles[name.lower()] = role
            you = " (you)" if name.lower() == self.me.lower() else ""
            item = QListWidgetItem(style.avatar_icon(name, 28),
                                   f"{name}{you}   ·   {role}")
            item.setData(NAME_ROLE, name)
            item.setData(ROLE_ROLE, role)
            self.members.addItem(item)
            if selected is not None and name.lower() == selected.lower():
                self.members.setCurrentItem(item)
        self._update_buttons()

    def selected(self) -> str | None:
        item = self.members.currentItem()
        return item.data(NAME_ROLE) if item is not None else None

    def select(self, name: str) -> None:
        for row in range(self.members.count()):
            if self.members.item(row).data(NAME_ROLE).lower() == name.lower():
                self.members.setCurrentRow(row)

    def _update_buttons(self) -> None:
        meta, name = self.meta, self.selected()
        role = self.roles.get(name.lower()) if name else None
        other = name is not None and name.lower() != self.me.lower()
        owner = meta.role == OWNER and not meta.gone
        self.remove_button.setVisible(meta.manages)
        self.remove_button.setEnabled(other and meta.manages and role != OWNER
                                      and (owner or role == MEMBER))
        self.admin_button.setVisible(owner)
        self.owner_button.setVisible(owner)
        self.admin_button.setText("Make member" if role == ADMIN else "Make admin")
        self.admin_button.setEnabled(other and role in (ADMIN, MEMBER))
        self.owner_button.setEnabled(other and role in (ADMIN, MEMBER))
        self.leave_button.setVisible(meta.role != OWNER and not meta.gone)
        self.delete_button.setVisible(owner)

    # -- reading --------------------------------------------------------------------------

    @defer.inlineCallbacks
    def reload(self) -> Any:
        """The group and all its members, again."""
        if self.loading or self.meta.gone:
            return None
        self.loading = True
        self.spinner.start()
        members: list[dict[str, Any]] = []
        after = None
        try:
            while True:
                reply = yield self.client.group_info(self.group_id, after=after, limit=PAGE)
                page = [m for m in reply.get("members") or [] if isinstance(m, dict)]
                members.extend(page)
                if isinstance(reply.get("group"), dict):
                    self.conversations.note_group(GroupInfo.from_jim(reply["group"]))
                if not reply.get("more") or not page:
                    break
                after = page[-1]["account_name"]
        except Exception as error:  # noqa: BLE001 (a refusal, a lost connection: shown)
            self._done()
            self._failed(error, "The members could not be read")
            return None
        self._done()
        if not _deleted(self):
            self.show_meta()
            self._show_members(members)
        return members

    def _done(self) -> None:
        self.loading = False
        if not _deleted(self):
            self.spinner.stop()

    def _pushed(self, event: Any) -> None:
        group_id = getattr(event, "group_id", None)
        if group_id is None and getattr(event, "group", None) is not None:
            group_id = event.group.group_id
        if group_id == self.group_id:
            self.show_meta()
            self.reload()

    def _unfollow(self) -> None:
        try:
            self._follow.disconnect(self._pushed)
        except TypeError:
            pass

    # -- changing -------------------------------------------------------------------------

    def _run(self, d: defer.Deferred[Any], done: str, what: str) -> defer.Deferred[Any]:
        self.banner.clear_message()
        self.spinner.start()
        d.addCallback(self._succeeded, done)
        d.addErrback(self._failed, what)
        return d

    @if_alive
    def _succeeded(self, reply: Any, done: str) -> Any:
        self.spinner.stop()
        if done:
            self.banner.show_info(done)
        if isinstance(reply, dict) and isinstance(reply.get("group"), dict):
            self.conversations.note_group(GroupInfo.from_jim(reply["group"]))
        self.show_meta()
        self.reload()
        return reply

    @if_alive
    def _failed(self, failure: Any, what: str) -> None:
        self.spinner.stop()
        self.banner.show_error(f"{what}: {explain(failure, self.address)}")

    def save(self) -> defer.Deferred[Any]:
        meta = self.meta
        name, topic = self.name_edit.text().strip(), self.topic_edit.text().strip()
        channel = self.channel_box.isChecked()
        changes = {"name": name if name and name != meta.name else None,
                   "topic": topic if topic != meta.topic else None,
                   "announce_only": channel if channel != meta.announce_only else None}
        if all(value is None for value in changes.values()):
            self.banner.show_info("Nothing to save: change the name, the topic or the"
                                  " channel switch first.")
            return defer.succeed(None)
        d = self.client.group_update(self.group_id, **changes)
        return self._run(d, "Saved.", "The group was not changed")

    def add_member(self) -> defer.Deferred[Any] | None:
        name = self.add_name.text().strip().lstrip("@")
        if not name:
            return None
        self.add_name.clear()
        return self._run(self.client.group_add(self.group_id, name),
                         f"{name} was added.", f"{name} was not added")

    def remove_member(self) -> defer.Deferred[Any] | None:
        name = self.selected()
        if name is None:
            return None
        return self._run(self.client.group_remove(self.group_id, name),
                         f"{name} was removed.", f"{name} was not removed")

    def toggle_admin(self) -> defer.Deferred[Any] | None:
        name = self.selected()
        if name is None:
            return None
        role = MEMBER if self.roles.get(name.lower()) == ADMIN else ADMIN
        return self.set_role(name, role)

    def set_role(self, name: str, role: str) -> defer.Deferred[Any]:
        return self._run(self.client.group_set_role(self.group_id, name, role),
                         f"{name} is now {_role_words(role)}.", "The role was not changed")

    def confirm_owner(self) -> QMessageBox | None:
        name = self.selected()
        if name is None:
            return None
        return self._confirm(f"Make {name} the owner?",
                             f"{name} becomes the group's owner and you an admin. Only"
                             f" {name} can give ownership back.", "Make owner",
                             lambda: self.set_role(name, OWNER))

    def confirm_leave(self) -> QMessageBox:
        return self._confirm(f"Leave {self.meta.name}?",
                             "You will no longer receive its messages; an admin can add"
                             " you again.", "Leave", self.leave)

    def confirm_delete(self) -> QMessageBox:
        return self._confirm(f"Delete {self.meta.name}?",
                             "The group and all its messages are deleted for every"
                             " member. This cannot be undone.", "Delete", self.delete)

    def leave(self) -> defer.Deferred[Any]:
        d = self.client.group_leave(self.group_id)
        d.addCallback(lambda _: self._gone("left"))
        d.addErrback(self._failed, "You did not leave the group")
        return d

    def delete(self) -> defer.Deferred[Any]:
        d = self.client.group_delete(self.group_id)
        d.addCallback(lambda _: self._gone("deleted"))
        d.addErrback(self._failed, "The group was not deleted")
        return d

    def _gone(self, reason: str) -> None:
        self.conversations.left_group(self.group_id, reason)
        if not _deleted(self):
            self.accept()

    def _confirm(self, question: str, detail: str, action: str, then: Any) -> QMessageBox:
        box = QMessageBox(QMessageBox.Question, "Messenger", question, QMessageBox.Cancel,
                          self)
        box.setInformativeText(detail)
        button = style.set_kind(box.addButton(action, QMessageBox.DestructiveRole), "danger")
        box.setDefaultButton(QMessageBox.Cancel)
        box.buttonClicked.connect(lambda clicked: then() if clicked is button else None)
        box.open()
        self.confirm_box = box
        return box


def _role_words(role: str) -> str:
    return {OWNER: "the owner", ADMIN: "an admin", MEMBER: "a member"}.get(role, role)


def _deleted(widget: QWidget) -> bool:
    from PyQt5 import sip
    return sip.isdeleted(widget)
