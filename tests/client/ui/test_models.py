"""The list models and small widgets on their own: a conversation's order and
de-duplication, the chat list's order, the compose box's keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PyQt5.QtCore import Qt
from PyQt5.QtTest import QTest
from twisted.trial.unittest import TestCase

from messenger.client.ui.chat_list import ChatListModel
from messenger.client.ui.chat_model import ChatModel
from messenger.client.ui.chat_state import ChatState
from messenger.client.ui.widgets import ComposeEdit
from tests.client.ui import helpers  # noqa: F401 (the application's style)


@dataclass
class Outgoing:
    request_id: str
    text: str
    created: float = 100.0
    status: str = "pending"
    msg_id: int | None = None
    time: float | None = None
    error: Any = None
    to: str = "bob"


def message(msg_id: int, sender: str = "bob", text: str | None = None) -> dict[str, Any]:
    return {"msg_id": msg_id, "time": 100.0 + msg_id, "from": sender,
            "to": "alice" if sender == "bob" else "bob",
            "message": text or f"m{msg_id}"}


class ChatModelTests(TestCase):
    def setUp(self) -> None:
        self.model = ChatModel("alice")

    def rows(self) -> list[tuple[Any, str, str]]:
        return [(e.msg_id, e.text, e.status) for e in self.model.entries()]

    def test_history_and_live_messages_merge_by_id(self) -> None:
        """Pages and live messages end up once each, in message id order."""
        self.assertTrue(self.model.add_stored(7, 107.0, "bob", "m7"))
        self.assertEqual(self.model.add_history([message(5), message(6), message(7)]), 2)
        self.assertEqual(self.model.add_history([message(3), message(4, "alice")]), 2)
        self.assertFalse(self.model.add_stored(6, 106.0, "bob", "m6"))
        self.assertEqual([r[0] for r in self.rows()], [3, 4, 5, 6, 7])
        self.assertEqual(self.model.first_msg_id(), 3)
        self.assertEqual(self.model.entry(1).status, "acked")     # alice's own
        self.assertTrue(self.model.entry(1).own)

    def test_pending_then_acked_moves_into_place(self) -> None:
        """An own message stays last while pending and takes its id's place when acked;
        a message that arrived meanwhile with a higher id stays after it."""
        self.model.add_stored(10, 110.0, "bob", "before")
        first = Outgoing("r1", "mine")
        self.model.add_outgoing(first)
        self.assertEqual(self.rows()[-1], (None, "mine", "pending"))
        self.model.add_stored(12, 112.0, "bob", "later")
        self.assertEqual([r[1] for r in self.rows()], ["before", "later", "mine"])
        first.status, first.msg_id, first.time = "acked", 11, 111.0
        self.assertTrue(self.model.update_outgoing(first))
        self.assertEqual(self.rows(), [(10, "before", "received"), (11, "mine", "acked"),
                                       (12, "later", "received")])

    def test_acked_id_already_shown_is_not_doubled(self) -> None:
        """If history brought the message first, the acknowledgement removes the copy."""
        outgoing = Outgoing("r1", "hello")
        self.model.add_outgoing(outgoing)
        self.model.add_history([message(20, "alice", "hello")])
        outgoing.status, outgoing.msg_id, outgoing.time = "acked", 20, 120.0
        self.model.update_outgoing(outgoing)
        self.assertEqual(self.rows(), [(20, "hello", "acked")])

    def test_failed_keeps_the_text_and_reason(self) -> None:
        """A refused message stays, marked failed with the reason."""
        class Refusal(Exception):
            message = "no user named 'bob'"
        outgoing = Outgoing("r1", "hello")
        self.model.add_outgoing(outgoing)
        outgoing.status, outgoing.error = "failed", Refusal()
        self.model.update_outgoing(outgoing)
        entry = self.model.entry(0)
        self.assertEqual((entry.status, entry.error), ("failed", "no user named 'bob'"))
        self.assertFalse(self.model.update_outgoing(Outgoing("other", "x")))


class ChatListModelTests(TestCase):
    def test_order_by_last_activity_and_moves(self) -> None:
        """Rows are newest activity first, chats without any by name after them; a
        touched chat moves to its place (a move, so a selection follows it); contacts
        replace the list but keep people we talked with, marked."""
        state = ChatState()
        model = ChatListModel()
        model.load(state)
        self.assertEqual(model.keys(), ["feed", "notices"])
        model.set_contacts([{"account_name": "carol", "status": "away"},
                            {"account_name": "Bob", "status": "online"}])
        self.assertEqual(model.keys(), ["@bob", "@carol", "feed", "notices"])
        moves: list[int] = []
        model.rowsMoved.connect(lambda *args: moves.append(args[1]))
        state.incoming("@carol", 5, 50.0, "carol", "hi", reading=False)
        model.touched("@carol")
        self.assertEqual(model.keys()[0], "@carol")
        self.assertEqual(moves, [1])
        state.incoming("@dave", 6, 60.0, "dave", "who?", reading=False)
        model.person("dave")
        self.assertEqual(model.keys()[:2], ["@dave", "@carol"])
        self.assertFalse(model.item("@dave").is_contact)
        self.assertEqual(model.total_unread(), 2)
        state.set_muted("@dave", True)
        self.assertEqual(model.total_unread(), 1)
        model.set_contacts([{"account_name": "Bob", "status": "offline"}])
        self.assertEqual(model.keys(), ["@dave", "@carol", "@bob", "feed", "notices"])
        self.assertFalse(model.item("@carol").is_contact)
        self.assertEqual(model.item("@bob").title, "Bob")

    def test_presence_is_unknown_while_disconnected(self) -> None:
        """Nobody is "Online" in the list while the connection is down."""
        model = ChatListModel()
        model.load(ChatState())
        model.set_contacts([{"account_name": "bob", "status": "online"}])
        item = model.item("@bob")
        self.assertEqual(model.presence_words(item), "Presence unknown while offline")
        model.set_connected(True)
        self.assertEqual(model.presence_words(item), "Online")
        model.set_blocked(["BOB"])
        self.assertEqual(model.presence_words(item), "Blocked")

class ComposeEditTests(TestCase):
    def test_enter_sends_shift_enter_breaks_the_line(self) -> None:
        """Enter emits submitted and inserts nothing; Shift+Enter inserts a newline; the
        box grows with its lines up to its maximum."""
        edit = ComposeEdit(max_lines=3)
        edit.show()
        self.addCleanup(edit.close)
        sent = []
        edit.submitted.connect(lambda: sent.append(edit.toPlainText()))
        one_line = edit.height()
        QTest.keyClicks(edit, "a")
        QTest.keyClick(edit, Qt.Key_Return, Qt.ShiftModifier)
        QTest.keyClicks(edit, "b")
        self.assertEqual(edit.toPlainText(), "a\nb")
        self.assertGreater(edit.height(), one_line)
        QTest.keyClick(edit, Qt.Key_Enter)
        self.assertEqual(sent, ["a\nb"])
        self.assertEqual(edit.toPlainText(), "a\nb")
        for _ in range(6):
            QTest.keyClick(edit, Qt.Key_Return, Qt.ShiftModifier)
        three_lines = edit.height()
        QTest.keyClick(edit, Qt.Key_Return, Qt.ShiftModifier)
        self.assertEqual(edit.height(), three_lines)
