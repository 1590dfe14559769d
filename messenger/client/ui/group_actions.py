"""The main window's groups: the group panes, the "New group" dialog, the members panel,
and a group's menu (open, mute, members, leave). A mixin of `MainWindow`, which
provides ``client``, ``conversations``, ``me``, ``address``, ``panes``, ``stack``,
``open_key``, ``show_status`` and ``_state``."""

from __future__ import annotations

from typing import Any

from PyQt5.QtWidgets import QMenu

from messenger.client.groupevents import GroupInfo
from messenger.client.ui.chat_list import PERSON
from messenger.client.ui.chat_state import group_id_of, group_key
from messenger.client.ui.group_members import MembersDialog
from messenger.client.ui.group_pane import GroupPane
from messenger.client.ui.messages import explain, header_status
from messenger.client.ui.new_group import NewGroupDialog


class GroupActionsMixin:
    client: Any
    conversations: Any
    me: str
    address: str
    panes: dict[str, Any]
    stack: Any
    _state: Any

    def init_groups(self) -> None:
        self.new_group_dialog: NewGroupDialog | None = None
        self.members_dialog: MembersDialog | None = None

    def open_key(self, key: str) -> Any:
        raise NotImplementedError

    def show_status(self, text: str, error: bool = False) -> None:
        raise NotImplementedError

    def go_back(self) -> None:
        raise NotImplementedError

    # -- panes ----------------------------------------------------------------------------

    def group_pane_for(self, group_id: int) -> GroupPane:
        key = group_key(group_id)
        pane = self.panes.get(key)
        if pane is None:
            meta = self.conversations.state.group(group_id)
            pane = GroupPane(self.client, self.me, meta, address=self.address)
            pane.back_requested.connect(self.go_back)
            pane.members_requested.connect(self.open_members)
            pane.menu_requested.connect(
                lambda _, menu: self.fill_group_menu(key, menu, with_open=False))
            pane.view.link_activated.connect(lambda url: self.show_status(f"Opening {url}"))
            self.panes[key] = pane
            self.stack.addWidget(pane)
        return pane

    def open_group(self, group_id: int) -> GroupPane:
        self.conversations.ensure_group(group_id)
        pane = self.open_key(group_key(group_id))
        assert isinstance(pane, GroupPane)
        return pane

    def refresh_group(self, key: str) -> None:
        """The open pane follows the group's state (name, channel, role, gone)."""
        pane = self.panes.get(key)
        item = self.conversations.model.item(key)
        if isinstance(pane, GroupPane) and item is not None and item.group is not None:
            pane.set_meta(item.group, header_status(self._state))

    def show_message(self, message: Any) -> Any:
        """Open a message's chat at it (a search result)."""
        if message.group is not None:
            pane = self.open_group(message.group)
        else:
            own = message.sender.lower() == self.me.lower()
            pane = self.open_chat((message.recipient or "") if own  # type: ignore
                                  else message.sender)
        pane.jump_to(message.msg_id)
        return pane

    # -- dialogs --------------------------------------------------------------------------

    def open_new_group(self) -> NewGroupDialog:
        contacts = [item.title for item in self.conversations.model.items()
                    if item.kind == PERSON and item.is_contact and not item.blocked]
        if self.new_group_dialog is not None:
            self.new_group_dialog.close()
        dialog = NewGroupDialog(self.client, contacts, self,  # type: ignore[arg-type]
                                address=self.address)
        dialog.created.connect(self._group_created)
        dialog.show()
        dialog.raise_()
        self.new_group_dialog = dialog
        return dialog

    def _group_created(self, info: GroupInfo) -> None:
        self.conversations.note_group(info)
        self.open_group(info.group_id)
        self.show_status(f"The group {info.name} was created.")

    def open_members(self, group_id: int) -> MembersDialog:
        if self.members_dialog is not None:
            self.members_dialog.close()
        dialog = MembersDialog(self.client, self.conversations, group_id, self.me,
                               self, address=self.address)  # type: ignore[arg-type]
        dialog.show()
        dialog.raise_()
        self.members_dialog = dialog
        return dialog

    def close_group_windows(self) -> None:
        for dialog in (self.new_group_dialog, self.members_dialog):
            if dialog is not None:
                dialog.close()

    # -- the menu -------------------------------------------------------------------------

    def fill_group_menu(self, key: str, menu: QMenu, with_open: bool = True) -> QMenu:
        item = self.conversations.model.item(key)
        group_id = group_id_of(key)
        if item is None or item.group is None or group_id is None:
            return menu
        if with_open:
            menu.addAction("Open", lambda: self.open_key(key))
        menu.addAction("Unmute notifications" if item.muted else "Mute notifications",
                       lambda: self.toggle_mute(key))  # type: ignore[attr-defined]
        meta = item.group
        if meta.gone:
            menu.addAction("Remove from the list", lambda: self.forget_group(key))
            return menu
        menu.addAction("Members and settings…", lambda: self.open_members(group_id))
        if meta.role != "owner":
            menu.addSeparator()
            menu.addAction("Leave group", lambda: self.leave_group(group_id))
        return menu

    def leave_group(self, group_id: int) -> Any:
        name = self.conversations.state.group(group_id).name
        d = self.client.group_leave(group_id)
        d.addCallbacks(lambda _: (self.conversations.left_group(group_id),
                                  self.show_status(f"You left {name}.")),
                       lambda failure: self.show_status(explain(failure, self.address),
                                                        True))
        return d

    def forget_group(self, key: str) -> None:
        """A group the user is no longer in leaves the list now (not at the next login)."""
        if key == getattr(self, "current_key", None):
            self.go_back()
        pane = self.panes.pop(key, None)
        if pane is not None:
            self.stack.removeWidget(pane)
            pane.deleteLater()
        self.conversations.model.remove(key)
        self.conversations.state.forget(key)
        self.conversations.save()
