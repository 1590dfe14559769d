"""The admin panel against a real server: only for administrators (and the server says
so too), users and their roles and locks, login history, premium codes shown once."""

from __future__ import annotations

import re
from typing import Any

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QGuiApplication
from PyQt5.QtTest import QTest
from PyQt5.QtWidgets import QApplication, QMessageBox
from twisted.internet import defer

from messenger.client.errors import AdminsOnly
from tests.client.ui.helpers import DesktopTestCase, click, wait_for


class AdminTestCase(DesktopTestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield self.start_server()
        self.root = yield self.register("root")          # the first account: admin
        self.bob = yield self.register("bob")

    @defer.inlineCallbacks
    def open_panel(self) -> Any:
        main = self.root.main_window
        self.assertTrue(main.admin_action.isVisible())
        main.admin_action.trigger()
        panel = main.admin_panel
        yield wait_for(lambda: panel.users_table.rowCount() == 2, what="the users")
        return panel

    @staticmethod
    def column(table: Any, column: int) -> list[str]:
        return [table.item(row, column).text() for row in range(table.rowCount())]


class AdminAccessTests(AdminTestCase):
    @defer.inlineCallbacks
    def test_absent_for_an_ordinary_user_and_refused_by_the_server(self) -> Any:
        """An ordinary user has no admin button, Ctrl+Shift+A opens nothing, and an admin
        request forced through the client is refused by the server with 403."""
        main = self.bob.main_window
        self.assertFalse(main.admin_action.isVisible())
        self.assertEqual(main.sidebar.roles_label.full_text(), "member")
        QApplication.setActiveWindow(main)
        QTest.keyClick(main, Qt.Key_A, Qt.ControlModifier | Qt.ShiftModifier)
        self.assertIsNone(main.admin_panel)
        self.assertIsNone(main.open_admin())
        error = yield self.assertFailure(self.bob.client.admin_list_users(), AdminsOnly)
        self.assertEqual(error.code, 403)
        self.assertEqual(error.message, "administrators only")

    @defer.inlineCallbacks
    def test_panel_follows_the_admin_role(self) -> Any:
        """Made an administrator, bob gets the button at once; losing the role closes
        his panel."""
        panel = yield self.open_panel()
        panel.select_user("bob")
        click(panel.admin_button)
        main = self.bob.main_window
        yield wait_for(lambda: main.admin_action.isVisible(), what="bob's menu entry")
        yield wait_for(lambda: "bob is now an administrator." in panel.banner.text(),
                       what="the panel's confirmation")
        self.assertEqual(panel.admin_button.text(), "Remove administrator")
        bob_panel = main.open_admin()
        self.assertTrue(bob_panel.isVisible())
        click(panel.admin_button)
        yield wait_for(lambda: main.admin_panel is None, what="bob's panel closed")
        self.assertFalse(bob_panel.isVisible())


class AdminActionTests(AdminTestCase):
    @defer.inlineCallbacks
    def test_users_table_roles_and_login_history(self) -> Any:
        """The table lists every account with admin/premium/locked; selecting bob shows
        his logins; Give premium changes the table and bob's own window."""
        panel = yield self.open_panel()
        self.assertEqual(self.column(panel.users_table, 0), ["root", "bob"])
        self.assertEqual(self.column(panel.users_table, 2), ["yes", "—"])
        self.assertEqual(self.column(panel.users_table, 4), ["—", "—"])
        panel.select_user("bob")
        yield wait_for(lambda: panel.history_table.rowCount() == 1, what="bob's logins")
        self.assertEqual(panel.history_table.item(0, 2).text(), "register")
        self.assertEqual(panel.history_table.item(0, 3).text(), "succeeded")
        self.assertEqual(panel.premium_button.text(), "Give premium")
        click(panel.premium_button)
        yield wait_for(lambda: self.column(panel.users_table, 3) == ["—", "yes"],
                       what="bob premium in the table")
        self.assertEqual(panel.premium_button.text(), "Remove premium")
        yield wait_for(lambda: self.bob.main_window.feed.can_post, what="bob may post")

    @defer.inlineCallbacks
    def test_lock_and_unlock(self) -> Any:
        """Locking bob logs him out with the reason in his login window; the table shows
        the lock; unlocking lets him log in again."""
        panel = yield self.open_panel()
        panel.select_user("bob")
        self.assertEqual(panel.lock_for.currentText(), "until unlocked")
        panel.lock_for.setCurrentIndex(panel.lock_for.findText("1 hour"))
        click(panel.lock_button)
        yield wait_for(lambda: "bob is locked for 1 hour" in panel.banner.text(),
                       what="the sentence")
        yield wait_for(lambda: self.column(panel.users_table, 4)[1].startswith("until "),
                       what="the lock in the table")
        yield wait_for(lambda: self.bob.main_window is None, timeout=30, what="bob out")
        self.assertRegex(self.bob.login_window.banner.text(), r"Account locked until \d\d:\d\d")
        self.assertTrue(panel.unlock_button.isEnabled())
        click(panel.unlock_button)
        yield wait_for(lambda: self.column(panel.users_table, 4)[1] == "—", what="unlocked")
        yield self.login(self.bob, "bob")
        self.assertTrue(self.bob.main_window.isVisible())

    @defer.inlineCallbacks
    def test_premium_code_is_shown_once_to_copy(self) -> Any:
        """Create premium code shows the code once in a dialog with a Copy button; the
        codes list shows only its hint; the code makes a premium account."""
        panel = yield self.open_panel()
        panel.tabs.setCurrentIndex(1)
        click(panel.create_code_button)
        yield wait_for(lambda: panel.code_dialog is not None, what="the code dialog")
        dialog = panel.code_dialog
        code = dialog.code.text()
        self.assertRegex(code, r"^[A-Z0-9]{4}(-[A-Z0-9]{4}){3}$")
        self.assertTrue(dialog.code.isReadOnly())
        click(dialog.copy_button)
        self.assertEqual(QGuiApplication.clipboard().text(), code)
        self.assertEqual(dialog.copy_button.text(), "Copied")
        yield wait_for(lambda: panel.codes_table.rowCount() == 1, what="the codes list")
        hint = panel.codes_table.item(0, 0).text()
        self.assertTrue(code.startswith(hint.rstrip("-…")))
        self.assertNotIn(code, hint)
        vip = yield self.register("vip", code=code)
        self.assertTrue(vip.client.account.premium)
        self.assertTrue(re.match(r"^[A-Z0-9]{4}", hint))

    @defer.inlineCallbacks
    def test_delete_asks_first(self) -> Any:
        """Delete account asks for confirmation; confirming deletes bob from the table."""
        panel = yield self.open_panel()
        panel.select_user("bob")
        yield wait_for(lambda: panel.history_table.rowCount() == 1, what="bob's logins")
        click(panel.delete_button)
        box = panel.confirm_box
        self.assertTrue(box.isVisible())
        self.assertIn("bob", box.text())
        delete = next(b for b in box.buttons()
                      if box.buttonRole(b) == QMessageBox.DestructiveRole)
        click(delete)
        yield wait_for(lambda: self.column(panel.users_table, 0) == ["root"],
                       what="bob gone")
        self.assertIn("was deleted", panel.banner.text())

    @defer.inlineCallbacks
    def test_own_account_cannot_be_locked_or_deleted_here(self) -> Any:
        """The panel does not offer locking or deleting one's own account."""
        panel = yield self.open_panel()
        panel.select_user("root")
        self.assertFalse(panel.lock_button.isEnabled())
        self.assertFalse(panel.delete_button.isEnabled())
        self.assertEqual(panel.admin_button.text(), "Remove administrator")
