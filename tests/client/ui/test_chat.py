"""Chat windows of two desktops on one real server: messages both ways, pending until
acknowledged, history in pages, unread counts, the title and notifications."""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import Qt
from PyQt5.QtTest import QTest
from PyQt5.QtWidgets import QApplication
from twisted.internet import defer

from tests.client.ui.helpers import DesktopTestCase, click, type_into, wait_for


class ChatTestCase(DesktopTestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield self.start_server()
        self.alice = yield self.register("alice")
        self.bob = yield self.register("bob")
        yield self.add_contact(self.alice, "bob")
        yield self.add_contact(self.bob, "alice")

    def open_chat_by_double_click(self, desktop: Any, peer: str) -> Any:
        main = desktop.main_window
        row = main.contacts.row_of(peer)
        index = main.proxy.mapFromSource(main.contacts.index(row))
        main.contact_view.scrollTo(index)
        QApplication.processEvents()
        rect = main.contact_view.visualRect(index)
        viewport = main.contact_view.viewport()
        QTest.mouseClick(viewport, Qt.LeftButton, Qt.NoModifier, rect.center())
        QTest.mouseDClick(viewport, Qt.LeftButton, Qt.NoModifier, rect.center())
        return main.chats[peer.lower()]

    @staticmethod
    def texts(chat: Any) -> list[tuple[str, bool, str]]:
        return [(e.text, e.own, e.status) for e in chat.model.entries()]


class ExchangeTests(ChatTestCase):
    @defer.inlineCallbacks
    def test_message_appears_in_both_chat_views(self) -> Any:
        """Alice types and presses Enter: the message shows in her chat, then in Bob's
        (opened by double-clicking alice), and Bob's reply shows live in hers."""
        alice_chat = self.open_chat_by_double_click(self.alice, "bob")
        self.assertTrue(alice_chat.isVisible())
        yield wait_for(lambda: alice_chat.loaded_once, what="alice's history")
        type_into(alice_chat.compose, "Hello Bob!")
        QTest.keyClick(alice_chat.compose, Qt.Key_Return)
        self.assertEqual(alice_chat.compose.toPlainText(), "")
        yield wait_for(lambda: self.texts(alice_chat) == [("Hello Bob!", True, "acked")],
                       what="alice's message acknowledged")
        bob_chat = self.open_chat_by_double_click(self.bob, "alice")
        yield wait_for(lambda: ("Hello Bob!", False, "received") in self.texts(bob_chat),
                       what="the message in bob's chat")
        type_into(bob_chat.compose, "Hi Alice")
        click(bob_chat.send_button)
        yield wait_for(lambda: ("Hi Alice", False, "received") in self.texts(alice_chat),
                       what="bob's reply in alice's chat")
        self.assertEqual([t[0] for t in self.texts(alice_chat)], ["Hello Bob!", "Hi Alice"])
        self.assertEqual([t[0] for t in self.texts(bob_chat)], ["Hello Bob!", "Hi Alice"])

    @defer.inlineCallbacks
    def test_shift_enter_and_long_text(self) -> Any:
        """Shift+Enter starts a new line instead of sending; a long text wraps inside the
        view (its bubble is tall, never wider than the view)."""
        chat = self.alice.main_window.open_chat("bob")
        yield wait_for(lambda: chat.loaded_once, what="history")
        type_into(chat.compose, "first line")
        QTest.keyClick(chat.compose, Qt.Key_Return, Qt.ShiftModifier)
        type_into(chat.compose, "second line")
        self.assertEqual(chat.compose.toPlainText(), "first line\nsecond line")
        self.assertEqual(chat.model.rowCount(), 0)
        QTest.keyClick(chat.compose, Qt.Key_Return)
        long_text = " ".join(["wrapping"] * 120) + " " + "x" * 300
        chat.compose.setPlainText(long_text)
        chat.send()
        yield wait_for(lambda: [e.status for e in chat.model.entries()] == ["acked"] * 2,
                       what="both acknowledged")
        self.assertEqual(chat.model.entry(0).text, "first line\nsecond line")
        short = chat.view.sizeHintForRow(0)
        tall = chat.view.sizeHintForRow(1)
        self.assertGreater(tall, 5 * short // 2)
        rect = chat.view.visualRect(chat.model.index(1))
        self.assertLessEqual(rect.width(), chat.view.viewport().width())

    @defer.inlineCallbacks
    def test_pending_until_acknowledged(self) -> Any:
        """A message written while the server is away is shown pending ("sending…");
        once the server is back it turns acknowledged (✓) with its message id."""
        chat = self.alice.main_window.open_chat("bob")
        yield wait_for(lambda: chat.loaded_once, what="history")
        yield self.stop_server()
        yield wait_for(lambda: self.alice.client.state.name == "reconnecting",
                       what="reconnecting")
        type_into(chat.compose, "are you there?")
        QTest.keyClick(chat.compose, Qt.Key_Return)
        entry = chat.model.entry(0)
        self.assertEqual((entry.status, entry.msg_id), ("pending", None))
        delegate = chat.view.itemDelegate()
        self.assertIn("sending…", delegate._footer(entry))
        yield self.restart_server()
        yield wait_for(lambda: chat.model.entry(0).status == "acked", timeout=30,
                       what="acknowledged after the restart")
        entry = chat.model.entry(0)
        self.assertIsInstance(entry.msg_id, int)
        self.assertIn("✓", delegate._footer(entry))
        self.assertEqual(chat.model.rowCount(), 1)


class HistoryTests(ChatTestCase):
    @defer.inlineCallbacks
    def test_history_loads_in_pages_when_scrolling_up(self) -> Any:
        """Opening a chat shows the newest page; scrolling to the top loads older pages,
        keeps the order by message id, and ends with the beginning of the conversation."""
        client = self.bob.client
        yield defer.gatherResults([client.send_message("alice", f"message {n:03d}")
                                   for n in range(130)])
        chat = self.alice.main_window.open_chat("bob")
        yield wait_for(lambda: chat.loaded_once, what="the first page")
        yield wait_for(lambda: not chat.loading, what="the first page")
        first_page = chat.model.rowCount()
        self.assertLess(first_page, 130)
        self.assertEqual(chat.model.entry(first_page - 1).text, "message 129")
        bar = chat.view.verticalScrollBar()
        for _ in range(10):
            if not chat.more:
                break
            bar.setValue(bar.minimum())
            yield wait_for(lambda: not chat.loading, what="a page")
        self.assertEqual(chat.model.rowCount(), 130)
        self.assertFalse(chat.more)
        self.assertIn("beginning of your conversation", chat.top_note.text())
        texts = [e.text for e in chat.model.entries()]
        self.assertEqual(texts, [f"message {n:03d}" for n in range(130)])
        ids = [e.msg_id for e in chat.model.entries()]
        self.assertEqual(ids, sorted(ids))


class UnreadTests(ChatTestCase):
    @defer.inlineCallbacks
    def test_unread_counts_title_and_notification(self) -> Any:
        """Messages to a chat that is not in front raise the contact's unread count and
        the title's total and make a desktop notification; opening the chat reads them."""
        main = self.alice.main_window
        yield self.bob.client.send_message("alice", "one")
        yield self.bob.client.send_message("alice", "two")
        yield wait_for(lambda: main.contacts.unread_of("bob") == 2, what="two unread")
        self.assertEqual(main.windowTitle(), "(2) Messenger — alice")
        self.assertEqual(main.total_unread(), 2)
        notes = self.alice.notifier.shown
        self.assertIn(("New message from bob", "two"), notes)
        chat = main.open_chat("bob")
        self.assertEqual(main.contacts.unread_of("bob"), 0)
        self.assertEqual(main.windowTitle(), "Messenger — alice")
        yield wait_for(lambda: [e.text for e in chat.model.entries()] == ["one", "two"],
                       what="the messages in the chat")
        chat.hide()                                   # no longer in front
        yield self.bob.client.send_message("alice", "three")
        yield wait_for(lambda: main.contacts.unread_of("bob") == 1, what="one unread")
        self.assertEqual(main.windowTitle(), "(1) Messenger — alice")
        self.assertEqual([e.text for e in chat.model.entries()], ["one", "two", "three"])

    @defer.inlineCallbacks
    def test_stranger_shows_up_in_the_list(self) -> Any:
        """A message from someone who is not a contact lists them, marked, with the count."""
        carol = yield self.register("carol")
        yield carol.client.send_message("alice", "hi, we have not met")
        main = self.alice.main_window
        yield wait_for(lambda: main.contacts.unread_of("carol") == 1, what="carol listed")
        self.assertFalse(main.contacts.contact("carol").is_contact)
