"""Resuming uploads and downloads over real sockets: after a connection killed mid-way,
after the server was stopped and started, and after a SIGKILLed ``twistd messenger``
child; the file arrives intact (same SHA-256) (messenger.server.files)."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from messenger.server.service import MessengerServer
from tests.server import filehelp
from tests.server.people import drop, login, server_with
from tests.support import jimclient
from tests.support.services import OnPostgres
from tests.support.twistd_server import start_twistd_server


@defer.inlineCallbacks
def committed_at_least(client, upload_id, offset):
    """Wait for a file_progress push saying at least ``offset`` bytes are written."""
    while True:
        push = yield client.wait_push("file_progress")
        if push["upload_id"] == upload_id and push["offset"] >= offset:
            return push["offset"]


@defer.inlineCallbacks
def finish_and_check(testcase, client, upload_id, data):
    done = yield client.request("file_finish", upload_id=upload_id)
    testcase.assertEqual(done["response"], 201, done)
    testcase.assertEqual(done["file"]["sha256"], filehelp.sha(data))
    reply = yield client.request("file_get", file_id=done["file"]["file_id"])
    testcase.assertEqual(reply["response"], 200)
    got = yield filehelp.download(client, done["file"]["file_id"], len(data))
    testcase.assertEqual(filehelp.sha(got), filehelp.sha(data))
    return done["file"]


class ResumeTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_resume_after_killed_connection(self):
        """The connection is cut half-way (an RST, no goodbye): after logging in again
        the client starts the same upload, learns the offset the server wrote up to (at
        least what it had confirmed), sends the rest, and the file is intact."""
        server, (alice,) = yield server_with(self, "alice")
        data = filehelp.content(3_000_000)
        reply = yield filehelp.start(alice, data)
        upload_id = reply["upload_id"]
        filehelp.send_chunks(alice, upload_id, data, end=1_500_000)
        confirmed = yield committed_at_least(alice, upload_id, 1_000_000)
        yield drop(alice)
        alice = yield login(self, server, "alice")
        resumed = yield filehelp.start(alice, data)
        self.assertEqual((resumed["response"], resumed["upload_id"]), (200, upload_id))
        self.assertGreaterEqual(resumed["offset"], confirmed)
        self.assertLessEqual(resumed["offset"], 1_500_000)
        filehelp.send_chunks(alice, upload_id, data, resumed["offset"])
        yield finish_and_check(self, alice, upload_id, data)

    @defer.inlineCallbacks
    def test_resume_after_server_restart(self):
        """The server stops and starts again: the upload goes on from its partial file,
        whose bytes are hashed once more."""
        server, (alice,) = yield server_with(self, "alice")
        data = filehelp.content(2_000_000)
        reply = yield filehelp.start(alice, data)
        upload_id = reply["upload_id"]
        filehelp.send_chunks(alice, upload_id, data, end=1_200_000)
        confirmed = yield committed_at_least(alice, upload_id, 1_000_000)
        yield server.stop()
        from twisted.internet import reactor
        server = MessengerServer(server.config, reactor)
        yield server.start()
        self.addCleanup(server.stop)
        alice = yield login(self, server, "alice")
        resumed = yield filehelp.start(alice, data)
        self.assertEqual(resumed["upload_id"], upload_id)
        self.assertGreaterEqual(resumed["offset"], confirmed)
        filehelp.send_chunks(alice, upload_id, data, resumed["offset"])
        yield finish_and_check(self, alice, upload_id, data)

    @defer.inlineCallbacks
    def test_download_resumes_from_an_offset(self):
        """A download cut off goes on from the last byte received, on a new connection."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        data = filehelp.content(1_000_000)
        file = yield filehelp.upload(self, alice, data)
        yield alice.request("msg", to="bob", message="f",
                            attachment={"file_id": file["file_id"]})
        yield bob.request("file_get", file_id=file["file_id"])
        first = yield filehelp.download(bob, file["file_id"], 400_000, chunk=100_000)
        yield drop(bob)
        bob = yield login(self, server, "bob")
        yield bob.request("file_get", file_id=file["file_id"])
        rest = yield filehelp.download(bob, file["file_id"], len(data), offset=400_000)
        self.assertEqual(first + rest, data)


class ResumeTestsOnPostgres(OnPostgres, ResumeTests):
    pass


class KilledServerTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_resume_after_sigkill(self):
        """``twistd messenger`` is SIGKILLed half-way through an upload (no clean
        shutdown): started again, it takes the upload up from its partial file at no
        less than the offset it had confirmed, and the file arrives intact."""
        server = yield start_twistd_server(self)
        alice, reply = yield jimclient.register(self, server.port, "alice")
        self.assertEqual(reply["response"], 201)
        data = filehelp.content(4_000_000)
        started = yield filehelp.start(alice, data)
        upload_id = started["upload_id"]
        filehelp.send_chunks(alice, upload_id, data, end=2_000_000)
        confirmed = yield committed_at_least(alice, upload_id, 1_500_000)
        yield server.kill()
        yield alice.closed
        yield server.start()
        alice = yield jimclient.connect(self, server.port)
        reply = yield alice.request("authenticate", user={"account_name": "alice",
                                                          "password": "correct horse"})
        self.assertEqual(reply["response"], 200)
        resumed = yield filehelp.start(alice, data)
        self.assertEqual((resumed["response"], resumed["upload_id"]), (200, upload_id))
        self.assertGreaterEqual(resumed["offset"], confirmed)
        filehelp.send_chunks(alice, upload_id, data, resumed["offset"])
        yield finish_and_check(self, alice, upload_id, data)
