"""Tests for messenger.server.mail.spool: the durable one-file-per-mail queue."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase, TestCase

from messenger.server.mail import spool
from messenger.server.mail.spool import (
    Spool,
    SpoolDirectory,
    SpoolEntry,
    SpoolFormatError,
    new_mail_id,
    scan,
    write_durably,
)


def make_entry(created: float = 1_800_000_000.0, **changes) -> SpoolEntry:
    values = dict(mail_id=new_mail_id(), created=created, sender="noreply@example.org",
                  to="alice@example.org", subject="Hello Ünïcode",
                  message="Subject: Hello\n\nBody\n", next_attempt=created)
    values.update(changes)
    return SpoolEntry(**values)


def sync_io(function, *args):
    return defer.maybeDeferred(function, *args)


class SpoolEntryTests(SynchronousTestCase):
    """SpoolEntry's JSON form."""

    def test_round_trip(self) -> None:
        """An entry survives to_json/from_json unchanged, attempts and errors included."""
        entry = make_entry(attempts=3, last_attempt=5.5, last_error="421 busy")
        self.assertEqual(SpoolEntry.from_json(entry.to_json()), entry)

    def test_json_is_plain_and_versioned(self) -> None:
        """The file is readable JSON with a version number, UTF-8 text kept as it is."""
        record = json.loads(make_entry().to_json())
        self.assertEqual(record["version"], 1)
        self.assertEqual(record["subject"], "Hello Ünïcode")
        self.assertEqual(record["attempts"], 0)

    def test_unknown_keys_ignored(self) -> None:
        """Keys a later version might add do not stop this one reading the entry."""
        record = json.loads(make_entry().to_json())
        record["priority"] = "high"
        entry = SpoolEntry.from_json(json.dumps(record).encode())
        self.assertEqual(entry.to, "alice@example.org")

    def test_rejects_pickle(self) -> None:
        """A pickle is not an entry (and is never unpickled)."""
        data = pickle.dumps({"mail_id": "x"})
        self.assertRaises(SpoolFormatError, SpoolEntry.from_json, data)

    def test_rejects_bad_records(self) -> None:
        """Wrong version, bad id, wrong types and missing fields are refused."""
        good = json.loads(make_entry().to_json())
        bad_changes = [
            {"version": 2}, {"mail_id": "../../etc/passwd"}, {"attempts": -1},
            {"attempts": True}, {"created": "yesterday"}, {"to": 5},
            {"last_error": 42}, {"next_attempt": None},
        ]
        for change in bad_changes:
            record = {**good, **change}
            with self.subTest(change=change):
                self.assertRaises(SpoolFormatError, SpoolEntry.from_json,
                                  json.dumps(record).encode())
        del good["message"]
        self.assertRaises(SpoolFormatError, SpoolEntry.from_json, json.dumps(good).encode())
        self.assertRaises(SpoolFormatError, SpoolEntry.from_json, b"[1, 2]")
        self.assertRaises(SpoolFormatError, SpoolEntry.from_json, b"{not json")

    def test_new_mail_id(self) -> None:
        """Mail ids are 32 lower-case hex digits and differ every time."""
        ids = {new_mail_id() for _ in range(100)}
        self.assertEqual(len(ids), 100)
        for mail_id in ids:
            self.assertRegex(mail_id, "^[0-9a-f]{32}$")


class WriteDurablyTests(SynchronousTestCase):
    """write_durably: temp file, fsync, rename, fsync directory."""

    def setUp(self) -> None:
        self.directory = Path(self.mktemp())
        self.directory.mkdir()

    def test_writes_and_fsyncs(self) -> None:
        """The data lands under the final name, file and directory are fsynced."""
        synced: list[int] = []
        real_fsync = os.fsync
        self.patch(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
        target = self.directory / "a.json"
        write_durably(target, b"{}")
        self.assertEqual(target.read_bytes(), b"{}")
        self.assertEqual(len(synced), 2)
        self.assertEqual(os.listdir(self.directory), ["a.json"])
        self.assertEqual(os.stat(target).st_mode & 0o777, 0o600)

    def test_replaces_atomically(self) -> None:
        """Writing again replaces the file whole; no temporary file stays behind."""
        target = self.directory / "a.json"
        write_durably(target, b"old")
        write_durably(target, b"new")
        self.assertEqual(target.read_bytes(), b"new")
        self.assertEqual(os.listdir(self.directory), ["a.json"])

    def test_failed_rename_leaves_no_temp(self) -> None:
        """When the rename fails, the temporary file is removed and the error raised."""
        target = self.directory / "missing-dir" / "a.json"
        self.assertRaises(OSError, write_durably, target, b"x", temp_dir=self.directory)
        self.assertEqual(os.listdir(self.directory), [])


class SpoolDirectoryTests(SynchronousTestCase):
    """SpoolDirectory: the blocking operations on the spool."""

    def setUp(self) -> None:
        self.path = Path(self.mktemp())
        self.spool = SpoolDirectory(self.path)

    def test_write_and_pending(self) -> None:
        """A written entry is listed as pending; files are 0600 in a 0700 directory."""
        entry = make_entry()
        self.spool.write(entry.mail_id, entry.to_json())
        self.assertEqual(self.spool.pending(), [entry])
        self.assertEqual(os.stat(self.spool.entry_path(entry.mail_id)).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o700)

    def test_pending_oldest_first(self) -> None:
        """Pending entries come oldest first."""
        entries = [make_entry(created=t) for t in (30.0, 10.0, 20.0)]
        for entry in entries:
            self.spool.write(entry.mail_id, entry.to_json())
        self.assertEqual([e.created for e in self.spool.pending()], [10.0, 20.0, 30.0])

    def test_remove(self) -> None:
        """remove deletes the entry; removing twice is harmless."""
        entry = make_entry()
        self.spool.write(entry.mail_id, entry.to_json())
        self.spool.remove(entry.mail_id)
        self.spool.remove(entry.mail_id)
        self.assertEqual(self.spool.pending(), [])

    def test_fail_moves(self) -> None:
        """fail moves the entry, with its error, from the spool to failed/."""
        entry = make_entry()
        self.spool.write(entry.mail_id, entry.to_json())
        entry.last_error = "550 no such user"
        entry.failed_at = 99.0
        self.spool.fail(entry.mail_id, entry.to_json())
        self.assertEqual(self.spool.pending(), [])
        self.assertEqual(self.spool.failed(), [entry])
        self.assertTrue((self.path / "failed" / f"{entry.mail_id}.json").exists())

    def test_recover_cleans_temp_files(self) -> None:
        """recover deletes temporary files left by a crash, in both directories."""
        self.spool.ensure()
        (self.path / ".tmp-abc").write_bytes(b"{")
        (self.path / "failed" / ".tmp-def").write_bytes(b"{")
        self.assertEqual(self.spool.recover(), [])
        self.assertEqual(os.listdir(self.path), ["failed"])
        self.assertEqual(os.listdir(self.path / "failed"), [])

    def test_recover_drops_half_moved(self) -> None:
        """An entry both pending and failed (crash inside fail) stays failed only."""
        entry, other = make_entry(), make_entry()
        for item in (entry, other):
            self.spool.write(item.mail_id, item.to_json())
        write_durably(self.path / "failed" / f"{entry.mail_id}.json", entry.to_json())
        self.assertEqual(self.spool.recover(), [other])
        self.assertEqual(self.spool.failed(), [entry])
        self.assertFalse(self.spool.entry_path(entry.mail_id).exists())

    def test_unreadable_listed_not_loaded(self) -> None:
        """Bad files and files whose name does not match their id are listed apart."""
        good = make_entry()
        self.spool.write(good.mail_id, good.to_json())
        self.spool.ensure()
        (self.path / "junk.json").write_bytes(b"\x00\x01")
        misnamed = make_entry()
        (self.path / f"{new_mail_id()}.json").write_bytes(misnamed.to_json())
        self.assertEqual(self.spool.pending(), [good])
        self.assertEqual(len(self.spool.unreadable()), 2)
        self.assertEqual((self.path / "junk.json").read_bytes(), b"\x00\x01")

    def test_scan_missing_directory(self) -> None:
        """Scanning a directory that does not exist finds nothing."""
        self.assertEqual(scan(self.path / "nowhere"), ([], []))


class SpoolTests(TestCase):
    """Spool: the same operations as Deferreds, run in threads, one at a time."""

    def setUp(self) -> None:
        self.path = Path(self.mktemp())

    @defer.inlineCallbacks
    def test_thread_round_trip(self):
        """Write, list, fail and list failed through the default thread runner."""
        store = Spool(self.path)
        entry = make_entry()
        yield store.write(entry)
        self.assertEqual((yield store.pending()), [entry])
        entry.last_error = "boom"
        yield store.fail(entry)
        self.assertEqual((yield store.pending()), [])
        self.assertEqual((yield store.failed()), [entry])

    @defer.inlineCallbacks
    def test_calls_run_in_order(self):
        """Calls made together run in call order: the last one sees the others' effect."""
        store = Spool(self.path)
        entries = [make_entry(created=float(n)) for n in range(20)]
        writes = [store.write(entry) for entry in entries]
        removal = store.remove(entries[0].mail_id)
        listing = store.pending()
        yield defer.gatherResults([*writes, removal])
        self.assertEqual((yield listing), entries[1:])

    @defer.inlineCallbacks
    def test_entry_serialised_at_call_time(self):
        """Changing an entry after write() does not change what is written."""
        store = Spool(self.path, run_io=sync_io)
        entry = make_entry()
        d = store.write(entry)
        entry.attempts = 7
        yield d
        (stored,) = yield store.pending()
        self.assertEqual(stored.attempts, 0)

    def test_directory_property(self) -> None:
        """Spool.path is the spool directory it was given."""
        self.assertEqual(Spool(self.path).path, self.path)
        self.assertEqual(spool.FAILED_DIR, "failed")
