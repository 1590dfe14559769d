"""Files over real sockets against a real server and real files on disk: upload, finish,
download by the participants of a conversation, refusal for everyone else, dedupe
(messenger.server.files, messenger.server.handlers.files and .attachments)."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from tests.server import filehelp
from tests.server.people import server_with


class UploadTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_upload_and_download(self):
        """An uploaded file is stored under its SHA-256 and reads back byte for byte."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        data = filehelp.content(300_000)
        file = yield filehelp.upload(self, alice, data, name="photo.bin")
        self.assertEqual((file["size"], file["sha256"], file["name"]),
                         (len(data), filehelp.sha(data), "photo.bin"))
        reply = yield alice.request("file_get", file_id=file["file_id"])
        self.assertEqual(reply["response"], 200, reply)
        got = yield filehelp.download(alice, file["file_id"], len(data))
        self.assertEqual(got, data)
        self.assertEqual([p.name for p in filehelp.blob_files(server)], [filehelp.sha(data)])
