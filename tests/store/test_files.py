"""The file rows on a real SQLite file and a real PostgreSQL database (messenger.store.files,
.attachments): quota before anything is stored, one upload per content and user, known
content, finishing with the blob held, access by conversation (direct, through a block,
group membership windows), group messages with a file, expiry and collection.
``...OnPostgres`` runs every test again on PostgreSQL."""

from __future__ import annotations

from messenger.store import attachments, blocks, files, groupchanges, groupmsgs, messages
from messenger.store.groups import Limits
from tests.store.test_queries import StoreCase
from tests.support.services import OnPostgres

SHA_A, SHA_B = "a" * 64, "b" * 64


class FileStoreTests(StoreCase):

    def prepare(self):
        self.alice, self.bob, self.carol = (self.user(n).id for n in ("alice", "bob", "carol"))
        self.ensured: list[str] = []
        self.removed: list[str] = []

    def start(self, owner, sha=SHA_A, size=100, quota=1000, name="f.bin"):
        return self.write(files.open_upload_txn, owner, sha, size, name, "text/plain",
                          self.now, quota)

    def finish(self, upload_id, owner):
        return self.write(files.finish_txn, upload_id, owner, self.now, self.ensured.append)

    def post(self, sender, recipient, file_id, client_id="c1"):
        (result,) = self.write(attachments.insert_batch_txn, [
            (sender, recipient, client_id, "", self.now, file_id, f'{{"file_id":{file_id}}}')])
        return result

    def test_quota_is_checked_before_anything_is_stored(self):
        """An upload over the quota raises QuotaExceeded and leaves no row; unfinished
        uploads count with their declared size; one content counts once."""
        self.start(self.alice, SHA_A, 600)
        error = self.assertRaises(files.QuotaExceeded, self.start, self.alice, SHA_B, 600)
        self.assertEqual((error.used, error.quota), (600, 1000))
        self.assertEqual(self.read(files.quota_used_txn, self.alice), 600)
        self.assertEqual(self.read(files.quota_used_txn, self.bob), 0)

    def test_one_upload_per_content_and_user(self):
        """Starting the same content again resumes the same upload under the new name;
        another user gets an upload of its own."""
        first, resumed = self.start(self.alice)
        again, resumed_again = self.start(self.alice, name="renamed.bin")
        theirs, _ = self.start(self.bob)
        self.assertEqual((resumed, resumed_again, again.id, again.name),
                         (False, True, first.id, "renamed.bin"))
        self.assertNotEqual(theirs.id, first.id)

    def test_finish_records_the_file_and_holds_the_blob(self):
        """Finishing makes the blob row, calls ensure_blob with its hash (in the
        transaction), records the file and deletes the upload; a second finish finds
        nothing, and the file is found by its upload id."""
        upload, _ = self.start(self.alice)
        row = self.finish(upload.id, self.alice)
        self.assertEqual((row.sha256, row.owner_id, row.size), (SHA_A, self.alice, 100))
        self.assertEqual(self.ensured, [SHA_A])
        self.assertIsNone(self.finish(upload.id, self.alice))
        self.assertEqual(self.read(files.file_of_upload_txn, upload.id, self.alice), row)
        self.assertIsNone(self.read(files.get_upload_txn, upload.id))

    def test_known_content_needs_no_bytes(self):
        """An owner who holds a file of some content starts a known upload of it (and it
        costs no quota); another user's upload of it is not known."""
        upload, _ = self.start(self.alice, size=900)
        self.finish(upload.id, self.alice)
        mine, _ = self.start(self.alice, size=900, quota=1000)
        theirs, _ = self.start(self.bob, size=900)
        self.assertEqual((mine.known, theirs.known), (True, False))

    def test_access_by_conversation(self):
        """The owner reads its file; after it is posted to bob, bob reads it too; carol
        never does, nor does anyone read a file that does not exist."""
        upload, _ = self.start(self.alice)
        row = self.finish(upload.id, self.alice)
        readable = {user: self.read(files.readable_txn, user, row.id)
                    for user in (self.alice, self.bob, self.carol)}
        self.assertEqual([r is not None for r in readable.values()], [True, False, False])
        msg_id, _, new = self.post(self.alice, self.bob, row.id)
        self.assertTrue(new)
        self.assertEqual(self.read(files.readable_txn, self.bob, row.id), row)
        self.assertIsNone(self.read(files.readable_txn, self.carol, row.id))
        self.assertIsNone(self.read(files.readable_txn, self.alice, row.id + 99))

    def post_group(self, sender, group_id, file_id, client_id="g1", body=""):
        batch = attachments.GroupAttachments()
        (result,) = self.write(batch.insert_batch_txn, [
            (sender, group_id, client_id, body, self.now, ("bob",), file_id,
             f'{{"file_id":{file_id}}}')])
        return result

    def readers(self, file_id):
        return [self.read(files.readable_txn, user, file_id) is not None
                for user in (self.alice, self.bob, self.carol)]

    def test_a_block_shuts_the_conversations_files(self):
        """Once bob blocks alice, alice no longer reads what bob sent her, nor what she
        forwarded to him; bob still reads what alice sent (a block goes one way); after
        the unblock all is as before."""
        mine = self.finish(self.start(self.alice)[0].id, self.alice)
        his = self.finish(self.start(self.bob, SHA_B)[0].id, self.bob)
        self.post(self.alice, self.bob, mine.id, "m1")
        self.post(self.bob, self.alice, his.id, "h1")
        carols = self.finish(self.start(self.carol)[0].id, self.carol)
        self.post(self.carol, self.alice, carols.id, "c1")
        self.post(self.alice, self.bob, carols.id, "m2")
        self.write(blocks.block_txn, self.bob, self.alice, self.now)
        self.assertIsNone(self.read(files.readable_txn, self.alice, his.id))
        self.assertIsNotNone(self.read(files.readable_txn, self.alice, mine.id))  # owner
        self.assertIsNotNone(self.read(files.readable_txn, self.bob, mine.id))
        self.assertIsNone(self.read(files.readable_txn, self.bob, carols.id + 99))
        self.assertIsNotNone(self.read(files.readable_txn, self.bob, carols.id))
        self.assertIsNotNone(self.read(files.readable_txn, self.alice, carols.id))  # carol's
        self.write(blocks.unblock_txn, self.bob, self.alice)
        self.assertIsNotNone(self.read(files.readable_txn, self.alice, his.id))

    def test_group_files_follow_the_membership_windows(self):
        """A file posted in a group is read by its members; a member removed before it
        was posted never reads it, while one removed after keeps reading what it was
        sent; carol, no member, never."""
        group, _ = self.write(groupchanges.create_txn, self.alice, "alice", "Class", "",
                              False, ["bob"], self.now, Limits())
        before = self.finish(self.start(self.alice)[0].id, self.alice)
        msg_id, _, new, recipients, mentions = self.post_group(self.alice, group.id,
                                                               before.id)
        self.assertEqual((new, recipients, mentions), (True, (self.bob,), ("bob",)))
        self.write(groupchanges.remove_txn, self.alice, group.id, "bob", self.now)
        after = self.finish(self.start(self.alice, SHA_B)[0].id, self.alice)
        self.post_group(self.alice, group.id, after.id, "g2")
        self.assertEqual(self.readers(before.id), [True, True, False])
        self.assertEqual(self.readers(after.id), [True, False, False])
        (row,) = self.read(groupmsgs.history_txn, self.alice, group.id, msg_id + 1, 10)
        self.assertEqual((row[0], row[-1]), (msg_id, f'{{"file_id":{before.id}}}'))

    def test_group_attachment_refusals(self):
        """A non-member's message with a file is refused as any group message, a gone
        file alone fails with FILE_GONE; a resend answers with the first copy."""
        group, _ = self.write(groupchanges.create_txn, self.alice, "alice", "Class", "",
                              False, ["bob"], self.now, Limits())
        row = self.finish(self.start(self.carol)[0].id, self.carol)
        self.assertEqual(self.post_group(self.carol, group.id, row.id), groupmsgs.NOT_MEMBER)
        self.assertEqual(self.post_group(self.alice, group.id, row.id + 50),
                         attachments.FILE_GONE)
        mine = self.finish(self.start(self.alice, SHA_B)[0].id, self.alice)
        first = self.post_group(self.alice, group.id, mine.id, "g9")
        again = self.post_group(self.alice, group.id, mine.id, "g9")
        self.assertEqual(again, (first[0], first[1], False, (), ()))
        self.assertEqual(self.readers(row.id), [False, False, True])

    def test_attachment_insert_is_idempotent_and_checks_the_file(self):
        """A resend of a message with a file gives the first copy; a message whose file
        is gone fails alone with FILE_GONE."""
        upload, _ = self.start(self.alice)
        row = self.finish(upload.id, self.alice)
        first = self.post(self.alice, self.bob, row.id)
        again = self.post(self.alice, self.bob, row.id)
        self.assertEqual((again[0], again[2]), (first[0], False))
        self.assertEqual(self.post(self.alice, self.bob, row.id + 50, "c2"),
                         attachments.FILE_GONE)
        rows = self.read(messages.sync_txn, self.bob, 0, 10)
        self.assertEqual([(r[0], r[-1]) for r in rows], [(first[0], f'{{"file_id":{row.id}}}')])

    def test_expiry(self):
        """Uploads untouched since the cutoff are deleted (their ids returned); touched
        ones stay."""
        old, _ = self.start(self.alice, SHA_A)
        self.now += 100
        young, _ = self.start(self.alice, SHA_B)
        self.write(files.touch_uploads_txn, [old.id], self.now + 50)
        self.assertEqual(self.write(files.expire_uploads_txn, self.now + 10, 10), [young.id])
        self.assertEqual(self.read(files.upload_ids_txn), {old.id})

    def test_collection(self):
        """Unposted files past their grace go, posted ones stay; a blob goes when no file
        refers to it, and remove_blob is called for it."""
        shared = []
        for owner in (self.alice, self.bob):
            upload, _ = self.start(owner)
            shared.append(self.finish(upload.id, owner))
        lonely_upload, _ = self.start(self.alice, SHA_B)
        lonely = self.finish(lonely_upload.id, self.alice)
        self.post(self.bob, self.carol, shared[1].id)
        deleted, blobs = self.write(files.collect_txn, self.now + 1, 10, self.removed.append)
        self.assertEqual((deleted, sorted(blobs)), (2, [SHA_B]))
        self.assertEqual(self.removed, [SHA_B])
        self.assertIsNone(self.read(files.get_file_txn, lonely.id))
        self.assertIsNotNone(self.read(files.get_file_txn, shared[1].id))
        self.assertEqual(self.read(files.blob_hashes_txn), {SHA_A})


class FileStoreTestsOnPostgres(OnPostgres, FileStoreTests):
    pass
