"""Files over real sockets against a real server and real files on disk: upload, finish,
attachments in messages, download by the participants of a conversation, refusal for
everyone else, dedupe (messenger.server.files, messenger.server.handlers.files and
.attachments). Every class runs again on PostgreSQL (``...OnPostgres``)."""

from __future__ import annotations

import base64

from twisted.internet import defer
from twisted.trial import unittest

from messenger.server.files import frames
from messenger.wire import binary
from tests.server import filehelp
from tests.server.people import barrier, count, login, server_with
from tests.support.services import OnPostgres

THUMB = base64.b64encode(b"\x89PNG not really a png").decode()


class UploadTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_upload_and_download(self):
        """An uploaded file is stored under its SHA-256 (no client name on disk) and reads
        back byte for byte; the partial file is gone and the upload row with it."""
        server, (alice,) = yield server_with(self, "alice")
        data = filehelp.content(300_000)
        file = yield filehelp.upload(self, alice, data, name="photo.jpg", mime="Image/JPEG")
        self.assertEqual((file["size"], file["sha256"], file["name"], file["mime"]),
                         (len(data), filehelp.sha(data), "photo.jpg", "image/jpeg"))
        reply = yield alice.request("file_get", file_id=file["file_id"])
        self.assertEqual((reply["response"], reply["file"]), (200, file))
        got = yield filehelp.download(alice, file["file_id"], len(data))
        self.assertEqual(got, data)
        self.assertEqual([p.name for p in filehelp.blob_files(server)], [filehelp.sha(data)])
        self.assertEqual(filehelp.partial_files(server), [])
        uploads = yield count(server, "uploads")
        self.assertEqual(uploads, 0)

    @defer.inlineCallbacks
    def test_progress_pushes_and_reply_codes(self):
        """A new upload is 201 with offset 0; the server confirms what it wrote with
        file_progress pushes, the last one at the full size; finishing is 201."""
        server, (alice,) = yield server_with(self, "alice")
        data = filehelp.content(1_500_000)
        reply = yield filehelp.start(alice, data)
        self.assertEqual((reply["response"], reply["offset"], reply["size"]),
                         (201, 0, len(data)))
        filehelp.send_chunks(alice, reply["upload_id"], data)
        offsets = []
        while not offsets or offsets[-1] < len(data):
            push = yield alice.wait_push("file_progress")
            self.assertEqual(push["upload_id"], reply["upload_id"])
            offsets.append(push["offset"])
        self.assertEqual(offsets, sorted(offsets))
        self.assertGreaterEqual(len(offsets), 2)
        done = yield alice.request("file_finish", upload_id=reply["upload_id"])
        self.assertEqual(done["response"], 201)

    @defer.inlineCallbacks
    def test_finish_again_gives_the_same_file(self):
        """A finish sent again (say after a reconnect) is 200 with the same file."""
        server, (alice,) = yield server_with(self, "alice")
        data = filehelp.content(1000)
        reply = yield filehelp.start(alice, data)
        filehelp.send_chunks(alice, reply["upload_id"], data)
        first = yield alice.request("file_finish", upload_id=reply["upload_id"])
        again = yield alice.request("file_finish", upload_id=reply["upload_id"])
        self.assertEqual((first["response"], again["response"]), (201, 200))
        self.assertEqual(again["file"], first["file"])
        files = yield count(server, "files")
        self.assertEqual(files, 1)

    @defer.inlineCallbacks
    def test_empty_file(self):
        """A file of no bytes needs no data frames: start, then finish."""
        server, (alice,) = yield server_with(self, "alice")
        reply = yield filehelp.start(alice, b"", name="empty.txt", mime="text/plain")
        self.assertEqual(reply["offset"], 0)
        done = yield alice.request("file_finish", upload_id=reply["upload_id"])
        self.assertEqual((done["response"], done["file"]["size"]), (201, 0))
        self.assertEqual([p.name for p in filehelp.blob_files(server)], [filehelp.sha(b"")])

    @defer.inlineCallbacks
    def test_cancel(self):
        """A cancelled upload leaves no row, no partial file, and its chunks are refused."""
        server, (alice,) = yield server_with(self, "alice")
        data = filehelp.content(200_000)
        reply = yield filehelp.start(alice, data)
        filehelp.send_chunks(alice, reply["upload_id"], data, end=100_000)
        done = yield alice.request("file_cancel", upload_id=reply["upload_id"])
        self.assertEqual(done["response"], 200)
        self.assertEqual(filehelp.partial_files(server), [])
        uploads = yield count(server, "uploads")
        self.assertEqual(uploads, 0)
        filehelp.send_chunks(alice, reply["upload_id"], data, 100_000)
        error = yield alice.wait_push("file_error")
        self.assertEqual((error["upload_id"], error["response"]), (reply["upload_id"], 404))
        again = yield alice.request("file_cancel", upload_id=reply["upload_id"])
        self.assertEqual(again["response"], 404)


class DedupeTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_same_content_stored_once(self):
        """Two users uploading the same bytes get two files over one blob on disk."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        data = filehelp.content(150_000)
        first = yield filehelp.upload(self, alice, data, name="a.bin")
        second = yield filehelp.upload(self, bob, data, name="b.bin")
        self.assertNotEqual(first["file_id"], second["file_id"])
        self.assertEqual([p.name for p in filehelp.blob_files(server)], [filehelp.sha(data)])
        blobs = yield count(server, "blobs")
        self.assertEqual(blobs, 1)
        reply = yield bob.request("file_get", file_id=second["file_id"])
        got = yield filehelp.download(bob, second["file_id"], len(data))
        self.assertEqual((reply["file"]["name"], got), ("b.bin", data))

    @defer.inlineCallbacks
    def test_own_content_needs_no_bytes(self):
        """A user who already holds a file of this content starts an upload at its end:
        no byte crosses the wire again, and the new file reads back whole."""
        server, (alice,) = yield server_with(self, "alice")
        data = filehelp.content(120_000)
        yield filehelp.upload(self, alice, data, name="first.bin")
        reply = yield filehelp.start(alice, data, name="again.bin")
        self.assertEqual((reply["response"], reply["offset"]), (201, len(data)))
        done = yield alice.request("file_finish", upload_id=reply["upload_id"])
        self.assertEqual((done["response"], done["file"]["name"]), (201, "again.bin"))
        yield alice.request("file_get", file_id=done["file"]["file_id"])
        got = yield filehelp.download(alice, done["file"]["file_id"], len(data))
        self.assertEqual(got, data)
        self.assertEqual(len(filehelp.blob_files(server)), 1)

    @defer.inlineCallbacks
    def test_someone_elses_content_needs_every_byte(self):
        """Knowing a hash proves nothing: a user who does not hold the content must send
        all of it, and a wrong copy is refused even though the blob exists."""
        server, (alice, mallory) = yield server_with(self, "alice", "mallory")
        data = filehelp.content(100_000)
        yield filehelp.upload(self, alice, data)
        reply = yield filehelp.start(mallory, data)
        self.assertEqual(reply["offset"], 0)
        filehelp.send_chunks(mallory, reply["upload_id"], b"x" * len(data))
        done = yield mallory.request("file_finish", upload_id=reply["upload_id"])
        self.assertEqual(done["response"], 400)
        self.assertIn("SHA-256", done["error"])


class AttachmentTests(unittest.TestCase):

    @defer.inlineCallbacks
    def send_file(self, server, sender, to, data, **attachment):
        file = yield filehelp.upload(self, sender, data, name="holiday.png",
                                     mime="image/png")
        reply = yield sender.request("msg", to=to, message="look",
                                     attachment={"file_id": file["file_id"], **attachment})
        self.assertEqual(reply["response"], 200, reply)
        return file, reply

    @defer.inlineCallbacks
    def test_recipient_gets_the_attachment_and_downloads(self):
        """A message with an image: the recipient's push carries the attachment as the
        server recorded it, and the recipient may download the file."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        data = filehelp.content(90_000)
        file, reply = yield self.send_file(server, alice, "bob", data, width=640,
                                           height=480, thumbnail=THUMB)
        push = yield bob.wait_push("msg")
        self.assertEqual(push["msg_id"], reply["msg_id"])
        self.assertEqual(push["attachment"], {
            "file_id": file["file_id"], "name": "holiday.png", "size": len(data),
            "mime": "image/png", "sha256": filehelp.sha(data), "width": 640,
            "height": 480, "thumbnail": THUMB})
        self.assertEqual(push["message"], "look")
        got_reply = yield bob.request("file_get", file_id=file["file_id"])
        self.assertEqual(got_reply["response"], 200)
        got = yield filehelp.download(bob, file["file_id"], len(data), chunk=40_000)
        self.assertEqual(got, data)

    @defer.inlineCallbacks
    def test_sync_and_history_carry_the_attachment(self):
        """The attachment is stored with the message: sync and history show it."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        file, reply = yield self.send_file(server, alice, "bob", filehelp.content(1000),
                                           name="renamed.png")
        synced = yield bob.request("sync", since=0)
        (message,) = synced["alert"]
        self.assertEqual((message["attachment"]["file_id"], message["attachment"]["name"]),
                         (file["file_id"], "renamed.png"))
        history = yield alice.request("history", **{"with": "bob"})
        self.assertEqual(history["alert"][0]["attachment"], message["attachment"])
        plain = yield alice.request("msg", to="bob", message="no file")
        self.assertEqual(plain["response"], 200)
        history = yield bob.request("history", **{"with": "alice"})
        self.assertNotIn("attachment", history["alert"][1])

    @defer.inlineCallbacks
    def test_caption_may_be_empty(self):
        """With an attachment the text may be empty or absent; without one it may not."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        file = yield filehelp.upload(self, alice, filehelp.content(10))
        for fields in ({"message": ""}, {}):
            reply = yield alice.request("msg", to="bob", attachment={
                "file_id": file["file_id"]}, **fields)
            self.assertEqual(reply["response"], 200, fields)
            push = yield bob.wait_push("msg")
            self.assertEqual(push["message"], "")
        reply = yield alice.request("msg", to="bob", message="")
        self.assertEqual(reply["response"], 400)

    @defer.inlineCallbacks
    def test_resend_is_stored_once(self):
        """A message with an attachment resent with the same id is acknowledged with the
        first copy and not pushed again."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        file = yield filehelp.upload(self, alice, filehelp.content(10))
        request_id = "ab" * 16
        first = yield alice.request("msg", id=request_id, to="bob", message="once",
                                    attachment={"file_id": file["file_id"]})
        yield bob.wait_push("msg")
        yield alice.request("quit")
        alice = yield login(self, server, "alice")
        again = yield alice.request("msg", id=request_id, to="bob", message="once",
                                    attachment={"file_id": file["file_id"]})
        self.assertEqual(again["msg_id"], first["msg_id"])
        yield barrier(bob)
        self.assertEqual([p for p in bob.pushes if p["action"] == "msg"], [])
        stored = yield count(server, "messages")
        self.assertEqual(stored, 1)

    @defer.inlineCallbacks
    def test_attach_only_what_you_may_read(self):
        """Attaching someone else's file that was never sent to you is refused (403),
        nothing is stored, and the file stays unreadable for the intended recipient;
        a file sent to you may be forwarded."""
        server, (alice, bob, carol) = yield server_with(self, "alice", "bob", "carol")
        file = yield filehelp.upload(self, alice, filehelp.content(500))
        reply = yield carol.request("msg", to="bob", message="stolen",
                                    attachment={"file_id": file["file_id"]})
        self.assertEqual(reply["response"], 403)
        missing = yield carol.request("msg", to="bob", message="nothing",
                                      attachment={"file_id": 9999})
        self.assertEqual((missing["response"], missing["error"]),
                         (403, reply["error"].replace(str(file["file_id"]), "9999")))
        stored = yield count(server, "messages")
        self.assertEqual(stored, 0)
        denied = yield bob.request("file_get", file_id=file["file_id"])
        self.assertEqual(denied["response"], 403)
        yield alice.request("msg", to="carol", message="here",
                            attachment={"file_id": file["file_id"]})
        forward = yield carol.request("msg", to="bob", message="fwd",
                                      attachment={"file_id": file["file_id"]})
        self.assertEqual(forward["response"], 200)
        allowed = yield bob.request("file_get", file_id=file["file_id"])
        self.assertEqual(allowed["response"], 200)

    @defer.inlineCallbacks
    def test_blocked_sender(self):
        """A recipient who blocked the sender refuses a message with a file as any
        message: 403, nothing stored, the file stays unreadable for the recipient."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        blocked = yield bob.request("block_user", user_id="alice")
        self.assertEqual(blocked["response"], 201)
        file = yield filehelp.upload(self, alice, filehelp.content(100))
        reply = yield alice.request("msg", to="bob", message="x",
                                    attachment={"file_id": file["file_id"]})
        self.assertEqual(reply["response"], 403)
        self.assertIn("has blocked you", reply["error"])
        stored = yield count(server, "messages")
        self.assertEqual(stored, 0)
        denied = yield bob.request("file_get", file_id=file["file_id"])
        self.assertEqual(denied["response"], 403)

    @defer.inlineCallbacks
    def test_unknown_recipient(self):
        """A message with a file to nobody is 404 and stores nothing."""
        server, (alice,) = yield server_with(self, "alice")
        file = yield filehelp.upload(self, alice, filehelp.content(10))
        reply = yield alice.request("msg", to="nobody", message="x",
                                    attachment={"file_id": file["file_id"]})
        self.assertEqual((reply["response"], reply["error"]), (404, "no user named 'nobody'"))


class AccessTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_only_participants_download(self):
        """Sender and recipient may download a posted file; a third user gets 403 with
        the same text as for a file that does not exist, and learns nothing else; her
        read frames are refused too."""
        server, (alice, bob, carol) = yield server_with(self, "alice", "bob", "carol")
        data = filehelp.content(70_000)
        file = yield filehelp.upload(self, alice, data)
        yield alice.request("msg", to="bob", message="f",
                            attachment={"file_id": file["file_id"]})
        for client in (alice, bob):
            reply = yield client.request("file_get", file_id=file["file_id"])
            self.assertEqual(reply["response"], 200)
        refused = yield carol.request("file_get", file_id=file["file_id"])
        nothing = yield carol.request("file_get", file_id=file["file_id"] + 1000)
        self.assertEqual((refused["response"], refused["error"]),
                         (403, frames.NOT_READABLE))
        self.assertEqual({k: v for k, v in refused.items() if k not in ("id", "time")},
                         {k: v for k, v in nothing.items() if k not in ("id", "time")})
        carol.send_plaintext(binary.pack_read(file["file_id"], 0, 1000))
        error = yield carol.wait_push("file_error")
        self.assertEqual((error["file_id"], error["response"], error["error"]),
                         (file["file_id"], 403, frames.NOT_READABLE))
        self.assertEqual(carol.data_frames, [])

    @defer.inlineCallbacks
    def test_unposted_file_only_for_its_owner(self):
        """Before it is posted, a file is readable by its uploader only."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        file = yield filehelp.upload(self, alice, filehelp.content(100))
        mine = yield alice.request("file_get", file_id=file["file_id"])
        theirs = yield bob.request("file_get", file_id=file["file_id"])
        self.assertEqual((mine["response"], theirs["response"]), (200, 403))

    @defer.inlineCallbacks
    def test_reads_in_any_order_and_short_last_chunk(self):
        """Reads name their offset: answered in the order asked, each at its offset; the
        last one is cut at the end of the file."""
        server, (alice,) = yield server_with(self, "alice")
        data = filehelp.content(10_000)
        file = yield filehelp.upload(self, alice, data)
        yield alice.request("file_get", file_id=file["file_id"])
        for offset in (9_000, 0, 4_000):
            alice.send_plaintext(binary.pack_read(file["file_id"], offset, 3_000))
        got = []
        for _ in range(3):
            frame = yield alice.wait_data()
            got.append((frame.offset, bytes(frame.data)))
        self.assertEqual(got, [(9_000, data[9_000:]), (0, data[:3_000]),
                               (4_000, data[4_000:7_000])])


class UploadTestsOnPostgres(OnPostgres, UploadTests):
    pass


class DedupeTestsOnPostgres(OnPostgres, DedupeTests):
    pass


class AttachmentTestsOnPostgres(OnPostgres, AttachmentTests):
    pass


class AccessTestsOnPostgres(OnPostgres, AccessTests):
    pass



class RsaOaepTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_transfer_over_rsa_oaep(self):
        """Binary frames travel in the rsa-oaep suite too (sealed and opened in the
        connection's crypto lane)."""
        from messenger.wire.suites import RSA_OAEP
        from tests.support import jimclient
        server, _ = yield server_with(self)
        alice = yield jimclient.connect(self, server.tcp_port, suites=(RSA_OAEP,))
        reply = yield alice.request("register", **jimclient.new_user("alice"))
        self.assertEqual(reply["response"], 201)
        data = filehelp.content(12_000)
        file = yield filehelp.upload(self, alice, data, chunk=5_000)
        yield alice.request("file_get", file_id=file["file_id"])
        got = yield filehelp.download(alice, file["file_id"], len(data), chunk=7_000)
        self.assertEqual(got, data)
