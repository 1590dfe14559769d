"""Uploads being received: bytes in order into a partial file, hashed as they come.

An `Upload` is one upload in this process. Its file work runs in its own lane of the file
I/O threads (`messenger.server.crypto.Lane`: one job at a time, in order), so the chunks
of an upload are written in the order they arrived, a finish runs after the last chunk
before it, and a resume reports the offset only once the chunks accepted before it are
on disk. The reactor thread only checks offsets and queues jobs.

Rules for a chunk (docs/PROTOCOL.md, "Upload data"): it belongs to an upload this
connection started or resumed; it starts exactly where the previous one ended (no gap,
no overlap, no reordering); it does not pass the declared size. A chunk that breaks a
rule is refused with a ``file_error`` push and nothing of it is written; the upload then
ignores further chunks until the client resumes it (``file_upload`` again), which tells
it the offset to go on from.

State of one upload: ``received`` (where the next chunk must start; reactor thread),
``committed`` (bytes written, as last reported by the lane), and on the lane's side the
file descriptor, the SHA-256 so far and the bytes written. After a server restart an
upload is taken up again from its partial file, whose bytes are hashed once more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from messenger.server.files.blobs import SYNC_EVERY, WRITEBACK_EVERY, BlobStore
from messenger.store.files import UploadRow
from messenger.wire.errors import BadRequest, Conflict

if TYPE_CHECKING:
    from messenger.server.crypto import Lane

PROGRESS_STEP = 512 * 1024    # a file_progress push at least this often (and at the end)


class Mismatch(BadRequest):
    """The content's SHA-256 is not the declared one."""


class Upload:
    """One upload: its row, its partial file (through its lane) and its progress."""

    log = Logger()

    def __init__(self, row: UploadRow, lane: Lane, blobs: BlobStore, now: float) -> None:
        self.row = row
        self.lane = lane
        self.blobs = blobs
        # reactor side
        self.received = 0
        self.committed = 0
        self.reported = 0
        self.session: Any = None
        self.failed = False
        self.prepared = False
        self.finishing = False
        self.last_active = now
        self._open_error: BaseException | None = None
        # lane side (touched only by jobs, one at a time)
        self._fd: int | None = None
        self._hasher: Any = None
        self._written = 0
        self._unsynced = 0
        self._written_back = 0

    @property
    def id(self) -> int:
        return self.row.id

    # -- reactor side -----------------------------------------------------------------

    def prepare(self) -> defer.Deferred[int]:
        """Open the partial file (creating it) and hash what it holds, unless done; fires
        with the committed offset once every chunk accepted before is written."""
        if not self.prepared:
            self.prepared = True
            self.lane.submit(self._open_job).addCallbacks(self._opened, self._open_failed)
        return self.lane.submit(_nothing).addCallback(lambda _: self._settle())

    def _opened(self, length: int) -> None:
        self.received = self.committed = self.reported = length

    def _open_failed(self, failure: Any) -> None:
        """Kept for `_settle`, which reports it to whoever is waiting for the offset."""
        self.prepared = False
        self._open_error = failure.value

    def _settle(self) -> int:
        if not self.prepared:
            error, self._open_error = self._open_error, None
            raise error or Conflict("the upload could not be opened; try again")
        self.received = self.committed
        self.failed = False
        return self.committed

    def accept(self, offset: int, data: memoryview) -> defer.Deferred[int]:
        """Queue one chunk (checked by the caller); fires with the new committed offset."""
        self.received = offset + len(data)
        return self.lane.submit(self._write_job, offset, data)

    def check_chunk(self, offset: int, length: int) -> None:
        """Refuse a chunk that does not continue the upload exactly (`Conflict`) or that
        passes its declared size (`BadRequest`); nothing of it is written."""
        if offset != self.received:
            kind = "overlaps what was sent" if offset < self.received else "leaves a gap"
            raise Conflict(f"chunk at offset {offset} {kind}: upload {self.id} goes on at"
                           f" offset {self.received}", offset=self.received)
        if offset + length > self.row.size:
            raise BadRequest(f"chunk ends at {offset + length}, past the declared size of"
                             f" upload {self.id} ({self.row.size} bytes)",
                             offset=self.received)

    def complete(self) -> defer.Deferred[None]:
        """Fires once every accepted chunk is written and the content is verified,
        flushed and placed as its blob; fails with `Conflict` when bytes are missing or
        `Mismatch` when the SHA-256 differs."""
        return self.lane.submit(self._complete_job)

    def release(self) -> defer.Deferred[None]:
        """Close the partial file (its lock goes): the upload may resume elsewhere."""
        self.prepared = False
        return self.lane.submit(self._close_job)

    # -- lane side --------------------------------------------------------------------

    def _open_job(self) -> int:
        if self.row.known:
            self._written = self.row.size
            return self.row.size
        fd, length = self.blobs.open_partial(self.row.id, self.row.size)
        try:
            hasher = self.blobs.hash_prefix(fd, length)
        except BaseException:
            self.blobs.close(fd)
            raise
        self._fd, self._hasher, self._written, self._unsynced = fd, hasher, length, 0
        self._written_back = length
        return length

    def _write_job(self, offset: int, data: memoryview) -> int:
        fd = self._fd
        if fd is None or offset != self._written:
            # An earlier write failed and closed the file: this chunk waits for a resume.
            raise Conflict(f"upload {self.row.id} must be resumed", offset=self._written)
        try:
            self.blobs.write(fd, offset, data)
            self._hasher.update(data)
            self._unsynced += len(data)
            end = offset + len(data)
            if end - self._written_back >= WRITEBACK_EVERY:
                self.blobs.start_writeback(fd, self._written_back, end - self._written_back)
                self._written_back = end
            if self._unsynced >= SYNC_EVERY:
                self.blobs.sync(fd)
                self._unsynced = 0
        except OSError:
            self._close_job()
            raise
        self._written = offset + len(data)
        return self._written

    def _complete_job(self) -> None:
        size = self.row.size
        if self._written != size:
            raise Conflict(f"upload {self.row.id} has {self._written} of {size} bytes; send"
                           f" the rest from offset {self._written}", offset=self._written)
        if self.row.known:
            return
        if self._fd is None:
            raise Conflict("the upload must be resumed", offset=self._written)
        digest = self._hasher.hexdigest()
        if digest != self.row.sha256:
            raise Mismatch("the content's SHA-256 is not the one declared at the start:"
                           " the upload was discarded; start it again")
        self.blobs.sync(self._fd)
        self._close_job()
        self.blobs.place(self.row.sha256, self.row.id)

    def _close_job(self) -> None:
        fd, self._fd = self._fd, None
        self._hasher = None
        if fd is not None:
            self.blobs.close(fd)


def _nothing() -> None:
    return None

