"""Live events to the open conversation panes: messages, the outbox's status changes,
the others' receipts (ticks) and typing. A mixin of `MainWindow` (``panes``, ``me``);
a chat without an open pane needs none of these (the chat list has its own)."""

from __future__ import annotations

from typing import Any

from messenger.client.ui.chat_state import group_key, person_key


class PaneRoutingMixin:
    panes: dict[str, Any]
    me: str

    def on_message(self, message: Any) -> None:
        own = message.sender.lower() == self.me.lower()
        key = group_key(message.group) if message.group is not None else \
            person_key(message.recipient if own else message.sender)
        pane = self.panes.get(key)
        if pane is not None:
            pane.add_incoming(message)
            pane.set_typing(message.sender, False)

    def on_message_status(self, outgoing: Any) -> None:
        pane = self.panes.get(group_key(outgoing.group) if outgoing.group is not None
                              else person_key(outgoing.to))
        if pane is not None:
            pane.update_outgoing(outgoing)

    def on_receipt(self, update: Any) -> None:
        """Someone received or read a conversation further: its ticks."""
        pane = self.panes.get(group_key(update.group) if update.group is not None
                              else person_key(update.reader))
        if pane is not None:
            pane.refresh_receipts()

    def on_typing(self, event: Any) -> None:
        pane = self.panes.get(group_key(event.group) if event.group is not None
                              else person_key(event.sender))
        if pane is not None:
            pane.set_typing(event.sender, event.active)

    def on_transfer(self, transfer: Any) -> None:
        """An upload or download moved on: the pane that started it shows it."""
        for pane in self.panes.values():
            pane.on_transfer(transfer)

    def on_message_changed(self, change: Any) -> None:
        """Edited or deleted for everyone: the open pane shows it as it is now."""
        own = change.sender.lower() == self.me.lower()
        pane = self.panes.get(group_key(change.group) if change.group is not None else
                              person_key((change.recipient or "") if own else change.sender))
        if pane is not None:
            pane.apply_change(change)
