"""Tests for messenger.client.saved: the config dir seen from the reactor thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from messenger.client.credentials import CredentialStore
from messenger.client.saved import SavedState
from tests.support.keys import rsa_key


class ManualThread:
    """A run_blocking whose jobs run only when the test says so, in order."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Any, tuple, defer.Deferred]] = []

    def __call__(self, fn: Any, *args: Any) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self.jobs.append((fn, args, d))
        return d

    def run_next(self) -> str:
        fn, args, d = self.jobs.pop(0)
        try:
            result = fn(*args)
        except Exception as error:  # as deferToThread reports it
            d.errback(error)
        else:
            d.callback(result)
        return fn.__name__


class SavedStateTests(unittest.TestCase):
    def setUp(self):
        self.thread = ManualThread()
        self.store = CredentialStore(Path(self.mktemp()) / "messenger")
        self.saved = SavedState(self.store, self.thread, rsa_key("client", 2048))

    def test_file_jobs_run_one_at_a_time_in_order(self):
        """A pin re-read queued after a pin write waits for it: the new pin is not lost."""
        prepared = self.saved.prepare(reload_pins=False)
        self.assertEqual(self.thread.run_next(), "load_sessions")
        self.successResultOf(prepared)
        self.saved.known.pin("h:1", "sha256:" + "a" * 64)
        self.saved.save_known_servers()
        again = self.saved.prepare(reload_pins=True)
        self.assertEqual(len(self.thread.jobs), 1)         # the load waits for the write
        self.assertEqual(self.thread.run_next(), "write_private_file")
        self.assertEqual(self.thread.run_next(), "load")
        self.successResultOf(again)
        self.assertEqual(self.saved.known.pinned("h:1"), "sha256:" + "a" * 64)

    def test_writes_done_waits_for_queued_writes(self):
        """writes_done fires only once every write queued before it has run."""
        self.saved.prepare(reload_pins=False)
        self.thread.run_next()
        self.saved.remember_login("h:1", "alice", "tok", None)
        done = self.saved.writes_done()
        self.assertNoResult(done)
        self.thread.run_next()
        self.successResultOf(done)
        self.assertIn("tok", self.store.sessions_path.read_text())

    def test_a_failed_write_is_logged_and_later_jobs_still_run(self):
        """One write failing does not stop the queue."""
        def broken(_: bytes) -> None:
            raise OSError("disk full")
        self.patch(self.store, "write_sessions", broken)
        self.saved.prepare(reload_pins=False)
        self.thread.run_next()
        self.saved.remember_login("h:1", "alice", "tok", None)
        self.saved.save_known_servers()
        self.assertEqual(self.thread.run_next(), "broken")
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertEqual(self.thread.run_next(), "write_private_file")

    def test_key_is_loaded_once(self):
        """Without a key given, prepare makes or loads it once, then reuses it."""
        saved = SavedState(self.store, self.thread)
        first = saved.prepare(reload_pins=False)
        self.assertEqual(self.thread.run_next(), "load_or_create_client_key")
        self.thread.run_next()
        self.successResultOf(first)
        self.assertIsNotNone(saved.client_key)
        second = saved.prepare(reload_pins=False)
        self.successResultOf(second)
        self.assertEqual(self.thread.jobs, [])
