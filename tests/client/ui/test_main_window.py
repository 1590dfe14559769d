"""The main window against a real server: finding people, presence, the feed and who may
post to it, the connection told truthfully, the narrow mode, the keyboard, the menu."""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import Qt
from PyQt5.QtTest import QTest
from PyQt5.QtWidgets import QApplication
from twisted.internet import defer, reactor

from messenger.client.ui.chat_state import FEED, NOTICES
from tests.admin.test_cli import run_admin
from tests.client.ui.helpers import (
    DesktopTestCase,
    chat_item,
    click,
    clipped,
    type_into,
    wait_for,
)


class SearchDialogTests(DesktopTestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield self.start_server()
        self.alice = yield self.register("alice")
        self.bob = yield self.register("bob")

    @defer.inlineCallbacks
    def test_add_contact_through_the_search_dialog(self) -> Any:
        """Ctrl+F opens the search; typing lists matching people; picking bob and
        pressing Enter adds him, with his presence, closes the dialog and opens his chat."""
        main = self.alice.main_window
        self.assertIsNone(chat_item(self.alice, "bob"))
        QApplication.setActiveWindow(main)
        QTest.keyClick(main, Qt.Key_F, Qt.ControlModifier)
        dialog = main.search_dialog
        self.assertTrue(dialog is not None and dialog.isVisible())
        type_into(dialog.query, "bo")
        yield wait_for(lambda: dialog.results.count() == 1, what="one result")
        self.assertEqual(dialog.results.item(0).text(), "bob")
        self.assertTrue(dialog.add_button.isEnabled())
        dialog.results.setFocus()
        QTest.keyClick(dialog.results, Qt.Key_Return)
        yield wait_for(lambda: chat_item(self.alice, "bob") is not None, what="bob added")
        self.assertFalse(dialog.isVisible())
        self.assertEqual(chat_item(self.alice, "bob").status, "online")
        self.assertEqual(main.current_key, "@bob")
        reply = yield self.alice.client.get_contacts()
        self.assertEqual([c["account_name"] for c in reply["alert"]], ["bob"])

    @defer.inlineCallbacks
    def test_existing_contacts_cannot_be_picked_and_escape_closes(self) -> Any:
        """People already in the list are shown but cannot be added again; nobody
        matching says so; Esc closes the dialog."""
        yield self.add_contact(self.alice, "bob")
        dialog = self.alice.main_window.open_search()
        self.assertEqual((dialog.query.text(), dialog.results.count()), ("", 0))
        type_into(dialog.query, "bob")
        yield wait_for(lambda: dialog.results.count() == 1, what="bob listed")
        self.assertIn("already a contact", dialog.results.item(0).text())
        self.assertIsNone(dialog.selected_name())
        self.assertFalse(dialog.add_button.isEnabled())
        dialog.query.clear()
        type_into(dialog.query, "zzz")
        dialog.search_now()
        yield wait_for(lambda: "No one matches" in dialog.note.text(), what="no match")
        QTest.keyClick(dialog, Qt.Key_Escape)
        self.assertFalse(dialog.isVisible())

    @defer.inlineCallbacks
    def test_presence_follows_the_contact(self) -> Any:
        """Bob going away, and then offline, shows in alice's list and chat header; the
        Call button follows."""
        yield self.add_contact(self.alice, "bob")
        pane = self.alice.main_window.panes["@bob"]
        self.assertTrue(pane.call_button.isEnabled())
        self.bob.main_window.sidebar.presence_box.setCurrentIndex(1)
        self.bob.main_window.sidebar.presence_box.activated.emit(1)
        yield wait_for(lambda: chat_item(self.alice, "bob").status == "away", what="away")
        self.assertEqual(pane.header.subtitle.full_text(), "away")
        yield self.bob.client.stop()
        yield wait_for(lambda: chat_item(self.alice, "bob").status == "offline",
                       what="offline")
        self.assertEqual(pane.header.subtitle.full_text(), "offline")
        self.assertFalse(pane.call_button.isEnabled())

    @defer.inlineCallbacks
    def test_a_deleted_contact_says_so(self) -> Any:
        """When the operator deletes bob's account, alice's list and open chat say
        "account deleted" at once (not just offline), the Call button is off, and the
        composer gives way to a sentence saying why; what was said stays."""
        yield self.add_contact(self.alice, "bob")
        pane = self.alice.main_window.open_chat("bob")
        type_into(pane.compose, "see you tomorrow")
        click(pane.send_button)
        yield wait_for(lambda: pane.model.rowCount() >= 1, what="the message shown")
        status, out, err = yield run_admin(self.server.config.data_dir.resolve(),
                                           "delete", "bob", "--yes")
        self.assertEqual(status, 0, out + err)
        yield wait_for(lambda: chat_item(self.alice, "bob").status == "deleted",
                       what="bob deleted")
        self.assertEqual(pane.header.subtitle.full_text(), "account deleted")
        self.assertFalse(pane.call_button.isEnabled())
        self.assertIs(pane.bottom.currentWidget(), pane._gone_box)
        self.assertTrue(pane.gone_label.isVisibleTo(pane))
        self.assertIn("bob's account was deleted", pane.gone_label.text())
        self.assertGreaterEqual(pane.model.rowCount(), 1)


class FeedTests(DesktopTestCase):
    @defer.inlineCallbacks
    def test_compose_box_only_for_premium_users(self) -> Any:
        """A premium account (registered with a code an admin made) sees "Post to
        everyone" in Home and its post reaches an ordinary user's feed live (and its
        Home entry's preview); the ordinary user has no compose box."""
        yield self.start_server()
        admin = yield self.register("root")
        code = (yield admin.client.admin_create_code())["code"]
        vip = yield self.register("vip", code=code)
        plain = yield self.register("plain")
        self.assertTrue(vip.client.account.premium)
        self.assertTrue(vip.main_window.feed.can_post)
        self.assertEqual(vip.main_window.sidebar.roles_label.full_text(), "premium")
        self.assertFalse(plain.main_window.feed.can_post)
        vip.main_window.open_key(FEED)
        feed = vip.main_window.feed
        type_into(feed.compose, "Release 1.2 is out")
        QTest.keyClick(feed.compose, Qt.Key_Return)
        yield wait_for(lambda: feed.texts() == ["Release 1.2 is out"], what="own post")
        plain_feed = plain.main_window.feed
        yield wait_for(lambda: plain_feed.texts() == ["Release 1.2 is out"],
                       what="the post in plain's feed")
        self.assertIn("Release 1.2 is out", plain_feed.browser.toPlainText())
        home = plain.conversations.model.item(FEED)
        self.assertEqual((home.record.preview, home.unread), ("Release 1.2 is out", 1))

    @defer.inlineCallbacks
    def test_premium_granted_later_shows_the_box(self) -> Any:
        """When an admin makes a user premium, the compose box appears at once and an
        (unread) service message says so."""
        yield self.start_server()
        admin = yield self.register("root")
        user = yield self.register("carol")
        self.assertFalse(user.main_window.feed.can_post)
        yield admin.client.admin_set_premium("carol", True)
        yield wait_for(lambda: user.main_window.feed.can_post, what="the compose box")
        self.assertIn("You are now premium.", user.main_window.notices.texts())
        self.assertEqual(user.conversations.model.item(NOTICES).unread, 1)


class TruthfulStateTests(DesktopTestCase):
    @defer.inlineCallbacks
    def test_disconnected_state_shown_at_once_and_cleared_when_back(self) -> Any:
        """The moment the client reports the connection lost (an explicit event, no
        waiting), every presence is unknown, the chat header says "connecting…", Call is
        off and the status bar counts down; within a second of the server's stop. Once
        the server is back, the header shows presence again."""
        yield self.start_server()
        alice = yield self.register("alice")
        yield self.register("bob")
        yield self.add_contact(alice, "bob")
        main, pane = alice.main_window, alice.main_window.panes["@bob"]
        self.assertEqual(pane.header.subtitle.full_text(), "online")
        seen: list[tuple[float, str, str, bool]] = []

        sidebar = main.sidebar
        row = lambda: sidebar.proxy.index(sidebar.keys_in_order().index("@bob"), 0)  # noqa: E731
        self.assertEqual(sidebar.delegate.describe(row())[0], "online")    # the dot

        def on_state(state: Any) -> None:
            if not state.logged_in and not seen:
                dot, line, _ = sidebar.delegate.describe(row())
                seen.append((reactor.seconds(), pane.header.subtitle.full_text(),
                             (dot, line), pane.call_button.isEnabled()))
        alice.bridge.state.connect(on_state)          # after the windows' own slots
        stopped_at = reactor.seconds()
        yield self.stop_server()
        yield wait_for(lambda: seen, what="the connection lost")
        when, header, presence, can_call = seen[0]
        self.assertLess(when - stopped_at, 1.0)
        self.assertEqual((header, presence, can_call),
                         ("connecting…", (None, "Presence unknown while offline"), False))
        self.assertFalse(alice.conversations.model.connected)
        yield wait_for(lambda: main.state_label.full_text().startswith("Reconnecting in "),
                       what="the countdown")
        yield self.restart_server()
        yield wait_for(lambda: pane.header.subtitle.full_text() == "online", timeout=30,
                       what="presence again")
        self.assertTrue(alice.conversations.model.connected)

    @defer.inlineCallbacks
    def test_revoked_login_returns_to_the_login_window(self) -> Any:
        """An account locked by an administrator while logged in: the session cannot go
        on, and the login window says why instead of closing silently."""
        yield self.start_server()
        admin = yield self.register("root")
        user = yield self.register("carol")
        yield admin.client.admin_lock("carol")
        yield wait_for(lambda: user.main_window is None, timeout=30, what="back to login")
        self.assertTrue(user.login_window.isVisible())
        self.assertIn("locked by an administrator", user.login_window.banner.text())


class LayoutTests(DesktopTestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield self.start_server()
        self.alice = yield self.register("alice_with_a_rather_long_name")
        self.bob = yield self.register("bob")
        yield self.add_contact(self.alice, "bob")
        yield self.bob.client.send_message("alice_with_a_rather_long_name", "hello " * 30)

    @defer.inlineCallbacks
    def settle(self) -> Any:
        """Let the layouts and the deferred item layout run (no fixed wait: until the
        event queue is empty twice)."""
        for _ in range(3):
            QApplication.processEvents()
            yield wait_for(lambda: True)

    @defer.inlineCallbacks
    def test_narrow_mode_at_380_px_shows_one_side_and_clips_nothing(self) -> Any:
        """At 380 px the window shows the chat list alone, then the chat alone (with a
        back arrow; Esc goes back); no visible label or button is clipped, there or at
        the window's minimum and at full width."""
        main = self.alice.main_window
        main.resize(1100, 720)
        yield self.settle()
        self.assertEqual(clipped(main), [])
        main.resize(380, 700)
        yield self.settle()
        self.assertTrue(main.narrow)
        self.assertEqual((main.sidebar.isVisible(), main.stack.isVisible()), (False, True))
        pane = main.panes["@bob"]
        self.assertTrue(pane.header.back_button.isVisible())
        self.assertEqual(clipped(main), [])
        QApplication.setActiveWindow(main)
        QTest.keyClick(pane.compose, Qt.Key_Escape)
        self.assertEqual((main.sidebar.isVisible(), main.stack.isVisible()), (True, False))
        yield self.settle()
        self.assertEqual(clipped(main), [])
        main.resize(main.minimumSize())
        yield self.settle()
        self.assertEqual(clipped(main), [])
        main.open_key("@bob")
        yield self.settle()
        self.assertEqual(clipped(main), [])
        main.resize(1100, 720)
        yield self.settle()
        self.assertFalse(main.narrow)
        self.assertTrue(main.sidebar.isVisible() and main.stack.isVisible())

    @defer.inlineCallbacks
    def test_dialogs_fit_their_labels_at_their_minimum_size(self) -> Any:
        """The login window, the settings, the shortcuts, the search dialog and the
        admin panel at their smallest show every label and button whole."""
        main = self.alice.main_window                  # the first account: an admin
        windows = [self.alice.login_window, self.alice.open_preferences(),
                   main.show_shortcuts(), main.open_search(), self.alice.open_settings(),
                   main.open_admin()]
        for window in windows:
            window.show()
            window.resize(window.minimumSizeHint().expandedTo(window.minimumSize()))
            yield self.settle()
            self.assertEqual(clipped(window), [], window.windowTitle())
            window.close()


class KeyboardTests(DesktopTestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield self.start_server()
        self.alice = yield self.register("alice")
        for name in ("bob", "carol"):
            desktop = yield self.register(name)
            yield desktop.client.send_message("alice", f"hi from {name}")
        self.main = self.alice.main_window
        yield wait_for(lambda: chat_item(self.alice, "carol") is not None, what="carol")
        self.main.go_back()
        QApplication.setActiveWindow(self.main)

    def test_ctrl_k_jumps_to_a_chat(self) -> None:
        """Ctrl+K puts the cursor in the search field; typing narrows the list; Enter
        opens the first match."""
        QTest.keyClick(self.main, Qt.Key_K, Qt.ControlModifier)
        field = self.main.sidebar.filter
        self.assertTrue(field.hasFocus())
        QTest.keyClicks(field, "car")
        self.assertEqual(self.main.sidebar.keys_in_order(), ["@carol"])
        QTest.keyClick(field, Qt.Key_Return)
        self.assertEqual(self.main.current_key, "@carol")

    def test_alt_up_and_down_walk_the_list_and_esc_goes_back(self) -> None:
        """Alt+Down opens the next chat in the list's order, Alt+Up the one before; Esc
        closes the chat."""
        order = self.main.sidebar.keys_in_order()
        QTest.keyClick(self.main, Qt.Key_Down, Qt.AltModifier)
        self.assertEqual(self.main.current_key, order[0])
        QTest.keyClick(self.main, Qt.Key_Down, Qt.AltModifier)
        self.assertEqual(self.main.current_key, order[1])
        QTest.keyClick(self.main, Qt.Key_Up, Qt.AltModifier)
        self.assertEqual(self.main.current_key, order[0])
        QTest.keyClick(self.main, Qt.Key_Escape)
        self.assertIsNone(self.main.current_key)
        self.assertIs(self.main.stack.currentWidget(), self.main.placeholder)

    def test_f1_lists_the_shortcuts(self) -> None:
        """F1 opens the shortcuts, listing the keys the issue names."""
        QTest.keyClick(self.main, Qt.Key_F1)
        dialog = self.main.shortcuts_dialog
        self.assertTrue(dialog is not None and dialog.isVisible())
        keys = {dialog.table.item(row, 0).text() for row in range(dialog.table.rowCount())}
        for key in ("Ctrl+K", "Ctrl+F", "Alt+Up", "Alt+Down", "Esc"):
            self.assertIn(key, keys)

    @defer.inlineCallbacks
    def test_quit_shortcut_and_log_out_from_the_menu(self) -> Any:
        """Ctrl+Q asks the program to quit; Log out in the menu returns to the login
        window and forgets the saved login, so the next start asks again."""
        quits: list[int] = []
        self.alice.quit_requested.connect(lambda: quits.append(1))
        QTest.keyClick(self.main, Qt.Key_Q, Qt.ControlModifier)
        self.assertEqual(quits, [1])
        log_out = next(a for a in self.main.main_menu.actions() if a.text() == "Log out")
        log_out.trigger()
        self.assertIsNone(self.alice.main_window)
        self.assertTrue(self.alice.login_window.isVisible())
        yield wait_for(lambda: self.alice.client.state.name == "offline", what="offline")
        yield self.alice.shutdown()                  # its files written: one owner at a time
        again = self.make_desktop()
        again.config_dir = self.alice.config_dir
        yield self.started(again)
        self.assertIsNone(again.main_window)
        self.assertEqual(again.client.state.name, "login_required")
