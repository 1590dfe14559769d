"""What a conversation pane shows of the other side as it happens (issue 15): the ticks of
the user's own messages (✓ stored, ✓✓ delivered, ✓✓ read; in a group "read by N", the
names on hover) from the client core's receipts, and "bob is typing…" in the header from
its typing events; and what it tells: a typing notice as the user types (the core sends
one at most every few seconds). A mixin of `ConversationPane`, which provides
``client``, ``model``, ``view``, ``header``, ``compose`` and ``conversation()``.
"""

from __future__ import annotations

from typing import Any

from messenger.client.ui.chat_model import ChatEntry


def typing_words(names: list[str]) -> str:
    """"bob is typing…", "bob and carol are typing…", "4 people are typing…"."""
    if not names:
        return ""
    if len(names) == 1:
        return f"{names[0]} is typing…"
    if len(names) == 2:
        return f"{names[0]} and {names[1]} are typing…"
    return f"{len(names)} people are typing…"


class LiveMarksMixin:
    client: Any
    model: Any
    view: Any
    header: Any
    compose: Any

    def conversation(self) -> dict[str, Any]:
        """``{"to": name}`` or ``{"group": id}``: the core's way to name this chat."""
        raise NotImplementedError

    def init_live_marks(self) -> None:
        self.typists: list[str] = []
        self._subtitle: tuple[str, bool] = ("", False)
        self.compose.textChanged.connect(self._typed)
        self.view.tooltip_for = self.tooltip_for

    # -- the header -----------------------------------------------------------------------

    def set_subtitle(self, words: str, live: bool = False) -> None:
        """The header's second line (presence, the group's state); someone typing is
        shown over it while they type."""
        self._subtitle = (words, live)
        self._show_subtitle()

    def set_typing(self, name: str, active: bool) -> None:
        known = [typist for typist in self.typists if typist.lower() != name.lower()]
        self.typists = [*known, name] if active else known
        self._show_subtitle()

    def _show_subtitle(self) -> None:
        typing = typing_words(self.typists)
        words, live = (typing, True) if typing else self._subtitle
        self.header.set_subtitle(words, highlight=live)

    def _typed(self) -> None:
        if self.compose.toPlainText().strip():
            receipts = getattr(self.client, "notify_typing", None)
            if receipts is not None and self.client.state.logged_in:
                self.client.notify_typing(**self.conversation())

    # -- ticks ----------------------------------------------------------------------------

    def refresh_receipts(self) -> None:
        """The ticks of the own messages shown, from what the core knows now."""
        receipts = getattr(self.client, "receipts", None)
        if receipts is None:
            return
        where = self.conversation()
        group = where.get("group")

        def status(msg_id: int) -> tuple[str, int]:
            state = receipts.status(msg_id, **where)
            read_by = len(receipts.book.readers(group, msg_id)) \
                if group is not None and state == "read" else 0
            return state, read_by
        self.model.apply_receipts(status)

    def tooltip_for(self, entry: ChatEntry) -> str:
        """Over an own group message: who has read it, and who has it."""
        receipts = getattr(self.client, "receipts", None)
        group = self.conversation().get("group")
        if receipts is None or group is None or not entry.own or entry.msg_id is None:
            return ""
        read = receipts.book.readers(group, entry.msg_id)
        delivered = [name for name in receipts.book.delivered_to(group, entry.msg_id)
                     if name not in read]
        lines = []
        if read:
            lines.append("Read by " + ", ".join(read))
        if delivered:
            lines.append("Delivered to " + ", ".join(delivered))
        return "\n".join(lines) or "Not delivered to anyone yet"
