"""The login window against a real server: registering, logging in, and every refusal
shown as a sentence a person can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PyQt5.QtTest import QTest
from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol

from messenger.admin.certs import generate_self_signed
from messenger.client.ui.settings import load_settings
from messenger.server.config import TlsConfig
from messenger.wire import keys
from tests.client.ui.helpers import PASSWORD, DesktopTestCase, click, type_into, wait_for
from tests.support.keys import rsa_key
from tests.support.twistd_server import free_port


class RegisterAndLoginTests(DesktopTestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield self.start_server()

    @defer.inlineCallbacks
    def test_register_then_log_out_and_log_in(self) -> Any:
        """Registering through the Register tab opens the main window as that user;
        after logging out, the Log in tab logs in again on the same client."""
        desktop = yield self.register("alice")
        main = desktop.main_window
        self.assertTrue(main.isVisible())
        self.assertFalse(desktop.login_window.isVisible())
        self.assertEqual(main.windowTitle(), "Messenger — alice")
        yield wait_for(lambda: main.state_label.text() == "Online", what="Online")
        address = f"127.0.0.1:{self.server.tcp_port}"
        self.assertTrue(any(f"first connection to {address}" in text
                            for text in main.notices.texts()))
        client = desktop.client
        yield desktop.logout()
        self.assertIsNone(desktop.main_window)
        self.assertTrue(desktop.login_window.isVisible())
        self.assertIn("logged out", desktop.login_window.banner.text())
        yield self.login(desktop, "alice")
        self.assertEqual(desktop.client.account.account_name, "alice")
        self.assertTrue(desktop.main_window.isVisible())
        self.assertIsNot(desktop.main_window, main)
        self.assertFalse(main.isVisible())
        self.assertIs(desktop.client, client)      # same server: same client (and outbox)

    @defer.inlineCallbacks
    def test_wrong_password(self) -> Any:
        """A wrong password is said in words, and the form is usable again."""
        yield self.register("alice")
        other = yield self.started(self.make_desktop())
        text = yield self.login(other, "alice", "not my password", expect_error=True)
        self.assertIn("Wrong password", text)
        self.assertTrue(other.login_window.login_button.isEnabled())
        self.assertFalse(other.login_window.busy)
        self.assertEqual(other.login_window.password.text(), "")

    @defer.inlineCallbacks
    def test_already_connected(self) -> Any:
        """Logging in to an account that is connected elsewhere says so."""
        yield self.register("alice")
        other = yield self.started(self.make_desktop())
        text = yield self.login(other, "alice", expect_error=True)
        self.assertIn("This account is already connected", text)

    @defer.inlineCallbacks
    def test_locked_after_failed_logins(self) -> Any:
        """After repeated wrong passwords the account is locked, and the window says
        until when."""
        first = yield self.register("alice")
        yield first.logout()
        other = yield self.started(self.make_desktop())
        for _ in range(5):
            yield self.login(other, "alice", "wrong password", expect_error=True)
            other.login_window.banner.clear_message()
        text = yield self.login(other, "alice", expect_error=True)
        self.assertRegex(text, r"Account locked until \d\d:\d\d")

    @defer.inlineCallbacks
    def test_invalid_premium_code(self) -> Any:
        """Registering with a premium code the server does not know says how to go on."""
        desktop = yield self.started(self.make_desktop())
        window = desktop.login_window
        window.tabs.setCurrentIndex(1)
        type_into(window.reg_name, "vip")
        type_into(window.reg_email, "vip@example.org")
        type_into(window.reg_password, PASSWORD)
        type_into(window.reg_password2, PASSWORD)
        type_into(window.reg_code, "AAAA-BBBB-CCCC-DDDD")
        click(window.register_button)
        yield wait_for(lambda: window.banner.kind == "error", what="the refusal")
        self.assertIn("premium code is not valid", window.banner.text())
        self.assertIsNone(desktop.main_window)

    @defer.inlineCallbacks
    def test_form_checks_before_sending(self) -> Any:
        """Two different passwords are caught in the window; nothing is sent."""
        desktop = yield self.started(self.make_desktop())
        window = desktop.login_window
        window.tabs.setCurrentIndex(1)
        type_into(window.reg_name, "bob")
        type_into(window.reg_email, "bob@example.org")
        type_into(window.reg_password, PASSWORD)
        type_into(window.reg_password2, PASSWORD + "x")
        click(window.register_button)
        self.assertIn("The two passwords differ", window.banner.text())
        self.assertFalse(window.busy)
        self.assertEqual(desktop.client.state.name, "login_required")

    @defer.inlineCallbacks
    def test_starts_logged_in_with_a_saved_token(self) -> Any:
        """A desktop started on a config dir with a remembered login opens the main
        window by itself; the account name is remembered in the settings."""
        first = yield self.register("alice")
        config_dir = first.config_dir
        yield first.shutdown()
        self.assertEqual(load_settings(config_dir).last_account, "alice")
        again = self.make_desktop()
        again.config_dir = Path(config_dir)
        again.start()
        yield wait_for(lambda: again.main_window is not None, what="the main window")
        self.assertEqual(again.main_window.me, "alice")
        self.assertFalse(again.login_window.isVisible())


    @defer.inlineCallbacks
    def test_saved_login_waits_for_a_server_that_is_down(self) -> Any:
        """Started with a saved login while the server is down, the login window shows
        the spinner and the reconnect countdown (Cancel stays available); when the
        server is back the main window opens by itself."""
        first = yield self.register("alice")
        config_dir = first.config_dir
        yield first.shutdown()
        yield self.stop_server()
        again = self.make_desktop(port=self._server_port)
        again.config_dir = Path(config_dir)
        again.start()
        window = again.login_window
        yield wait_for(lambda: "Reconnecting in" in window.busy_label.text(),
                       what="the countdown")
        self.assertTrue(window.busy)
        self.assertTrue(window.cancel_button.isVisible())
        self.assertIn("keeps trying", window.busy_label.text())
        yield self.restart_server()
        yield wait_for(lambda: again.main_window is not None, timeout=30,
                       what="the main window")
        self.assertEqual(again.client.account.account_name, "alice")


class ConnectionErrorTests(DesktopTestCase):
    @defer.inlineCallbacks
    def test_wrong_secret_shows_the_hmac_error(self) -> Any:
        """A wrong shared secret: the window shows the server's "hmac error" and what to
        do about it."""
        yield self.start_server()
        desktop = yield self.started(self.make_desktop(secret=b"not the secret"))
        text = yield self.login(desktop, "alice", expect_error=True)
        self.assertIn("Server rejected the connection: hmac error", text)
        self.assertIn("secret file", text)
        self.assertTrue(desktop.login_window.isVisible())

    @defer.inlineCallbacks
    def test_server_down(self) -> Any:
        """Nothing listening at the address: one sentence saying so and what to check."""
        desktop = yield self.started(self.make_desktop(port=free_port()))
        text = yield self.login(desktop, "alice", expect_error=True)
        self.assertIn("Cannot reach the server at 127.0.0.1:", text)
        self.assertIn("Server settings", text)
        self.assertNotIn("Traceback", text)

    @defer.inlineCallbacks
    def test_wrong_address(self) -> Any:
        """An address that cannot be used is explained, not a crash."""
        desktop = yield self.started(self.make_desktop(port=1, server="127.0.0.1:99999"))
        text = yield self.login(desktop, "alice", expect_error=True)
        self.assertIn("server address cannot be used", text)

    @defer.inlineCallbacks
    def test_missing_secret_file(self) -> Any:
        """No secret file at the chosen path: the window says which file and where to
        choose another."""
        yield self.start_server()
        desktop = self.make_desktop(secret_file="/nonexistent/secret")
        yield desktop.start()
        yield wait_for(lambda: desktop.login_window.banner.kind == "error", what="error")
        self.assertIn("no shared-secret file at /nonexistent/secret",
                      desktop.login_window.banner.text())

    @defer.inlineCallbacks
    def test_changed_server_key_and_trusting_it(self) -> Any:
        """A server key other than the pinned one is refused with "Server key changed";
        after the user ticks "trust the new key" in the settings, the login works and
        the new key is pinned."""
        yield self.start_server()
        desktop = self.make_desktop()
        address = f"127.0.0.1:{self.server.tcp_port}"
        other = keys.fingerprint(rsa_key("someone else", 2048).public_key())
        (desktop.config_dir / "known_servers").write_text(f"{address} {other}\n")
        yield self.started(desktop)
        text = yield self.login(desktop, "alice", expect_error=True)
        self.assertTrue(text.startswith("Server key changed"), text)
        self.assertIn("Trust the server's new key", text)
        dialog = desktop.open_settings()
        self.assertTrue(dialog.trust_new_key.isVisible())
        dialog.trust_new_key.setChecked(True)
        click(dialog.save_button)
        self.assertTrue(desktop.accept_new_key)
        desktop.login_window.tabs.setCurrentIndex(1)
        yield self.register("alice", desktop=desktop)
        pinned = (desktop.config_dir / "known_servers").read_text()
        self.assertNotIn(other, pinned)
        self.assertIn(keys.fingerprint(self.server.ctx.server_key.public_key()), pinned)

    @defer.inlineCallbacks
    def test_busy_indicator_while_connecting_and_cancel(self) -> Any:
        """While a server is slow to answer the spinner turns, the inputs wait, the event
        loop runs on, and Cancel brings the form back."""
        silent = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        self.addCleanup(silent.stopListening)
        desktop = yield self.started(self.make_desktop(port=silent.getHost().port))
        window = desktop.login_window
        type_into(window.name, "alice")
        type_into(window.password, PASSWORD)
        QTest.keyClick(window.password, 0x01000004)          # Qt.Key_Return
        yield wait_for(lambda: desktop.client is not None
                       and desktop.client.state.name == "handshaking",
                       what="the connection made and the server silent")
        self.assertTrue(window.busy)
        self.assertTrue(window.spinner.isVisible())
        self.assertFalse(window.login_button.isEnabled())
        self.assertIn(window.busy_label.text(), ("Securing the connection…",
                                                 f"Connecting to 127.0.0.1:"
                                                 f"{silent.getHost().port}…"))
        ticks = []
        reactor.callLater(0.05, ticks.append, "tick")
        yield wait_for(lambda: ticks, what="a timer firing while busy")
        self.assertTrue(window.busy)
        click(window.cancel_button)
        self.assertFalse(window.busy)
        self.assertTrue(window.login_button.isEnabled())
        yield wait_for(lambda: desktop.client.state.name == "offline", what="offline")


class TlsTests(DesktopTestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        base = Path(self.mktemp())
        self.cert, key = base / "server.crt", base / "server.key"
        generate_self_signed("localhost", self.cert, key)
        self.tls_port = free_port()
        yield self.start_server(tls=TlsConfig(self.tls_port, str(self.cert), str(key)))

    @defer.inlineCallbacks
    def test_register_over_tls_with_a_pinned_certificate(self) -> Any:
        """With TLS and the server's certificate pinned in the settings, registering and
        the whole session run inside TLS."""
        desktop = self.make_desktop(server=f"localhost:{self.tls_port}", tls=True,
                                    pin_cert=str(self.cert))
        yield self.register("alice", desktop=desktop)
        self.assertEqual(desktop.client.address, f"localhost:{self.tls_port}")
        self.assertEqual(desktop.main_window.state_label.text(), "Online")

    @defer.inlineCallbacks
    def test_wrong_certificate_is_explained(self) -> Any:
        """Another certificate than the pinned one: the window says the secure
        connection was refused and where to fix the TLS options."""
        other = Path(self.mktemp())
        generate_self_signed("localhost", other / "o.crt", other / "o.key")
        desktop = yield self.started(self.make_desktop(
            server=f"localhost:{self.tls_port}", tls=True, pin_cert=str(other / "o.crt")))
        text = yield self.login(desktop, "alice", expect_error=True)
        self.assertTrue(text.startswith("Secure connection refused:"), text)
        self.assertIn("pinned certificate", text)
        self.assertIn("TLS options in Server settings", text)


class SettingsTests(DesktopTestCase):
    @defer.inlineCallbacks
    def test_settings_dialog_is_remembered(self) -> Any:
        """Settings saved in the dialog are written to desktop.json (0600) and used for
        the next connection."""
        desktop = self.make_desktop(port=7777)
        yield self.started(desktop)
        dialog = desktop.open_settings()
        dialog.server.setText("chat.example.org:8000")
        dialog.tls.setChecked(True)
        click(dialog.save_button)
        yield wait_for(lambda: load_settings(desktop.config_dir).server ==
                       "chat.example.org:8000", what="the settings file")
        saved = load_settings(desktop.config_dir)
        self.assertTrue(saved.tls)
        self.assertEqual(saved.secret_file, desktop.settings.secret_file)
        mode = (desktop.config_dir / "desktop.json").stat().st_mode & 0o777
        self.assertEqual(mode, 0o600)
        self.assertIn("chat.example.org:8000", desktop.login_window.server_label.text())

    @defer.inlineCallbacks
    def test_bad_address_in_the_dialog(self) -> Any:
        """An address that cannot be parsed is refused in the dialog with a hint."""
        desktop = yield self.started(self.make_desktop(port=7777))
        dialog = desktop.open_settings()
        dialog.server.setText("chat.example.org:notaport")
        click(dialog.save_button)
        self.assertIn("host:port", dialog.banner.text())
        self.assertEqual(desktop.settings.server, "127.0.0.1:7777")
        dialog.close()
