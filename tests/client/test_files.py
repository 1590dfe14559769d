"""File transfers of the client core against a real server in this process: real sockets,
real files on both sides; send_file with an image, send_group_file, download by the
recipient (a group's members), progress
events, resume after the connection is cut half-way, refusals as typed errors
(messenger.client.filesapi, .transfers, .uploads, .downloads)."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

from PIL import Image
from twisted.internet import defer

from messenger.client import images
from messenger.client.errors import (
    FileNotReadable,
    FileTooLarge,
    Forbidden,
    QuotaExceeded,
    TransferCancelled,
)
from messenger.client.transfers import DONE, WAITING
from messenger.server.config import FilesConfig
from tests.client.test_integration import PASSWORD, ServerTestCase
from tests.server.people import no_limits
from tests.support.server import start_server
from tests.support.twistd_server import wait_for


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def png(width: int = 400, height: int = 300) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 90)).save(out, "PNG")
    return out.getvalue()


class FileClientTests(ServerTestCase):

    @defer.inlineCallbacks
    def setUp(self):
        self.server = yield start_server(self, limits=no_limits(),
                                         files=FilesConfig(max_size=20_000_000,
                                                           quota=30_000_000))
        self.port = self.server.tcp_port
        self.alice, self.bob = self.client(self.port), self.client(self.port)
        yield self.alice.register("alice", PASSWORD, "alice@example.org")
        yield self.bob.register("bob", PASSWORD, "bob@example.org")
        self.folder = Path(self.mktemp())

    @defer.inlineCallbacks
    def test_image_sent_and_downloaded(self):
        """An image sent with send_file reaches Bob's message observer with its width,
        height and a thumbnail that decodes; Bob downloads it byte for byte; both sides
        see progress and done events."""
        data = png()
        path = write(self.folder / "a" / "sunset.png", data)
        received, events = [], []
        self.bob.subscribe("message", received.append)
        for kind in ("transfer_progress", "transfer_done"):
            self.alice.subscribe(kind, lambda t, kind=kind: events.append((kind, t.state)))
        transfer = self.alice.send_file("bob", path, caption="look")
        yield transfer.when_done()
        self.assertEqual((transfer.state, transfer.size, transfer.done),
                         (DONE, len(data), len(data)))
        self.assertIsInstance(transfer.message["msg_id"], int)
        self.assertEqual(events[-1], ("transfer_done", DONE))
        yield wait_for(lambda: received, what="the message at bob")
        (message,) = received
        attachment = message.attachment
        self.assertEqual((message.text, attachment.name, attachment.size, attachment.mime),
                         ("look", "sunset.png", len(data), "image/png"))
        self.assertEqual((attachment.width, attachment.height), (400, 300))
        self.assertEqual(attachment.sha256, hashlib.sha256(data).hexdigest())
        thumbnail = yield self.bob.load_thumbnail(attachment)
        self.assertLessEqual(max(thumbnail.size), images.THUMBNAIL_SIDE)
        target = self.folder / "b" / "saved.png"
        download = self.bob.download_file(attachment.file_id, target)
        yield download.when_done()
        self.assertEqual(target.read_bytes(), data)
        self.assertFalse(target.with_name("saved.png.part").exists())
        preview = yield self.bob.load_image(target)
        self.assertEqual(preview.size, (400, 300))

    @defer.inlineCallbacks
    def test_plain_file_and_large_one(self):
        """A file that is not an image has no image fields; a 6 MB file crosses in many
        chunks and windows and arrives intact."""
        data = os.urandom(6_000_000)
        path = write(self.folder / "data.bin", data)
        received = []
        self.bob.subscribe("message", received.append)
        transfer = self.alice.send_file("bob", path)
        yield transfer.when_done()
        yield wait_for(lambda: received, what="the message at bob")
        attachment = received[0].attachment
        self.assertEqual((attachment.mime, attachment.width, attachment.thumbnail),
                         ("application/octet-stream", None, None))
        target = self.folder / "copy.bin"
        yield self.bob.download_file(attachment.file_id, target).when_done()
        self.assertEqual(hashlib.sha256(target.read_bytes()).digest(),
                         hashlib.sha256(data).digest())

    @defer.inlineCallbacks
    def test_resumes_after_the_connection_is_cut(self):
        """The connection is cut while an upload runs: the transfer waits, the client
        reconnects by itself, and the upload goes on from the server's offset; then a
        download is cut the same way and goes on from its .part file."""
        data = os.urandom(8_000_000)
        path = write(self.folder / "big.bin", data)
        states = []
        self.alice.subscribe("transfer_progress", lambda t: states.append((t.state, t.done)))
        transfer = self.alice.send_file("bob", path)
        yield wait_for(lambda: transfer.done >= 2_000_000, what="a quarter uploaded")
        self.server.ctx.router.session(self.alice_id()).transport.abortConnection()
        yield transfer.when_done()
        self.assertIn(WAITING, [state for state, _ in states])
        resumed_from = [done for state, done in states if state == WAITING][0]
        self.assertGreater(resumed_from, 0)
        file_id = transfer.file_id
        target = self.folder / "down.bin"
        download = self.bob.download_file(file_id, target)
        yield wait_for(lambda: download.done >= 2_000_000, what="a quarter downloaded")
        self.server.ctx.router.session(self.bob_id()).transport.abortConnection()
        yield download.when_done()
        self.assertEqual(hashlib.sha256(target.read_bytes()).digest(),
                         hashlib.sha256(data).digest())

    @defer.inlineCallbacks
    def test_group_file(self):
        """send_group_file: the members' message observers get the message with its
        group and attachment (a thumbnail for an image), a member downloads it, and a
        refusal of the message (not a member) fails the transfer with Forbidden."""
        carol = self.client(self.port)
        yield carol.register("carol", PASSWORD, "carol@example.org")
        reply = yield self.alice.group_create("Class", members=["bob"])
        group_id = reply["group"]["group_id"]
        received = []
        self.bob.subscribe("message", received.append)
        data = png(64, 48)
        transfer = self.alice.send_group_file(group_id, write(self.folder / "g.png", data),
                                              caption="hi @bob")
        yield transfer.when_done()
        self.assertEqual(transfer.group, group_id)
        yield wait_for(lambda: received, what="the group message at bob")
        (message,) = received
        self.assertEqual((message.group, message.recipient, message.text, message.mentions),
                         (group_id, None, "hi @bob", ("bob",)))
        attachment = message.attachment
        self.assertEqual((attachment.file_id, attachment.width, attachment.height),
                         (transfer.file_id, 64, 48))
        self.assertIsNotNone(attachment.thumbnail)
        target = self.folder / "bob" / "g.png"
        yield self.bob.download_file(attachment.file_id, target).when_done()
        self.assertEqual(target.read_bytes(), data)
        yield self.assertFailure(carol.download_file(attachment.file_id,
                                                     self.folder / "c").when_done(),
                                 FileNotReadable)
        refused = carol.send_group_file(group_id, write(self.folder / "n.txt", b"no"))
        yield self.assertFailure(refused.when_done(), Forbidden)
        with self.assertRaises(ValueError):
            self.alice.send_group_file(0, self.folder / "g.png")

    def alice_id(self):
        return self.server.ctx.directory.cached("alice").id

    def bob_id(self):
        return self.server.ctx.directory.cached("bob").id

    @defer.inlineCallbacks
    def test_refusals_are_typed(self):
        """A file over the server's limit fails locally with FileTooLarge, one over the
        quota with QuotaExceeded, a download one may not read with FileNotReadable, a
        cancelled transfer with TransferCancelled."""
        big = write(self.folder / "big.bin", b"x" * 20_000_001)
        error = yield self.assertFailure(self.alice.upload_file(big).when_done(),
                                         FileTooLarge)
        self.assertEqual(error.max_size, 20_000_000)
        for name in ("one", "two"):
            write(self.folder / name, os.urandom(16_000_000))
        yield self.alice.upload_file(self.folder / "one").when_done()
        yield self.assertFailure(self.alice.upload_file(self.folder / "two").when_done(),
                                 QuotaExceeded)
        mine = yield self.alice.upload_file(write(self.folder / "s", b"secret")).when_done()
        yield self.assertFailure(
            self.bob.download_file(mine.file_id, self.folder / "x").when_done(),
            FileNotReadable)
        self.assertFalse((self.folder / "x.part").exists())
        slow = self.alice.upload_file(write(self.folder / "c", os.urandom(5_000_000)))
        self.alice.cancel_transfer(slow)
        yield self.assertFailure(slow.when_done(), TransferCancelled)


class FileClientRestartTests(ServerTestCase):

    @defer.inlineCallbacks
    def test_download_survives_a_new_client(self):
        """A download stopped with the client goes on from its .part file in a new
        client (the bytes there are hashed again, not fetched again)."""
        server = yield start_server(self, limits=no_limits())
        folder = Path(self.mktemp())
        alice = self.client(server.tcp_port)
        yield alice.register("alice", PASSWORD, "alice@example.org")
        data = os.urandom(3_000_000)
        transfer = alice.upload_file(write(folder / "f.bin", data))
        yield transfer.when_done()
        target = folder / "out" / "f.bin"
        write(target.with_name("f.bin.part"), data[:1_000_000])
        reads = []
        original = server.ctx.files.blobs.read
        server.ctx.files.blobs.read = lambda *args: (reads.append(args[1]), original(*args))[1]
        yield alice.download_file(transfer.file_id, target).when_done()
        self.assertEqual(target.read_bytes(), data)
        self.assertEqual(min(reads), 1_000_000)


class DoneWhenTests(ServerTestCase):
    """The issue's "done when", with the client core: a 100 MiB file sent over a
    connection that is cut half-way arrives intact, and a third user cannot download it."""

    timeout = 240

    @defer.inlineCallbacks
    def test_hundred_mib_cut_half_way(self):
        server = yield start_server(self, limits=no_limits())
        folder = Path(self.mktemp())
        clients = [self.client(server.tcp_port) for _ in range(3)]
        for client, name in zip(clients, ("alice", "bob", "carol"), strict=True):
            yield client.register(name, PASSWORD, f"{name}@example.org")
        alice, bob, carol = clients
        source = folder / "big.iso"
        source.parent.mkdir()
        digest = hashlib.sha256()
        with open(source, "wb") as out:
            for _ in range(100):
                block = os.urandom(1024 * 1024)
                digest.update(block)
                out.write(block)
        states = []
        alice.subscribe("transfer_progress", lambda t: states.append((t.state, t.done)))
        transfer = alice.send_file("bob", source)
        yield wait_for(lambda: transfer.done >= 50 * 1024 * 1024, timeout=120,
                       what="half of the file uploaded")
        alice_id = server.ctx.directory.cached("alice").id
        server.ctx.router.session(alice_id).transport.abortConnection()
        yield transfer.when_done()
        cut_at = [done for state, done in states if state == WAITING]
        self.assertTrue(cut_at and cut_at[0] < 100 * 1024 * 1024, cut_at)
        target = folder / "copy.iso"
        yield bob.download_file(transfer.file_id, target).when_done()
        copy = hashlib.sha256()
        with open(target, "rb") as stream:
            for block in iter(lambda: stream.read(1024 * 1024), b""):
                copy.update(block)
        self.assertEqual(copy.hexdigest(), digest.hexdigest())
        yield self.assertFailure(
            carol.download_file(transfer.file_id, folder / "stolen").when_done(),
            FileNotReadable)
        self.assertEqual(sorted(p.name for p in folder.iterdir()), ["big.iso", "copy.iso"])
