"""File transfers and the connection's bounds, over real sockets: a client that asks for a
whole file and does not read is never sent more than its outbound bound allows (the file
is never buffered whole), and gets every byte once it reads; two nodes on one PostgreSQL
and one shared files directory serve each other's files (messenger.server.files)."""

from __future__ import annotations

import socket

from twisted.internet import defer
from twisted.trial import unittest

from messenger.server.config import FilesConfig
from messenger.server.files import frames
from messenger.wire import binary
from tests.server import filehelp
from tests.server.people import login, no_limits, server_with, wait_until
from tests.support import jimclient
from tests.support.server import start_server
from tests.support.services import OnPostgres, fresh_database

MIB = 1024 * 1024


def session_of(server, name):
    ref = server.ctx.directory.cached(name)
    return server.ctx.router.session(ref.id)


class OutboundBoundTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_reader_that_stops_reading(self):
        """A client asks for 24 MiB in reads of the largest size and stops reading its
        socket: the
        server stops reading its requests instead of answering them all, what waits for
        it stays under --max-queued-bytes, the connection is kept; once it reads again,
        every byte arrives in order."""
        server, (alice,) = yield server_with(self, "alice", max_queued_bytes=4 * MIB,
                                             files=FilesConfig(max_size=64 * MIB))
        data = filehelp.content(24 * MIB)
        file = yield filehelp.upload(self, alice, data)
        granted = yield alice.request("file_get", file_id=file["file_id"])
        self.assertEqual(granted["response"], 200)
        session = session_of(server, "alice")
        outbound, most = session.outbound, [0]
        write = outbound._write       # the transport's write, after the outbound counted

        def counting(data):
            most[0] = max(most[0], outbound.queued + outbound.pending)
            write(data)
        outbound._write = counting
        # Stop reading the socket, whose receive buffer is kept small (loopback's would
        # otherwise grow to tens of MiB and hold the whole file).
        alice.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        alice.transport.pauseProducing()
        for offset in range(0, len(data), binary.MAX_READ):
            alice.send_plaintext(binary.pack_read(file["file_id"], offset, binary.MAX_READ))
        state = frames.state_of(session)
        # Settled: reading held for the writes that wait, no read left in progress; from
        # here nothing more is produced until the client reads.
        yield wait_until(lambda: "writes" in session.gate.held and state.reads == 0,
                         timeout=30)
        self.assertLessEqual(most[0], server.config.max_queued_bytes)
        self.assertGreater(most[0], 0)
        self.assertFalse(session.outbound.overflowed)
        alice.transport.resumeProducing()
        received, offset = [], 0
        while offset < len(data):
            frame = yield alice.wait_data(timeout=30)
            self.assertEqual(frame.offset, offset)
            received.append(bytes(frame.data))
            offset += len(frame.data)
        self.assertEqual(filehelp.sha(b"".join(received)), filehelp.sha(data))
        self.assertTrue(alice.connected_)


class TwoNodesTests(OnPostgres, unittest.TestCase):
    """Two servers ("nodes") on one PostgreSQL database with one files directory, as a
    cluster mounts it: a file uploaded through one is downloaded through the other, and
    an upload cut off on one goes on through the other."""

    @defer.inlineCallbacks
    def setUp(self):
        url = yield fresh_database(self)
        shared = self.mktemp()
        self.nodes = []
        for _ in range(2):
            node = yield start_server(self, database=url, limits=no_limits(),
                                      files=FilesConfig(directory=shared))
            self.nodes.append(node)

    @defer.inlineCallbacks
    def test_download_through_another_node(self):
        node_a, node_b = self.nodes
        alice, _ = yield jimclient.register(self, node_a.tcp_port, "alice")
        bob, _ = yield jimclient.register(self, node_b.tcp_port, "bob")
        data = filehelp.content(500_000)
        file = yield filehelp.upload(self, alice, data)
        reply = yield alice.request("msg", to="bob", message="from a",
                                    attachment={"file_id": file["file_id"]})
        self.assertEqual(reply["response"], 200)
        synced = yield bob.request("sync", since=0)
        self.assertEqual(synced["alert"][0]["attachment"]["file_id"], file["file_id"])
        granted = yield bob.request("file_get", file_id=file["file_id"])
        self.assertEqual(granted["response"], 200)
        got = yield filehelp.download(bob, file["file_id"], len(data))
        self.assertEqual(got, data)

    @defer.inlineCallbacks
    def test_upload_resumed_on_another_node(self):
        node_a, node_b = self.nodes
        alice, _ = yield jimclient.register(self, node_a.tcp_port, "alice")
        data = filehelp.content(2_000_000)
        reply = yield filehelp.start(alice, data)
        filehelp.send_chunks(alice, reply["upload_id"], data, end=1_000_000)
        done = yield alice.request("file_finish", upload_id=reply["upload_id"])
        self.assertEqual((done["response"], done["offset"]), (409, 1_000_000))
        yield alice.request("quit")
        node_a.ctx.files.release_idle(node_a.ctx.clock.seconds() + 3600)
        alice = yield login(self, node_b, "alice")
        resumed = yield filehelp.start(alice, data)
        self.assertEqual((resumed["upload_id"], resumed["offset"]),
                         (reply["upload_id"], 1_000_000))
        filehelp.send_chunks(alice, reply["upload_id"], data, 1_000_000)
        finished = yield alice.request("file_finish", upload_id=reply["upload_id"])
        self.assertEqual(finished["file"]["sha256"], filehelp.sha(data))


class LockedUploadTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_upload_held_by_another_process(self):
        """An upload whose partial file another process holds (another node of a
        cluster) is answered 409 with retry_after; once released, it resumes."""
        import subprocess
        import sys
        server, (alice,) = yield server_with(self, "alice")
        data = filehelp.content(300_000)
        reply = yield filehelp.start(alice, data)
        filehelp.send_chunks(alice, reply["upload_id"], data, end=100_000)
        done = yield alice.request("file_finish", upload_id=reply["upload_id"])
        self.assertEqual(done["offset"], 100_000)
        yield alice.request("quit")
        server.ctx.files.release_idle(server.ctx.clock.seconds() + 3600)
        path = filehelp.partial_files(server)[0]
        holder = subprocess.Popen(
            [sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR);"
             " fcntl.lockf(fd, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()",
             str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(holder.wait)
        self.addCleanup(lambda: holder.stdin.closed or holder.stdin.close())
        self.assertEqual(holder.stdout.readline().strip(), "locked")
        alice = yield login(self, server, "alice")
        busy = yield filehelp.start(alice, data)
        self.assertEqual((busy["response"], busy["retry_after"]), (409, 60.0))
        self.assertIn("another connection", busy["error"])
        holder.stdin.close()
        holder.wait()
        resumed = yield filehelp.start(alice, data)
        self.assertEqual((resumed["response"], resumed["offset"]), (200, 100_000))
