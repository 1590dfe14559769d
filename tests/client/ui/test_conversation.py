"""Conversations in the one window, two desktops on one real server: messages both ways,
pending until acknowledged, history in pages, the chat list re-sorting, and messages as
objects (select and copy, the context menu, links)."""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import QEvent, QPoint, QPointF, Qt
from PyQt5.QtGui import QGuiApplication, QMouseEvent
from PyQt5.QtTest import QTest
from PyQt5.QtWidgets import QApplication
from twisted.internet import defer

from messenger.client.ui.chat_state import person_key
from tests.client.ui.helpers import DesktopTestCase, chat_item, click, type_into, wait_for


class ConversationTestCase(DesktopTestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield self.start_server()
        self.alice = yield self.register("alice")
        self.bob = yield self.register("bob")
        yield self.add_contact(self.alice, "bob")
        yield self.add_contact(self.bob, "alice")

    @staticmethod
    def click_chat(desktop: Any, name: str) -> Any:
        """Click a person's row in the chat list; returns the pane that opened."""
        sidebar = desktop.main_window.sidebar
        row = sidebar.keys_in_order().index(person_key(name))
        index = sidebar.proxy.index(row, 0)
        sidebar.view.scrollTo(index)
        QApplication.processEvents()
        QTest.mouseClick(sidebar.view.viewport(), Qt.LeftButton, Qt.NoModifier,
                         sidebar.view.visualRect(index).center())
        return desktop.main_window.panes[person_key(name)]

    @staticmethod
    def texts(pane: Any) -> list[tuple[str, bool, str]]:
        return [(e.text, e.own, e.status) for e in pane.model.entries()]


class ExchangeTests(ConversationTestCase):
    @defer.inlineCallbacks
    def test_message_appears_in_both_panes(self) -> Any:
        """Alice clicks bob in her chat list, types and presses Enter: the message shows
        in her pane beside the list, then in bob's, and bob's reply shows live in hers.
        The "Say hello!" note goes with the first message."""
        main = self.alice.main_window
        pane = self.click_chat(self.alice, "bob")
        self.assertIs(main.stack.currentWidget(), pane)
        self.assertTrue(main.sidebar.isVisible() and pane.isVisible())     # one window
        yield wait_for(lambda: pane.loaded_once, what="alice's history")
        self.assertIn("Say hello!", pane.top_note.text())
        type_into(pane.compose, "Hello Bob!")
        QTest.keyClick(pane.compose, Qt.Key_Return)
        self.assertEqual(pane.compose.toPlainText(), "")
        yield wait_for(lambda: self.texts(pane) == [("Hello Bob!", True, "acked")],
                       what="alice's message acknowledged")
        self.assertFalse(pane.top_note.isVisible())
        bob_pane = self.click_chat(self.bob, "alice")
        yield wait_for(lambda: ("Hello Bob!", False, "received") in self.texts(bob_pane),
                       what="the message in bob's pane")
        type_into(bob_pane.compose, "Hi Alice")
        click(bob_pane.send_button)
        yield wait_for(lambda: ("Hi Alice", False, "received") in self.texts(pane),
                       what="bob's reply in alice's pane")
        self.assertEqual([t[0] for t in self.texts(pane)], ["Hello Bob!", "Hi Alice"])
        self.assertEqual(chat_item(self.alice, "bob").record.preview, "Hi Alice")

    @defer.inlineCallbacks
    def test_shift_enter_and_long_text(self) -> Any:
        """Shift+Enter starts a new line instead of sending; a long text wraps inside the
        pane (its bubble is tall, never wider than the view)."""
        pane = self.alice.main_window.open_chat("bob")
        yield wait_for(lambda: pane.loaded_once, what="history")
        type_into(pane.compose, "first line")
        QTest.keyClick(pane.compose, Qt.Key_Return, Qt.ShiftModifier)
        type_into(pane.compose, "second line")
        self.assertEqual(pane.compose.toPlainText(), "first line\nsecond line")
        self.assertEqual(pane.model.rowCount(), 0)
        QTest.keyClick(pane.compose, Qt.Key_Return)
        pane.compose.setPlainText(" ".join(["wrapping"] * 120) + " " + "x" * 300)
        pane.send()
        yield wait_for(lambda: [e.status for e in pane.model.entries()] == ["acked"] * 2,
                       what="both acknowledged")
        self.assertEqual(pane.model.entry(0).text, "first line\nsecond line")
        self.assertGreater(pane.view.sizeHintForRow(1), 5 * pane.view.sizeHintForRow(0) // 2)
        rect = pane.view.visualRect(pane.model.index(1))
        self.assertLessEqual(rect.width(), pane.view.viewport().width())

    @defer.inlineCallbacks
    def test_pending_until_acknowledged(self) -> Any:
        """A message written while the server is away is shown pending ("sending…");
        once the server is back it turns acknowledged (✓) with its message id."""
        pane = self.alice.main_window.open_chat("bob")
        yield wait_for(lambda: pane.loaded_once, what="history")
        yield self.stop_server()
        yield wait_for(lambda: self.alice.client.state.name == "reconnecting",
                       what="reconnecting")
        type_into(pane.compose, "are you there?")
        QTest.keyClick(pane.compose, Qt.Key_Return)
        entry = pane.model.entry(0)
        self.assertEqual((entry.status, entry.msg_id), ("pending", None))
        self.assertIn("sending…", pane.view.bubbles.footer(entry))
        yield self.restart_server()
        yield wait_for(lambda: pane.model.entry(0).status == "acked", timeout=30,
                       what="acknowledged after the restart")
        entry = pane.model.entry(0)
        self.assertIsInstance(entry.msg_id, int)
        self.assertIn("✓", pane.view.bubbles.footer(entry))
        self.assertEqual(pane.model.rowCount(), 1)

    @defer.inlineCallbacks
    def test_outbox_shown_pending_in_a_chat_opened_later(self) -> Any:
        """Messages still in the outbox (written elsewhere, or kept from before a
        restart) show as pending when their chat is opened, and as they are queued in
        an open chat; each once, then acknowledged once the server is back."""
        yield self.stop_server()
        yield wait_for(lambda: self.alice.client.state.name == "reconnecting",
                       what="reconnecting")
        self.alice.client.queue_message("bob", "written before the chat was open")
        pane = self.alice.main_window.open_chat("bob")
        self.alice.client.queue_message("bob", "and one more")
        self.assertEqual([(e.text, e.status) for e in pane.model.entries()],
                         [("written before the chat was open", "pending"),
                          ("and one more", "pending")])
        yield self.restart_server()
        yield wait_for(lambda: [e.status for e in pane.model.entries()] == ["acked"] * 2,
                       timeout=30, what="both acknowledged")
        yield wait_for(lambda: pane.loaded_once, what="history")
        self.assertEqual(pane.model.rowCount(), 2)

    @defer.inlineCallbacks
    def test_chat_list_resorts_on_a_new_message(self) -> Any:
        """The chat list is ordered by last activity: a message from carol puts her
        above bob, the next from bob puts him back on top; each row previews the last
        message and its time."""
        carol = yield self.register("carol")
        yield self.add_contact(self.alice, "carol")
        model = self.alice.conversations.model
        people = lambda: [k for k in model.keys() if k.startswith("@")]  # noqa: E731
        yield self.bob.client.send_message("alice", "from bob")
        yield wait_for(lambda: people()[0] == "@bob", what="bob on top")
        yield carol.client.send_message("alice", "from carol")
        yield wait_for(lambda: people()[:2] == ["@carol", "@bob"], what="carol on top")
        self.assertEqual(chat_item(self.alice, "carol").record.preview, "from carol")
        yield self.bob.client.send_message("alice", "bob again")
        yield wait_for(lambda: people()[:2] == ["@bob", "@carol"], what="bob back on top")
        sidebar = self.alice.main_window.sidebar
        self.assertEqual(sidebar.keys_in_order()[0], "@bob")        # the view follows
        self.assertGreater(model.item("@bob").record.last_time,
                           model.item("@carol").record.last_time)


class HistoryTests(ConversationTestCase):
    @defer.inlineCallbacks
    def test_history_loads_in_pages_when_scrolling_up(self) -> Any:
        """Opening a chat shows the newest page; scrolling to the top loads older pages,
        keeps the order by message id, and ends with the beginning of the conversation."""
        carol = yield self.register("carol")              # no pane open for her yet
        yield defer.gatherResults([carol.client.send_message("alice", f"message {n:03d}")
                                   for n in range(130)])
        pane = self.alice.main_window.open_chat("carol")
        yield wait_for(lambda: pane.loaded_once and not pane.loading, what="the first page")
        first_page = pane.model.rowCount()
        self.assertLess(first_page, 130)
        self.assertEqual(pane.model.entry(first_page - 1).text, "message 129")
        bar = pane.view.verticalScrollBar()
        for _ in range(10):
            if not pane.more:
                break
            bar.setValue(bar.minimum())
            yield wait_for(lambda: not pane.loading, what="a page")
        self.assertEqual(pane.model.rowCount(), 130)
        self.assertFalse(pane.more)
        self.assertIn("beginning of your conversation", pane.beginning_shown)
        self.assertEqual([e.text for e in pane.model.entries()],
                         [f"message {n:03d}" for n in range(130)])
        ids = [e.msg_id for e in pane.model.entries()]
        self.assertEqual(ids, sorted(ids))


class MessagesAsObjectsTests(ConversationTestCase):
    @defer.inlineCallbacks
    def open_with(self, *texts: str) -> Any:
        for text in texts:
            yield self.bob.client.send_message("alice", text)
        pane = self.alice.main_window.open_chat("bob")
        pane.view.open_links = False
        yield wait_for(lambda: pane.model.rowCount() == len(texts), what="the messages")
        QApplication.processEvents()
        return pane

    def text_point(self, pane: Any, row: int, position: int) -> QPoint:
        """Where character ``position`` of row ``row`` is drawn in the viewport."""
        view = pane.view
        index = pane.model.index(row)
        option = view.viewOptions()
        option.rect = view.visualRect(index)
        bubble = view.bubbles.bubble(option, index)
        line = bubble.layout.lineForTextPosition(position)
        x, _ = line.cursorToX(position)
        return QPoint(int(bubble.text_origin.x() + x),
                      int(bubble.text_origin.y() + line.y() + line.height() / 2))

    @staticmethod
    def drag(viewport: Any, start: QPoint, end: QPoint) -> None:
        """Press, move with the button held, release (QTest's move carries no button)."""
        QTest.mousePress(viewport, Qt.LeftButton, Qt.NoModifier, start)
        QApplication.sendEvent(viewport, QMouseEvent(QEvent.MouseMove, QPointF(end),
                                                     Qt.NoButton, Qt.LeftButton,
                                                     Qt.NoModifier))
        QTest.mouseRelease(viewport, Qt.LeftButton, Qt.NoModifier, end)

    @defer.inlineCallbacks
    def test_drag_selects_and_ctrl_c_copies(self) -> Any:
        """Dragging over a message selects its characters (drawn selected); Ctrl+C puts
        exactly them on the clipboard; a drag across two messages copies both parts."""
        pane = yield self.open_with("The quick brown fox", "jumps over the lazy dog")
        view = pane.view
        QGuiApplication.clipboard().setText("")
        viewport = view.viewport()
        self.drag(viewport, self.text_point(pane, 0, 4), self.text_point(pane, 0, 15))
        self.assertEqual(view.selection_range(0), (4, 15))
        self.assertEqual(view.selected_text(), "quick brown")
        QTest.keyClick(view, Qt.Key_C, Qt.ControlModifier)
        self.assertEqual(QGuiApplication.clipboard().text(), "quick brown")
        self.drag(viewport, self.text_point(pane, 0, 10), self.text_point(pane, 1, 5))
        QTest.keyClick(view, Qt.Key_C, Qt.ControlModifier)
        self.assertEqual(QGuiApplication.clipboard().text(), "brown fox\njumps")

    @defer.inlineCallbacks
    def test_context_menu_copies_a_message_and_its_link(self) -> Any:
        """Each message has a menu: Copy text puts its whole text on the clipboard, Copy
        link the link under the mouse; Reply quotes it above the composer."""
        pane = yield self.open_with("see https://example.org/notes, page 2")
        point = self.text_point(pane, 0, 10)
        menu = pane.view.message_menu(point)
        actions = {action.text(): action for action in menu.actions() if action.text()}
        self.assertIn("Copy link", actions)
        actions["Copy text"].trigger()
        self.assertEqual(QGuiApplication.clipboard().text(),
                         "see https://example.org/notes, page 2")
        actions["Copy link"].trigger()
        self.assertEqual(QGuiApplication.clipboard().text(), "https://example.org/notes")
        actions["Reply"].trigger()
        self.assertTrue(pane.context_label.full_text().startswith(
            "Replying to bob: see https://"))
        menu = pane.view.message_menu(self.text_point(pane, 0, 1))
        self.assertNotIn("Copy link", [a.text() for a in menu.actions()])

    @defer.inlineCallbacks
    def test_links_open_on_a_click_and_words_on_a_double_click(self) -> Any:
        """A click on a link opens it (a plain click elsewhere selects nothing); a
        double click selects a word."""
        pane = yield self.open_with("docs at www.example.org/guide.")
        opened: list[str] = []
        pane.view.link_activated.connect(opened.append)
        viewport = pane.view.viewport()
        QTest.mouseClick(viewport, Qt.LeftButton, Qt.NoModifier, self.text_point(pane, 0, 12))
        self.assertEqual(opened, ["https://www.example.org/guide"])
        QTest.mouseClick(viewport, Qt.LeftButton, Qt.NoModifier, self.text_point(pane, 0, 1))
        self.assertEqual(opened, ["https://www.example.org/guide"])
        self.assertEqual(pane.view.selected_text(), "")
        QTest.mouseDClick(viewport, Qt.LeftButton, Qt.NoModifier, self.text_point(pane, 0, 1))
        self.assertEqual(pane.view.selected_text(), "docs")
