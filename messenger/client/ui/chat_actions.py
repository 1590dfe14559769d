"""What can be done to a chat from its context menu (in the list) or its ⋮ menu (in the
header): open, call, mute, add to or remove from contacts, block and unblock. A mixin of
`MainWindow`, which provides ``conversations``, ``client``, ``address``, ``open_key``,
``start_call`` and ``show_status``."""

from __future__ import annotations

from typing import Any

from PyQt5.QtWidgets import QMenu, QMessageBox

from messenger.client.ui import style
from messenger.client.ui.chat_list import PERSON
from messenger.client.ui.chat_state import person_key
from messenger.client.ui.messages import explain


class ChatActionsMixin:
    conversations: Any
    client: Any
    address: str

    def open_key(self, key: str) -> Any:
        raise NotImplementedError

    def start_call(self, peer: str) -> None:
        raise NotImplementedError

    def show_status(self, text: str, error: bool = False) -> None:
        raise NotImplementedError

    def fill_chat_menu(self, key: str, menu: QMenu, with_open: bool = True) -> QMenu:
        item = self.conversations.model.item(key)
        if item is None:
            return menu
        if with_open:
            menu.addAction("Open", lambda: self.open_key(key))
        if item.kind == PERSON:
            name = item.title
            call = menu.addAction("Call", lambda: self.start_call(name))
            call.setEnabled(self.conversations.model.connected and item.is_contact
                            and item.status != "offline" and not item.blocked)
        menu.addAction("Unmute notifications" if item.muted else "Mute notifications",
                       lambda: self.toggle_mute(key))
        if item.kind == PERSON:
            menu.addSeparator()
            if item.is_contact:
                menu.addAction("Remove from contacts", lambda: self.remove_contact(name))
            else:
                menu.addAction("Add to contacts", lambda: self.add_contact(name))
            if item.blocked:
                menu.addAction(f"Unblock {name}", lambda: self.unblock(name))
            else:
                menu.addAction(f"Block {name}…", lambda: self.confirm_block(name))
        return menu

    def toggle_mute(self, key: str) -> None:
        item = self.conversations.model.item(key)
        if item is not None:
            self.conversations.set_muted(key, not item.muted)
            self.show_status(f"{item.title} is {'muted' if item.muted else 'unmuted'}.")

    def confirm_block(self, name: str) -> QMessageBox:
        box = QMessageBox(QMessageBox.Question, "Block — Messenger", f"Block {name}?",
                          QMessageBox.Cancel, self)  # type: ignore[arg-type]
        box.setInformativeText(f"{name} will not be able to send you messages or call"
                               " you; they are told so when they try. You can unblock"
                               " them later (in this menu, or in Settings).")
        block = box.addButton("Block", QMessageBox.DestructiveRole)
        style.set_kind(block, "danger")
        box.setDefaultButton(QMessageBox.Cancel)
        box.buttonClicked.connect(lambda button: self.block(name) if button is block else None)
        box.open()
        self.block_box = box
        return box

    def block(self, name: str) -> Any:
        d = self.conversations.block(name)
        d.addCallbacks(lambda _: self._blocks_changed(name, f"{name} is blocked."),
                       lambda failure: self.show_status(explain(failure, self.address), True))
        return d

    def unblock(self, name: str) -> Any:
        d = self.conversations.unblock(name)
        d.addCallbacks(lambda _: self._blocks_changed(name, f"{name} is unblocked."),
                       lambda failure: self.show_status(explain(failure, self.address), True))
        return d

    def _blocks_changed(self, name: str, sentence: str) -> None:
        self.show_status(sentence)
        self.refresh_chat(person_key(name))

    def refresh_chat(self, key: str) -> None:
        """Overridden: the open pane follows a chat's changed state."""

    def add_contact(self, name: str) -> Any:
        d = self.client.add_contact(name)
        d.addCallbacks(lambda reply: self.contact_added(reply.get("contact") or {}),
                       lambda failure: self.show_status(explain(failure, self.address), True))
        return d

    def contact_added(self, contact: dict[str, Any]) -> None:
        name = contact.get("account_name")
        if isinstance(name, str):
            self.conversations.model.person(name, is_contact=True,
                                            status=str(contact.get("status", "offline")))
            self.show_status(f"{name} was added to your contacts.")
            self.refresh_chat(person_key(name))

    def remove_contact(self, name: str) -> Any:
        def removed(_: Any) -> None:
            self.conversations.model.person(name, is_contact=False)
            self.show_status(f"{name} was removed from your contacts.")
            self.refresh_chat(person_key(name))
        d = self.client.del_contact(name)
        d.addCallbacks(removed,
                       lambda failure: self.show_status(explain(failure, self.address), True))
        return d
