"""messenger-client itself: options over saved settings, the settings file, and the real
program starting on the offscreen platform and stopping cleanly."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from messenger.client.ui import app
from messenger.client.ui.settings import (
    DesktopSettings,
    SecretFileError,
    load_settings,
    read_secret,
    render_settings,
    save_settings,
)
from tests.client.ui.helpers import wait_for

ROOT = Path(__file__).resolve().parents[3]


class OptionsTests(TestCase):
    def test_options_override_saved_settings(self) -> None:
        """Command-line options win over what was saved; the rest is kept."""
        saved = DesktopSettings(server="old:1", secret_file="/old", tls=True,
                                ca_file="/ca.pem", last_account="alice")
        args = app.build_parser().parse_args(["--server", "new.example.org:7000",
                                              "--pin-cert", "/cert.pem"])
        settings = app.settings_from(args, saved)
        self.assertEqual((settings.server, settings.secret_file, settings.tls),
                         ("new.example.org:7000", "/old", True))
        self.assertEqual((settings.pin_cert, settings.ca_file), ("/cert.pem", ""))
        self.assertEqual(settings.last_account, "alice")
        args = app.build_parser().parse_args(["--no-tls", "--secret-file", "s"])
        settings = app.settings_from(args, saved)
        self.assertFalse(settings.tls)
        self.assertEqual(settings.secret_file, str(Path("s").resolve()))

    def test_bad_server_option(self) -> None:
        """An unusable --server is a usage error (status 2) with one line on stderr,
        before any window opens."""
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        self.assertEqual(app.main(["--server", "host:notaport"]), 2)
        self.assertIn("messenger-client: error: bad server address", stderr.getvalue())


class SettingsFileTests(TestCase):
    def test_round_trip_and_damage(self) -> None:
        """Settings survive a save and load; a damaged or odd file gives defaults for
        what cannot be used."""
        config_dir = Path(self.mktemp())
        settings = DesktopSettings(server="h:1", secret_file="/s", last_account="bob")
        result = self.successResultOf(save_settings(
            config_dir, settings, lambda fn, *a: defer.maybeDeferred(fn, *a)))
        self.assertIsNone(result)
        self.assertEqual(load_settings(config_dir), settings)
        self.assertEqual((config_dir / "desktop.json").stat().st_mode & 0o777, 0o600)
        self.assertNotIn(b"password", render_settings(settings))
        (config_dir / "desktop.json").write_text('{"server": 5, "tls": true, "x": 1}')
        self.assertEqual(load_settings(config_dir), DesktopSettings(tls=True))
        (config_dir / "desktop.json").write_text("not json")
        self.assertEqual(load_settings(config_dir), DesktopSettings())

    def test_secret_file_errors(self) -> None:
        """Missing, empty and unset secret files each get a sentence; a good one is read
        and stripped."""
        base = Path(self.mktemp())
        base.mkdir()
        with self.assertRaisesRegex(SecretFileError, "No shared-secret file is chosen"):
            read_secret("")
        with self.assertRaisesRegex(SecretFileError, "There is no shared-secret file"):
            read_secret(str(base / "missing"))
        (base / "empty").write_bytes(b"\n")
        with self.assertRaisesRegex(SecretFileError, "is empty"):
            read_secret(str(base / "empty"))
        (base / "good").write_bytes(b"s3cret\n")
        self.assertEqual(read_secret(str(base / "good")), b"s3cret")


class ProgramTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_program_starts_and_stops_cleanly(self) -> Any:
        """messenger-client starts on the offscreen platform with a fresh config dir,
        runs its event loop, and exits with status 0 on SIGTERM, having saved its
        settings."""
        config_dir = Path(self.mktemp()).resolve()
        config_dir.mkdir(mode=0o700, parents=True)
        (config_dir / "secret").write_bytes(b"secret\n")
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
        process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from messenger.client.ui.app import main;"
             " sys.exit(main())", "--server", "127.0.0.1:9", "--config-dir",
             str(config_dir)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)
        self.addCleanup(lambda: process.poll() is None and process.kill())
        # The key is made by a thread the running reactor started: the loop runs.
        yield wait_for(lambda: (config_dir / "client_key.pem").exists()
                       or process.poll() is not None, timeout=30, what="the client key")
        running = process.poll() is None
        process.send_signal(signal.SIGTERM)
        yield wait_for(lambda: process.poll() is not None, timeout=20, what="the exit")
        output = process.stdout.read().decode("utf-8", "replace")
        self.assertTrue(running, output)
        self.assertEqual(process.returncode, 0, output)
        self.assertNotIn("Traceback", output)
        self.assertEqual(load_settings(config_dir).secret_file, str(config_dir / "secret"))
