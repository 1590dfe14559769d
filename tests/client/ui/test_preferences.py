"""Control and looks: blocking and unblocking from the chat menu and Settings (against a
real server, which refuses the blocked side), the dark theme, buttons that look disabled
when they are, status lines that move nothing, and the password kept when the server
was only unreachable."""

from __future__ import annotations

from typing import Any

from PyQt5.QtWidgets import QApplication, QMenu, QMessageBox, QPushButton
from twisted.internet import defer

from messenger.client.errors import BlockedByUser
from messenger.client.ui import devices, style, theme
from messenger.client.ui.chat_state import person_key
from messenger.client.ui.settings import load_settings
from tests.client.ui.helpers import PASSWORD, DesktopTestCase, chat_item, type_into, wait_for


class BlockTests(DesktopTestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield self.start_server()
        self.alice = yield self.register("alice")
        self.bob = yield self.register("bob")
        yield self.add_contact(self.bob, "alice")

    @defer.inlineCallbacks
    def test_block_from_the_chat_menu_then_unblock_in_settings(self) -> Any:
        """Alice blocks bob from his chat's menu (after a confirmation): his chat says
        so instead of a composer, his next message fails at his side with the server's
        sentence and never reaches her; Settings lists him, and Unblock lets him write
        again."""
        yield self.bob.client.send_message("alice", "hello")
        yield wait_for(lambda: chat_item(self.alice, "bob") is not None, what="bob listed")
        main = self.alice.main_window
        pane = main.open_chat("bob")
        menu = main.fill_chat_menu(person_key("bob"), QMenu(main), with_open=False)
        block = next(a for a in menu.actions() if a.text().startswith("Block bob"))
        block.trigger()
        box = main.block_box
        box.button(QMessageBox.Cancel)                       # the safe default is there
        danger = next(b for b in box.buttons() if b.text() == "Block")
        danger.click()
        yield wait_for(lambda: chat_item(self.alice, "bob").blocked, what="bob blocked")
        self.assertEqual(pane.bottom.currentIndex(), 1)
        self.assertEqual(pane.unblock_button.text(), "Unblock bob")
        self.assertEqual(pane.header.subtitle.full_text(), "blocked")
        bob_pane = self.bob.main_window.open_chat("alice")
        yield wait_for(lambda: bob_pane.loaded_once, what="bob's pane")
        type_into(bob_pane.compose, "are you there?")
        bob_pane.send()
        yield wait_for(lambda: bob_pane.model.entries()[-1].status == "failed",
                       what="refused")
        self.assertIn("has blocked you", bob_pane.view.bubbles.footer(
            bob_pane.model.entries()[-1]))
        self.assertIn("alice has blocked you", bob_pane.banner.text())
        self.assertNotIn("are you there?", [e.text for e in pane.model.entries()])
        with self.assertRaises(BlockedByUser):
            yield self.bob.client.send_message("alice", "again?")
        dialog = self.alice.open_preferences()
        dialog.tabs.setCurrentIndex(2)
        yield wait_for(lambda: dialog.blocked_list.count() == 1
                       and dialog.blocked_list.item(0).text() == "bob", what="the list")
        dialog.blocked_list.setCurrentRow(0)
        dialog.unblock_button.click()
        yield wait_for(lambda: not chat_item(self.alice, "bob").blocked, what="unblocked")
        self.assertEqual(dialog.blocked_list.item(0).text(), "Nobody is blocked.")
        self.assertEqual(pane.bottom.currentIndex(), 0)
        yield self.bob.client.send_message("alice", "thanks")
        yield wait_for(lambda: "thanks" in [e.text for e in pane.model.entries()],
                       what="bob's message arrives again")


class LooksTests(DesktopTestCase):
    @defer.inlineCallbacks
    def test_dark_theme_follows_the_setting_and_the_system(self) -> Any:
        """Choosing Dark in Settings turns every window dark at once and is saved;
        "Same as the system" follows the system's (here: announced) choice."""
        yield self.start_server()
        alice = yield self.register("alice")
        self.addCleanup(lambda: style.set_palette(QApplication.instance(), theme.LIGHT))
        dialog = alice.open_preferences()
        dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))
        dialog.theme.activated.emit(dialog.theme.currentIndex())
        self.assertIs(style.PALETTE, theme.DARK)
        self.assertIn(theme.DARK.background, QApplication.instance().styleSheet())
        self.assertEqual(alice.settings.theme, "dark")
        dialog.theme.setCurrentIndex(dialog.theme.findData("system"))
        dialog.theme.activated.emit(dialog.theme.currentIndex())
        self.assertIs(style.PALETTE, theme.LIGHT)           # this system: light
        alice.system_theme._set(True)                       # the portal says: dark
        self.assertIs(style.PALETTE, theme.DARK)
        alice.system_theme._set(False)
        self.assertIs(style.PALETTE, theme.LIGHT)

    def test_disabled_buttons_look_disabled(self) -> None:
        """Every kind of button, disabled, is drawn differently from when it is enabled
        (in both themes)."""
        app = QApplication.instance()
        self.addCleanup(lambda: style.set_palette(app, theme.LIGHT))
        for palette in (theme.LIGHT, theme.DARK):
            style.set_palette(app, palette)
            for kind in ("", "primary", "danger", "success", "flat"):
                button = QPushButton("Send")
                if kind:
                    style.set_kind(button, kind)
                button.resize(90, 34)
                enabled = button.grab().toImage()
                button.setEnabled(False)
                disabled = button.grab().toImage()
                self.assertNotEqual(enabled, disabled, (palette.dark, kind))

    @defer.inlineCallbacks
    def test_admin_status_line_moves_nothing(self) -> Any:
        """A sentence in the admin panel floats over the tabs: the users table keeps its
        place (no jump under the mouse)."""
        yield self.start_server()
        root = yield self.register("root")
        panel = root.main_window.open_admin()
        yield wait_for(lambda: panel.users_table.rowCount() == 1, what="the users")
        QApplication.processEvents()
        before = panel.users_table.mapTo(panel, panel.users_table.rect().topLeft())
        panel.banner.show_info("root is now premium.")
        QApplication.processEvents()
        self.assertTrue(panel.banner.isVisible())
        self.assertEqual(panel.users_table.mapTo(panel, panel.users_table.rect().topLeft()),
                         before)


class DeviceTests(DesktopTestCase):
    @defer.inlineCallbacks
    def test_devices_chosen_in_settings_are_used_for_calls(self) -> Any:
        """The Calls tab lists what the call engine finds; a choice is handed to the
        call controller at once and kept for the next start."""
        self.patch(devices, "list_devices",
                   lambda: devices.DeviceLists(["USB mic"], ["Headset"]))
        yield self.start_server()
        alice = yield self.register("alice")
        dialog = alice.open_preferences()
        yield dialog.devices_loaded
        self.assertEqual([dialog.input_device.itemText(i)
                          for i in range(dialog.input_device.count())],
                         ["System default", "USB mic"])
        dialog.input_device.setCurrentIndex(1)
        dialog.input_device.activated.emit(1)
        self.assertEqual((alice.calls.input_device, alice.calls.output_device),
                         ("USB mic", None))
        self.assertEqual(alice.settings.input_device, "USB mic")
        yield alice.shutdown()
        again = self.make_desktop()
        again.config_dir = alice.config_dir
        again.settings = load_settings(alice.config_dir).with_changes(
            server=again.settings.server, secret_file=again.settings.secret_file)
        yield again.start()
        yield wait_for(lambda: again.calls is not None, what="the client")
        self.assertEqual(again.calls.input_device, "USB mic")


class PasswordTests(DesktopTestCase):
    @defer.inlineCallbacks
    def test_password_kept_when_the_server_is_unreachable(self) -> Any:
        """With the server down, a login fails with "cannot reach" and the password
        stays in its field for the next try; a wrong password is cleared."""
        yield self.start_server()
        desktop = yield self.register("alice")
        yield desktop.logout()
        yield self.stop_server()
        window = desktop.login_window
        text = yield self.login(desktop, "alice", PASSWORD, expect_error=True)
        self.assertIn("reach", text.lower())
        self.assertEqual(window.password.text(), PASSWORD)
        yield self.restart_server()
        window.password.clear()
        text = yield self.login(desktop, "alice", "not the password", expect_error=True)
        self.assertIn("Wrong password", text)
        self.assertEqual(window.password.text(), "")
