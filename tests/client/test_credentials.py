"""Tests for messenger.client.credentials: the config dir, the key, tokens and cursors."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

from messenger.client.credentials import (
    CredentialStore,
    Sessions,
    default_config_dir,
    render_sessions,
    write_private_file,
)


def logged(testcase: unittest.TestCase) -> list[str]:
    """The text of every log event from now until the test ends."""
    texts: list[str] = []

    def observe(event: dict) -> None:
        texts.append(formatEvent(event))
    globalLogPublisher.addObserver(observe)
    testcase.addCleanup(globalLogPublisher.removeObserver, observe)
    return texts


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class ConfigDirTests(unittest.TestCase):
    def test_xdg_config_home_wins(self):
        """$XDG_CONFIG_HOME/messenger when it is set and absolute."""
        self.assertEqual(default_config_dir({"XDG_CONFIG_HOME": "/x/cfg", "HOME": "/h"}),
                         Path("/x/cfg/messenger"))

    def test_home_dot_config_otherwise(self):
        """~/.config/messenger when XDG_CONFIG_HOME is unset or relative (XDG spec)."""
        self.assertEqual(default_config_dir({"HOME": "/h"}), Path("/h/.config/messenger"))
        self.assertEqual(default_config_dir({"XDG_CONFIG_HOME": "rel", "HOME": "/h"}),
                         Path("/h/.config/messenger"))


class ClientKeyTests(unittest.TestCase):
    def setUp(self):
        self.store = CredentialStore(Path(self.mktemp()) / "messenger", key_bits=2048)

    def test_key_is_made_once_with_mode_0600(self):
        """The first call makes and saves the key (0600, dir 0700); later calls load it."""
        key, created = self.store.load_or_create_client_key()
        self.assertTrue(created)
        self.assertEqual(mode(self.store.client_key_path), 0o600)
        self.assertEqual(mode(self.store.config_dir), 0o700)
        again, created_again = self.store.load_or_create_client_key()
        self.assertFalse(created_again)
        self.assertEqual(again.private_numbers(), key.private_numbers())

    def test_loose_permissions_are_tightened(self):
        """A key file or config dir readable by others is set back to 0600 / 0700."""
        self.store.load_or_create_client_key()
        self.store.client_key_path.chmod(0o644)
        self.store.config_dir.chmod(0o755)
        log = logged(self)
        self.store.load_or_create_client_key()
        self.assertEqual(mode(self.store.client_key_path), 0o600)
        self.assertEqual(mode(self.store.config_dir), 0o700)
        self.assertEqual(sum("readable by other users" in text for text in log), 2)


class SessionsTests(unittest.TestCase):
    def setUp(self):
        self.store = CredentialStore(Path(self.mktemp()) / "messenger")

    def test_token_round_trip_with_mode_0600(self):
        """A remembered login survives save and load, in a 0600 file."""
        sessions = Sessions()
        sessions.remember_login("h:1", "Alice", "tok-123", 99.5)
        self.store.save_sessions(sessions)
        self.assertEqual(mode(self.store.sessions_path), 0o600)
        loaded = self.store.load_sessions()
        current = loaded.current("h:1")
        self.assertEqual((current.account_name, current.token, current.token_expires),
                         ("Alice", "tok-123", 99.5))
        self.assertEqual(loaded.default_server, "h:1")

    def test_file_holds_no_password(self):
        """The sessions file has tokens and cursors, and no password field at all."""
        sessions = Sessions()
        sessions.remember_login("h:1", "alice", "tok", None)
        data = json.loads(render_sessions(sessions))
        self.assertNotIn("password", json.dumps(data))

    def test_forget_token_keeps_the_cursor(self):
        """Logging out deletes the token and the 'current' mark, not the sync cursor."""
        sessions = Sessions()
        sessions.remember_login("h:1", "alice", "tok", None)
        sessions.set_cursor("h:1", "alice", 12)
        self.assertTrue(sessions.forget_token("h:1", "ALICE"))
        self.assertIsNone(sessions.current("h:1"))
        self.assertEqual(sessions.cursor("h:1", "alice"), 12)
        self.assertFalse(sessions.forget_token("h:1", "alice"))

    def test_cursor_only_moves_forward(self):
        """A lower message id never moves the saved cursor back."""
        sessions = Sessions()
        sessions.set_cursor("h:1", "bob", 10)
        sessions.set_cursor("h:1", "bob", 4)
        self.assertEqual(sessions.cursor("h:1", "bob"), 10)
        self.assertEqual(sessions.cursor("h:1", "nobody"), 0)

    def test_tokens_are_per_server_and_account(self):
        """Each server and account has its own token; the last login is current."""
        sessions = Sessions()
        sessions.remember_login("h:1", "alice", "t1", None)
        sessions.remember_login("h:1", "bob", "t2", None)
        sessions.remember_login("h:2", "alice", "t3", None)
        self.assertEqual(sessions.current("h:1").token, "t2")
        self.assertEqual(sessions.account("h:1", "alice").token, "t1")
        self.assertEqual(sessions.current("h:2").token, "t3")

    def test_missing_file_is_empty(self):
        """No file yet: no saved logins."""
        self.assertEqual(self.store.load_sessions().servers, {})

    def test_damaged_file_is_set_aside(self):
        """A damaged file is moved aside (not lost) and the client starts without logins."""
        self.store.ensure_dir()
        self.store.sessions_path.write_text("{not json")
        log = logged(self)
        self.assertEqual(self.store.load_sessions().servers, {})
        self.assertTrue(any("damaged" in text for text in log))
        self.assertTrue(self.store.sessions_path.with_name("sessions.json.damaged").exists())
        self.assertFalse(self.store.sessions_path.exists())

    def test_unknown_version_is_refused(self):
        """A sessions file of another format version is not misread."""
        self.assertRaises(ValueError, Sessions.from_json, {"version": 99})


class WritePrivateFileTests(unittest.TestCase):
    def test_replaces_atomically_with_mode_0600(self):
        """The file is replaced whole, readable by its owner only, no temp file left."""
        path = Path(self.mktemp()) / "dir" / "f"
        write_private_file(path, b"one")
        path.chmod(0o644)
        write_private_file(path, b"two")
        self.assertEqual((path.read_bytes(), mode(path)), (b"two", 0o600))
        self.assertEqual(sorted(p.name for p in path.parent.iterdir()), ["f"])
