"""The main window against a real server: adding a contact through the search dialog,
presence, the home feed and who may post to it, and the connection in the status bar."""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import Qt
from PyQt5.QtTest import QTest
from PyQt5.QtWidgets import QApplication
from twisted.internet import defer

from tests.client.ui.helpers import DesktopTestCase, type_into, wait_for


class SearchDialogTests(DesktopTestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield self.start_server()
        self.alice = yield self.register("alice")
        self.bob = yield self.register("bob")

    @defer.inlineCallbacks
    def test_add_contact_through_the_search_dialog(self) -> Any:
        """Ctrl+F opens the search; typing lists matching people; picking bob and
        pressing Enter adds him, with his presence, and closes the dialog."""
        main = self.alice.main_window
        self.assertIsNone(main.contacts.row_of("bob"))
        QApplication.setActiveWindow(main)
        QTest.keyClick(main, Qt.Key_F, Qt.ControlModifier)
        dialog = main.search_dialog
        self.assertIsNotNone(dialog)
        self.assertTrue(dialog.isVisible())
        type_into(dialog.query, "bo")
        yield wait_for(lambda: dialog.results.count() == 1, what="one result")
        self.assertEqual(dialog.results.item(0).text(), "bob")
        self.assertEqual(dialog.selected_name(), "bob")
        self.assertTrue(dialog.add_button.isEnabled())
        dialog.results.setFocus()
        QTest.keyClick(dialog.results, Qt.Key_Return)
        yield wait_for(lambda: main.contacts.row_of("bob") is not None, what="bob added")
        self.assertFalse(dialog.isVisible())
        self.assertEqual(main.contacts.status_of("bob"), "online")
        self.assertEqual(main.selected_contact(), "bob")
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
        """Bob going away, and then offline, shows in alice's contact list."""
        yield self.add_contact(self.alice, "bob")
        main = self.alice.main_window
        self.bob.main_window.presence_box.setCurrentIndex(1)
        self.bob.main_window.presence_box.activated.emit(1)
        yield wait_for(lambda: main.contacts.status_of("bob") == "away", what="away")
        yield self.bob.client.stop()
        yield wait_for(lambda: main.contacts.status_of("bob") == "offline", what="offline")
        main.select_contact("bob")
        self.assertFalse(main.call_button.isEnabled())


class FeedTests(DesktopTestCase):
    @defer.inlineCallbacks
    def test_compose_box_only_for_premium_users(self) -> Any:
        """A premium account (registered with a code an admin made) sees "Post to
        everyone" and its post reaches an ordinary user's feed live; the ordinary user
        has no compose box."""
        yield self.start_server()
        admin = yield self.register("root")
        code = (yield admin.client.admin_create_code())["code"]
        vip = yield self.register("vip", code=code)
        plain = yield self.register("plain")
        self.assertTrue(vip.client.account.premium)
        self.assertTrue(vip.main_window.feed.can_post)
        self.assertTrue(vip.main_window.premium_badge.isVisibleTo(vip.main_window))
        self.assertFalse(plain.main_window.feed.can_post)
        self.assertFalse(plain.main_window.feed.compose_box.isVisibleTo(plain.main_window))
        feed = vip.main_window.feed
        type_into(feed.compose, "Release 1.2 is out")
        QTest.keyClick(feed.compose, Qt.Key_Return)
        yield wait_for(lambda: feed.texts() == ["Release 1.2 is out"], what="own post")
        plain_feed = plain.main_window.feed
        yield wait_for(lambda: plain_feed.texts() == ["Release 1.2 is out"],
                       what="the post in plain's feed")
        self.assertIn("Release 1.2 is out", plain_feed.browser.toPlainText())

    @defer.inlineCallbacks
    def test_premium_granted_later_shows_the_box(self) -> Any:
        """When an admin makes a user premium, the compose box appears at once and a
        service message says so."""
        yield self.start_server()
        admin = yield self.register("root")
        user = yield self.register("carol")
        self.assertFalse(user.main_window.feed.can_post)
        yield admin.client.admin_set_premium("carol", True)
        yield wait_for(lambda: user.main_window.feed.can_post, what="the compose box")
        self.assertIn("You are now premium.", user.main_window.notices.texts())
        self.assertEqual(user.main_window.tabs.tabText(1), "Notices (2)")   # + the key


class StatusBarTests(DesktopTestCase):
    @defer.inlineCallbacks
    def test_reconnecting_while_the_server_is_down_then_online(self) -> Any:
        """The status bar says "Reconnecting in N s" while the server is stopped and
        "Online" again once it is back; the window stays open throughout."""
        yield self.start_server()
        alice = yield self.register("alice")
        main = alice.main_window
        yield wait_for(lambda: main.state_label.text() == "Online", what="Online")
        yield self.stop_server()
        yield wait_for(lambda: main.state_label.text().startswith("Reconnecting in "),
                       what="Reconnecting")
        self.assertRegex(main.state_label.text(), r"^Reconnecting in \d+ s")
        self.assertIs(alice.main_window, main)
        self.assertTrue(main.isVisible())
        self.assertFalse(main.call_button.isEnabled())
        yield self.restart_server()
        yield wait_for(lambda: main.state_label.text() == "Online", timeout=30,
                       what="Online again")
        self.assertEqual(alice.client.state.name, "online")

    @defer.inlineCallbacks
    def test_revoked_login_returns_to_the_login_window(self) -> Any:
        """An account locked by an administrator while logged in: the session cannot go
        on, and the login window says why instead of closing silently."""
        yield self.start_server()
        admin = yield self.register("root")
        user = yield self.register("carol")
        yield admin.client.admin_lock("carol")
        yield wait_for(lambda: user.main_window is None, timeout=30, what="back to login")
        window = user.login_window
        self.assertTrue(window.isVisible())
        self.assertIn("locked by an administrator", window.banner.text())


class AccountMenuTests(DesktopTestCase):
    @defer.inlineCallbacks
    def test_quit_shortcut_and_log_out_from_the_menu(self) -> Any:
        """Ctrl+Q asks the program to quit; Log out in the Account menu returns to the
        login window and forgets the saved login, so the next start asks again."""
        yield self.start_server()
        alice = yield self.register("alice")
        main = alice.main_window
        quits: list[int] = []
        alice.quit_requested.connect(lambda: quits.append(1))
        QApplication.setActiveWindow(main)
        QTest.keyClick(main, Qt.Key_Q, Qt.ControlModifier)
        self.assertEqual(quits, [1])
        log_out = next(a for a in main.account_menu.actions() if a.text() == "Log out")
        log_out.trigger()
        self.assertIsNone(alice.main_window)
        self.assertTrue(alice.login_window.isVisible())
        yield wait_for(lambda: alice.client.state.name == "offline", what="offline")
        yield alice.shutdown()                       # its files written: one owner at a time
        again = self.make_desktop()
        again.config_dir = alice.config_dir
        yield self.started(again)
        self.assertIsNone(again.main_window)
        self.assertTrue(again.login_window.login_button.isEnabled())
        self.assertEqual(again.client.state.name, "login_required")
