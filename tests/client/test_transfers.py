"""Transfers of the client core without a server (messenger.client.transfers, .uploads,
.downloads): a fake connection records what would be sent and answers by hand, a
task.Clock drives the retries, file work runs synchronously on real temporary files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from twisted.internet import defer, task
from twisted.trial import unittest

from messenger.client.downloads import READ_SIZE, DownloadJob
from messenger.client.downloads import WINDOW as READ_WINDOW
from messenger.client.errors import (
    DownloadCorrupt,
    FileChanged,
    FileNotReadable,
    NotConnected,
    TransferCancelled,
)
from messenger.client.events import Observers
from messenger.client.transfers import DONE, FAILED, RUNNING, WAITING, Transfers
from messenger.client.uploads import BLOCK, WINDOW, UploadJob
from messenger.wire import binary
from messenger.wire.errors import Conflict


class FakeProtocol:
    max_send = 64 * 1024 + 64


class FakeConnection:
    """Requests wait in ``asked`` for the test to answer; binary frames are kept."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, dict[str, Any], defer.Deferred]] = []
        self.frames: list[Any] = []
        self.protocol = FakeProtocol()
        self.open = True

    def request(self, action: str, fields: dict[str, Any] | None = None) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        if not self.open:
            return defer.fail(NotConnected("closed"))
        self.asked.append((action, fields or {}, d))
        return d

    def send_binary(self, plaintext: bytes) -> None:
        if not self.open:
            raise NotConnected("closed")
        self.frames.append(binary.parse(plaintext))

    def answer(self, action: str, reply: Any) -> dict[str, Any]:
        """Answer the oldest pending request of ``action`` (a dict, or an exception)."""
        for entry in self.asked:
            if entry[0] == action:
                self.asked.remove(entry)
                if isinstance(reply, BaseException):
                    entry[2].errback(reply)
                else:
                    entry[2].callback(reply)
                return entry[1]
        raise AssertionError(f"no {action} was asked; asked: {[a for a, _, _ in self.asked]}")

    def take_frames(self) -> list[Any]:
        frames, self.frames = self.frames, []
        return frames


class TransferCase(unittest.TestCase):

    def setUp(self):
        self.clock = task.Clock()
        self.observers = Observers()
        self.events: list[tuple[str, str]] = []
        for kind in ("transfer_progress", "transfer_done", "transfer_failed"):
            self.observers.subscribe(kind, lambda t, kind=kind: self.events.append(
                (kind, t.state)))
        self.transfers = Transfers(self.observers, defer.maybeDeferred, self.clock)
        self.folder = Path(self.mktemp())
        self.folder.mkdir()
        self.connection = FakeConnection()

    def file(self, size: int, name: str = "data.bin") -> tuple[Path, bytes]:
        data = os.urandom(size)
        path = self.folder / name
        path.write_bytes(data)
        return path, data


class UploadTests(TransferCase):

    def upload(self, size: int) -> tuple[UploadJob, bytes]:
        path, data = self.file(size)
        job = UploadJob(self.transfers, path)
        self.transfers.add(job)
        self.transfers.attach(self.connection)
        job.begin()
        return job, data

    def started(self, job: UploadJob, upload_id: int = 7, offset: int = 0) -> dict:
        return self.connection.answer("file_upload", {"response": 201, "upload_id": upload_id,
                                                      "offset": offset})

    def test_window_and_chunks(self):
        """At most WINDOW bytes go out beyond what the server confirmed, in chunks that
        fit max_frame, in order; each file_progress lets more go; finish follows the
        last chunk; the transfer is done with the file id."""
        job, data = self.upload(3 * WINDOW)
        fields = self.started(job)
        self.assertEqual((fields["size"], fields["sha256"]),
                         (len(data), hashlib.sha256(data).hexdigest()))
        frames = self.connection.take_frames()
        self.assertEqual(sum(len(f.data) for f in frames), WINDOW)
        self.assertTrue(all(len(f.data) <= FakeProtocol.max_send for f in frames))
        self.assertEqual([f.offset for f in frames],
                         sorted({f.offset for f in frames}))
        sent = WINDOW
        while sent < len(data):
            job.push({"action": "file_progress", "upload_id": 7, "offset": sent})
            sent += sum(len(f.data) for f in self.connection.take_frames())
        received = b"".join(bytes(f.data) for f in frames)
        self.assertEqual(received, data[:WINDOW])
        self.connection.answer("file_finish", {"response": 201, "file": {"file_id": 42}})
        self.assertEqual((job.transfer.state, job.transfer.file_id), (DONE, 42))
        self.assertEqual(self.events[-1], ("transfer_done", DONE))

    def test_refused_chunk_resumes_from_the_servers_offset(self):
        """A file_error makes the upload ask again with file_upload and go on from the
        offset the server gives."""
        job, data = self.upload(WINDOW + BLOCK)
        self.started(job)
        self.connection.take_frames()
        job.push({"action": "file_error", "upload_id": 7, "response": 409,
                  "error": "gap", "offset": 1000})
        self.connection.answer("file_upload", {"response": 200, "upload_id": 7,
                                               "offset": 1000})
        frames = self.connection.take_frames()
        self.assertEqual(frames[0].offset, 1000)
        self.assertEqual(bytes(frames[0].data), data[1000:1000 + len(frames[0].data)])

    def test_lost_connection_waits_and_resumes(self):
        """Without a connection the upload waits; the next session resumes it."""
        job, data = self.upload(BLOCK)
        self.started(job)
        self.connection.take_frames()
        self.connection.open = False
        self.transfers.detach()
        self.assertEqual(job.transfer.state, WAITING)
        second = FakeConnection()
        self.transfers.attach(second)
        self.assertEqual(job.transfer.state, RUNNING)
        second.answer("file_upload", {"response": 200, "upload_id": 7, "offset": 5000})
        self.assertEqual(second.take_frames()[0].offset, 5000)

    def test_finish_conflict_and_changed_file(self):
        """A 409 at finish asks again where to go on; a wrong SHA-256 fails the transfer
        with FileChanged."""
        job, data = self.upload(1000)
        self.started(job)
        self.connection.answer("file_finish", Conflict("missing", offset=500))
        self.connection.answer("file_upload", {"response": 200, "upload_id": 7, "offset": 500})
        self.assertEqual(self.connection.take_frames()[-1].offset, 500)
        self.connection.answer("file_finish", FileChanged("sha-256"))
        self.assertEqual(job.transfer.state, FAILED)
        self.assertIsInstance(job.transfer.error, FileChanged)

    def test_cancel(self):
        """Cancelling tells the server and fails the transfer with TransferCancelled."""
        job, data = self.upload(1000)
        self.started(job)
        self.transfers.cancel(job.transfer)
        self.assertEqual(self.connection.asked[-1][0], "file_cancel")
        self.failureResultOf(job.transfer.when_done(), TransferCancelled)


class DownloadTests(TransferCase):

    def download(self, data: bytes) -> DownloadJob:
        self.data = data
        self.transfers.attach(self.connection)
        job = DownloadJob(self.transfers, 12, self.folder / "out.bin")
        self.transfers.add(job)
        job.begin()
        self.connection.answer("file_get", {"response": 200, "file": {
            "file_id": 12, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "name": "x"}})
        return job

    def serve(self, connection: FakeConnection, job: DownloadJob, until: int) -> None:
        """Answer the reads asked, in order, until ``until`` bytes were sent."""
        sent = job.received
        while sent < until:
            reads = connection.take_frames()
            if not reads:
                break
            for read in reads:
                piece = self.data[read.offset:read.offset + read.length]
                job.data(read.offset, memoryview(piece))
                sent += len(piece)

    def test_window_data_and_rename(self):
        """Reads never ask for more than the window beyond what is written; the data is
        written in order, checked, and the .part file renamed."""
        data = os.urandom(3 * READ_WINDOW)
        job = self.download(data)
        reads = self.connection.frames
        asked = sum(r.length for r in reads)
        self.assertTrue(READ_WINDOW - READ_SIZE < asked <= READ_WINDOW, asked)
        self.serve(self.connection, job, len(data))
        self.assertEqual(job.transfer.state, DONE)
        self.assertEqual((self.folder / "out.bin").read_bytes(), data)
        self.assertFalse((self.folder / "out.bin.part").exists())

    def test_resume_after_reconnect(self):
        """Cut off half-way, the download asks again on the next connection from the
        bytes it has written."""
        data = os.urandom(2 * READ_WINDOW)
        job = self.download(data)
        self.serve(self.connection, job, READ_WINDOW // 2)
        self.transfers.detach()
        second = FakeConnection()
        self.transfers.attach(second)
        second.answer("file_get", {"response": 200, "file": {
            "file_id": 12, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}})
        self.assertEqual(second.frames[0].offset, job.written)
        self.serve(second, job, len(data))
        self.assertEqual((self.folder / "out.bin").read_bytes(), data)

    def test_wrong_content_and_refusal(self):
        """Bytes that do not match the SHA-256 fail with DownloadCorrupt and leave no
        file; a file_get refused fails with FileNotReadable."""
        data = os.urandom(1000)
        job = self.download(data)
        self.data = b"x" * 1000
        self.serve(self.connection, job, 1000)
        self.failureResultOf(job.transfer.when_done(), DownloadCorrupt)
        self.assertEqual(list(self.folder.iterdir()), [])
        other = DownloadJob(self.transfers, 13, self.folder / "other.bin")
        self.transfers.add(other)
        other.begin()
        self.connection.answer("file_get", FileNotReadable("no"))
        self.failureResultOf(other.transfer.when_done(), FileNotReadable)
