"""Quota, expiry and deletion of files over a real server and real files: the quota is
checked before any byte is stored and counts unfinished uploads; unfinished uploads expire;
files no message refers to are deleted after their grace period, blobs once no file refers
to them (messenger.server.files.service, messenger.store.files)."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from messenger.server.config import FilesConfig
from tests.server import filehelp
from tests.server.people import count, rows, server_with
from tests.support.services import OnPostgres

DAY = 24 * 3600.0


class QuotaTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_quota_counts_files_and_unfinished_uploads(self):
        """With a 1 MB quota: a 600 kB file fits; a second 600 kB upload is refused
        before any byte (403 with the figures, no row, no file); after the first upload
        is cancelled it fits."""
        server, (alice,) = yield server_with(self, "alice", files=FilesConfig(quota=1_000_000))
        first, second = filehelp.content(600_000), filehelp.content(600_000)
        started = yield filehelp.start(alice, first)
        self.assertEqual(started["response"], 201)
        refused = yield filehelp.start(alice, second)
        self.assertEqual((refused["response"], refused["quota"], refused["used"]),
                         (403, 1_000_000, 600_000))
        self.assertIn("not enough storage", refused["error"])
        uploads = yield count(server, "uploads")
        self.assertEqual((uploads, len(filehelp.partial_files(server))), (1, 1))
        yield alice.request("file_cancel", upload_id=started["upload_id"])
        yield filehelp.upload(self, alice, second)
        refused = yield filehelp.start(alice, first)
        self.assertEqual((refused["response"], refused["used"]), (403, 600_000))

    @defer.inlineCallbacks
    def test_same_content_counts_once(self):
        """Uploading content the user already holds costs no more quota."""
        server, (alice,) = yield server_with(self, "alice", files=FilesConfig(quota=1_000_000))
        data = filehelp.content(700_000)
        yield filehelp.upload(self, alice, data)
        again = yield filehelp.start(alice, data, name="copy.bin")
        self.assertEqual(again["response"], 201)
        done = yield alice.request("file_finish", upload_id=again["upload_id"])
        self.assertEqual(done["response"], 201)

    @defer.inlineCallbacks
    def test_quotas_are_per_user(self):
        """One user's files do not count against another's quota."""
        server, (alice, bob) = yield server_with(self, "alice", "bob",
                                                 files=FilesConfig(quota=1_000_000))
        yield filehelp.upload(self, alice, filehelp.content(900_000))
        reply = yield filehelp.start(bob, filehelp.content(900_000))
        self.assertEqual(reply["response"], 201)


class ExpiryTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_unfinished_upload_expires(self):
        """An upload left unfinished is deleted by the housekeeping once it is older than
        the expiry (24 h by default): its row, its partial file, its quota; chunks for it
        are refused afterwards."""
        server, (alice,) = yield server_with(self, "alice", files=FilesConfig(quota=1_000_000))
        data = filehelp.content(800_000)
        reply = yield filehelp.start(alice, data)
        filehelp.send_chunks(alice, reply["upload_id"], data, end=300_000)
        yield alice.request("quit")
        files = server.ctx.files
        now = server.ctx.clock.seconds()
        yield files.housekeeping(now + DAY - 60)
        uploads = yield count(server, "uploads")
        self.assertEqual((uploads, len(filehelp.partial_files(server))), (1, 1))
        yield files.housekeeping(now + DAY + 60)
        uploads = yield count(server, "uploads")
        self.assertEqual((uploads, filehelp.partial_files(server)), (0, []))
        self.assertEqual(files.uploads, {})
        from tests.server.people import login
        alice = yield login(self, server, "alice")
        reply = yield filehelp.start(alice, filehelp.content(900_000))
        self.assertEqual(reply["response"], 201)

    @defer.inlineCallbacks
    def test_upload_being_received_does_not_expire(self):
        """An upload whose connection is still feeding it is kept, whatever its age."""
        server, (alice,) = yield server_with(self, "alice")
        data = filehelp.content(200_000)
        reply = yield filehelp.start(alice, data)
        filehelp.send_chunks(alice, reply["upload_id"], data, end=100_000)
        now = server.ctx.clock.seconds()
        yield server.ctx.files.housekeeping(now + 3 * DAY)
        filehelp.send_chunks(alice, reply["upload_id"], data, 100_000)
        done = yield alice.request("file_finish", upload_id=reply["upload_id"])
        self.assertEqual(done["response"], 201)


class DeletionTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_unposted_file_deleted_after_grace(self):
        """A finished file no message refers to is deleted after its grace period (24 h),
        with its blob; a posted one stays."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        kept, dropped = filehelp.content(1000), filehelp.content(2000)
        posted = yield filehelp.upload(self, alice, kept)
        yield filehelp.upload(self, alice, dropped)
        yield alice.request("msg", to="bob", message="k",
                            attachment={"file_id": posted["file_id"]})
        now = server.ctx.clock.seconds()
        yield server.ctx.files.housekeeping(now + DAY - 60)
        self.assertEqual(len(filehelp.blob_files(server)), 2)
        yield server.ctx.files.housekeeping(now + DAY + 60)
        self.assertEqual([p.name for p in filehelp.blob_files(server)], [filehelp.sha(kept)])
        left = yield rows(server, "SELECT id FROM files")
        self.assertEqual(left, [(posted["file_id"],)])

    @defer.inlineCallbacks
    def test_blob_deleted_when_nothing_refers_to_it(self):
        """Two files of the same content share a blob: it goes when the last message
        referring to either is gone (here: both senders' accounts deleted)."""
        server, (root, alice, bob, carol) = yield server_with(self, "root", "alice", "bob",
                                                              "carol")
        data = filehelp.content(5000)
        for sender in (alice, bob):
            file = yield filehelp.upload(self, sender, data)
            reply = yield sender.request("msg", to="carol", message="f",
                                         attachment={"file_id": file["file_id"]})
            self.assertEqual(reply["response"], 200)
        later = server.ctx.clock.seconds() + 2 * DAY
        reply = yield root.request("admin_delete_user", user_id="alice")
        self.assertEqual(reply["response"], 200)
        yield server.ctx.files.housekeeping(later)
        self.assertEqual(len(filehelp.blob_files(server)), 1)
        files = yield count(server, "files")
        self.assertEqual(files, 1)
        yield root.request("admin_delete_user", user_id="bob")
        yield server.ctx.files.housekeeping(later)
        self.assertEqual(filehelp.blob_files(server), [])
        for table in ("files", "blobs"):
            left = yield count(server, table)
            self.assertEqual(left, 0, table)

    @defer.inlineCallbacks
    def test_retention_purge_frees_files(self):
        """Messages deleted by --retention-days free the files they carried."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        file = yield filehelp.upload(self, alice, filehelp.content(3000))
        yield alice.request("msg", to="bob", message="old",
                            attachment={"file_id": file["file_id"]})
        from messenger.store import messages
        yield server.db.write(messages.purge_older_than_txn,
                              server.ctx.clock.seconds() + 10, 100)
        yield server.ctx.files.housekeeping(server.ctx.clock.seconds() + 2 * DAY)
        self.assertEqual(filehelp.blob_files(server), [])

    @defer.inlineCallbacks
    def test_crash_leftovers_swept(self):
        """At start, partial files of uploads that are gone and blob files without a row
        (left by a crash at the wrong moment) are removed once they are old."""
        server, (alice,) = yield server_with(self, "alice")
        root = server.config.files_path
        stray_partial = root / "partial" / "987654"
        stray_blob = root / "blobs" / "ee" / ("ee" * 32)
        stray_blob.parent.mkdir()
        for path in (stray_partial, stray_blob):
            path.write_bytes(b"left over")
        data = filehelp.content(100)
        reply = yield filehelp.start(alice, data)
        yield server.ctx.files.sweep(server.ctx.clock.seconds() + 30)
        self.assertTrue(stray_partial.exists() and stray_blob.exists())
        yield server.ctx.files.sweep(server.ctx.clock.seconds() + 2 * 3600)
        self.assertFalse(stray_partial.exists() or stray_blob.exists())
        self.assertEqual([p.name for p in filehelp.partial_files(server)],
                         [str(reply["upload_id"])])


class QuotaTestsOnPostgres(OnPostgres, QuotaTests):
    pass


class ExpiryTestsOnPostgres(OnPostgres, ExpiryTests):
    pass


class DeletionTestsOnPostgres(OnPostgres, DeletionTests):
    pass
