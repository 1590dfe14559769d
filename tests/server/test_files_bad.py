"""Bad file input over a real server: a wrong SHA-256, a size that lies, chunks out of
order or overlapping, chunks for no upload, downloads past the end, malformed binary
frames, binary frames before login. Each gets a clear error; nothing is half-stored; the
connection stays up (messenger.server.files.frames, .uploads)."""

from __future__ import annotations

import struct

from twisted.internet import defer
from twisted.trial import unittest

from messenger.wire import binary
from tests.server import filehelp
from tests.server.people import count, server_with
from tests.support import jimclient
from tests.support.services import OnPostgres


class BadUploadTests(unittest.TestCase):

    @defer.inlineCallbacks
    def assert_nothing_stored(self, server):
        for table in ("files", "blobs"):
            stored = yield count(server, table)
            self.assertEqual(stored, 0, table)
        self.assertEqual(filehelp.blob_files(server), [])

    @defer.inlineCallbacks
    def test_wrong_sha256(self):
        """Content that does not match its declared SHA-256: 400 at finish; the upload,
        its partial file and its quota are gone, no blob is made."""
        server, (alice,) = yield server_with(self, "alice")
        data = filehelp.content(200_000)
        reply = yield filehelp.start(alice, data, sha256=filehelp.sha(b"something else"))
        filehelp.send_chunks(alice, reply["upload_id"], data)
        done = yield alice.request("file_finish", upload_id=reply["upload_id"])
        self.assertEqual(done["response"], 400)
        self.assertIn("SHA-256", done["error"])
        yield self.assert_nothing_stored(server)
        self.assertEqual(filehelp.partial_files(server), [])
        uploads = yield count(server, "uploads")
        self.assertEqual(uploads, 0)
        again = yield alice.request("file_finish", upload_id=reply["upload_id"])
        self.assertEqual(again["response"], 404)

    @defer.inlineCallbacks
    def test_more_bytes_than_declared(self):
        """A chunk that passes the declared size is refused (400, with the offset to go on
        from) and not written; the upload cannot finish with the wrong size."""
        server, (alice,) = yield server_with(self, "alice")
        data = filehelp.content(100_000)
        reply = yield filehelp.start(alice, data[:60_000], sha256=filehelp.sha(data[:60_000]))
        filehelp.send_chunks(alice, reply["upload_id"], data, chunk=50_000)
        error = yield alice.wait_push("file_error")
        self.assertEqual((error["upload_id"], error["response"], error["offset"]),
                         (reply["upload_id"], 400, 50_000))
        self.assertIn("past the declared size", error["error"])
        done = yield alice.request("file_finish", upload_id=reply["upload_id"])
        self.assertEqual((done["response"], done["offset"]), (409, 50_000))
        yield self.assert_nothing_stored(server)
        self.assertEqual(filehelp.partial_files(server)[0].stat().st_size, 50_000)

    @defer.inlineCallbacks
    def test_fewer_bytes_than_declared(self):
        """Finishing before every declared byte arrived is 409 with the offset to go on
        from; sending the rest then finishing works."""
        server, (alice,) = yield server_with(self, "alice")
        data = filehelp.content(100_000)
        reply = yield filehelp.start(alice, data)
        filehelp.send_chunks(alice, reply["upload_id"], data, end=70_000)
        done = yield alice.request("file_finish", upload_id=reply["upload_id"])
        self.assertEqual((done["response"], done["offset"]), (409, 70_000))
        self.assertIn("70000 of 100000 bytes", done["error"])
        yield self.assert_nothing_stored(server)
        filehelp.send_chunks(alice, reply["upload_id"], data, 70_000)
        done = yield alice.request("file_finish", upload_id=reply["upload_id"])
        self.assertEqual(done["response"], 201)

    @defer.inlineCallbacks
    def check_refused_chunk(self, alice, data, upload_id, offset, expected, kind):
        alice.send_plaintext(binary.pack_data(binary.UPLOAD_DATA, upload_id, offset,
                                              data[offset:offset + 10_000]))
        error = yield alice.wait_push("file_error")
        self.assertEqual((error["response"], error["offset"]), (409, expected))
        self.assertIn(kind, error["error"])

    @defer.inlineCallbacks
    def test_out_of_order_and_overlapping_chunks(self):
        """A chunk that leaves a gap or overlaps is refused (409 with the offset the upload
        goes on at) and not written; later chunks are ignored until the client resumes,
        which tells it where to go on; the file then arrives intact."""
        server, (alice,) = yield server_with(self, "alice")
        data = filehelp.content(100_000)
        reply = yield filehelp.start(alice, data)
        upload_id = reply["upload_id"]
        filehelp.send_chunks(alice, upload_id, data, end=30_000)
        yield self.check_refused_chunk(alice, data, upload_id, 50_000, 30_000, "gap")
        filehelp.send_chunks(alice, upload_id, data, 30_000, 40_000)   # ignored: not resumed
        resumed = yield filehelp.start(alice, data)
        self.assertEqual((resumed["response"], resumed["offset"]), (200, 30_000))
        yield self.check_refused_chunk(alice, data, upload_id, 20_000, 30_000, "overlaps")
        resumed = yield filehelp.start(alice, data)
        filehelp.send_chunks(alice, upload_id, data, resumed["offset"])
        done = yield alice.request("file_finish", upload_id=upload_id)
        self.assertEqual(done["response"], 201)
        yield alice.request("file_get", file_id=done["file"]["file_id"])
        got = yield filehelp.download(alice, done["file"]["file_id"], len(data))
        self.assertEqual(got, data)

    @defer.inlineCallbacks
    def test_chunks_for_no_upload(self):
        """Chunks for an upload that does not exist, or that another user started, are
        refused with 404 and write nothing."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        data = filehelp.content(10_000)
        reply = yield filehelp.start(alice, data)
        for upload_id in (reply["upload_id"] + 50, reply["upload_id"]):
            bob.send_plaintext(binary.pack_data(binary.UPLOAD_DATA, upload_id, 0, data))
            error = yield bob.wait_push("file_error")
            self.assertEqual((error["upload_id"], error["response"]), (upload_id, 404))
        self.assertEqual(filehelp.partial_files(server)[0].stat().st_size, 0)

    @defer.inlineCallbacks
    def test_too_large_file(self):
        """A file over the server's largest size is refused at the start with 400 and
        the limit; no row, no file."""
        from messenger.server.config import FilesConfig
        server, (alice,) = yield server_with(self, "alice",
                                             files=FilesConfig(max_size=1_000_000))
        reply = yield alice.request("file_upload", name="big.iso", size=1_000_001,
                                    mime="application/x-iso9660-image", sha256="ab" * 32)
        self.assertEqual((reply["response"], reply["max_size"]), (400, 1_000_000))
        self.assertIn("at most 1.0 MiB", reply["error"])
        uploads = yield count(server, "uploads")
        self.assertEqual((uploads, filehelp.partial_files(server)), (0, []))


class BadReadTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_download_past_the_end(self):
        """A read at or past the end of a file is refused (400, with the size); a read
        that runs over the end gets what there is."""
        server, (alice,) = yield server_with(self, "alice")
        data = filehelp.content(5_000)
        file = yield filehelp.upload(self, alice, data)
        yield alice.request("file_get", file_id=file["file_id"])
        for offset in (5_000, 99_999):
            alice.send_plaintext(binary.pack_read(file["file_id"], offset, 10))
            error = yield alice.wait_push("file_error")
            self.assertEqual((error["response"], error["offset"], error["size"]),
                             (400, offset, 5_000))
            self.assertIn("past the end", error["error"])
        alice.send_plaintext(binary.pack_read(file["file_id"], 4_000, binary.MAX_READ))
        frame = yield alice.wait_data()
        self.assertEqual(bytes(frame.data), data[4_000:])

    @defer.inlineCallbacks
    def test_reads_without_file_get(self):
        """A connection reads only files it was granted with file_get; even the owner's
        new connection must ask again."""
        server, (alice,) = yield server_with(self, "alice")
        file = yield filehelp.upload(self, alice, filehelp.content(100))
        alice.send_plaintext(binary.pack_read(file["file_id"], 0, 100))
        error = yield alice.wait_push("file_error")
        self.assertEqual(error["response"], 403)

    @defer.inlineCallbacks
    def test_malformed_binary_frames(self):
        """Binary frames that cannot be read get a 400 reply without id naming the
        problem; the connection stays up."""
        server, (alice,) = yield server_with(self, "alice")
        cases = [
            (b"\x02" + b"\x00" * 5, "exactly 21 bytes"),
            (binary.pack_read(1, 0, 0), "1 to"),
            (binary.pack_read(1, 0, binary.MAX_READ + 1), "1 to"),
            (binary.pack_read(0, 0, 10), "file id"),
            (b"\x01" + b"\x00" * 10, "17-byte header"),
            (binary.pack_data(binary.UPLOAD_DATA, 1, 0, b""), "at least one byte"),
            (struct.pack(">BQQ", 1, 2**63, 0) + b"x", "upload id"),
            (binary.pack_data(binary.FILE_DATA, 1, 0, b"x"), "from the server"),
        ]
        for plaintext, text in cases:
            alice.send_plaintext(plaintext)
            reply = yield alice.wait_unmatched()
            self.assertEqual((reply["response"], reply["id"]), (400, None), text)
            self.assertIn(text, reply["error"])
        self.assertTrue(alice.connected_)
        reply = yield alice.request("get_contacts")
        self.assertEqual(reply["response"], 202)

    @defer.inlineCallbacks
    def test_binary_frames_before_login(self):
        """Binary frames before a login are refused with 401; nothing is read."""
        server, _ = yield server_with(self)
        client = yield jimclient.connect(self, server.tcp_port)
        client.send_plaintext(binary.pack_read(1, 0, 10))
        reply = yield client.wait_unmatched()
        self.assertEqual(reply["response"], 401)
        self.assertIn("log in first", reply["error"])

    @defer.inlineCallbacks
    def test_flood_of_bad_frames_closes(self):
        """A connection that keeps sending refused frames is closed, as for bad
        requests."""
        from tests.server.people import no_limits
        limits = no_limits()
        limits.bad_requests_per_second = 0.5
        limits.bad_request_burst = 5
        server, (alice,) = yield server_with(self, "alice", limits=limits)
        for _ in range(10):
            alice.send_plaintext(binary.pack_read(77, 0, 10))
        yield jimclient.wait_closed(alice)
        self.assertFalse(alice.connected_)


class BadUploadTestsOnPostgres(OnPostgres, BadUploadTests):
    pass
