"""One upload: hash the local file, send it in binary chunks, finish, maybe post it.

Steps (docs/PROTOCOL.md, "Files"): the file is described off the reactor thread (size,
SHA-256, MIME type, and for images the width, height and thumbnail,
`messenger.client.images`); ``file_upload`` tells the server and learns the offset to
start from (0, or where an earlier attempt stopped, or the end when the server already
holds this user's copy); chunks follow as upload-data frames, at most `WINDOW` bytes
beyond what the server confirmed with ``file_progress``; ``file_finish`` gets the file
id. For ``send_file`` the message with the attachment then goes through the outbox like
any message (sent again with its id until acknowledged).

After a lost connection, or a ``file_error`` push (a chunk the server refused), the
upload asks again with ``file_upload``: the server's answer is the offset to go on
from. The local file is read in blocks of `BLOCK` bytes in a thread.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger
from twisted.python.failure import Failure

from messenger.client import images
from messenger.client.errors import (
    Conflict,
    FileTooLarge,
    LocalFileError,
    MessengerError,
    NotConnected,
    NotFound,
    RequestTooLarge,
    ServiceUnavailable,
    TooManyRequests,
)
from messenger.client.transfers import RUNNING, Job, Transfer, Transfers
from messenger.wire import binary

if TYPE_CHECKING:
    from messenger.client.connection import Connection

BLOCK = 1024 * 1024          # bytes read from the local file at a time
WINDOW = 4 * 1024 * 1024     # bytes sent beyond what the server confirmed
MAX_RETRIES = 5              # refusals in a row (without progress) before giving up
FRAME_OVERHEAD = 64          # header and seal, with room to spare


@dataclass(frozen=True)
class LocalFile:
    size: int
    sha256: str
    mime: str
    image: images.ImageInfo | None


def describe(path: Path, name: str, mime: str | None) -> LocalFile:
    """Blocking: the size, SHA-256 and MIME type of a local file, and its image fields."""
    try:
        hasher = hashlib.sha256()
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(BLOCK), b""):
                hasher.update(block)
            size = stream.tell()
    except OSError as error:
        raise LocalFileError(f"cannot read {path}: {error.strerror or error}") from None
    mime = (mime or mimetypes.guess_type(name)[0] or "application/octet-stream").lower()
    info = images.image_info(path) if mime.startswith("image/") else None
    return LocalFile(size, hasher.hexdigest(), mime, info)


def read_block(path: Path, offset: int, length: int) -> bytes:
    """Blocking: ``length`` bytes of ``path`` from ``offset`` (fewer at its end)."""
    try:
        with open(path, "rb") as stream:
            stream.seek(offset)
            return stream.read(length)
    except OSError as error:
        raise LocalFileError(f"cannot read {path}: {error.strerror or error}") from None


class UploadJob(Job):
    log = Logger()

    def __init__(self, transfers: Transfers, path: Path, name: str | None = None,
                 mime: str | None = None, post: Any = None, max_size: int = 0) -> None:
        """``post(job)``: called with the finished job to send the message (send_file)."""
        self._transfers = transfers
        self.transfer = Transfer("upload", name or path.name, path)
        self._mime = mime
        self._post = post
        self._max_size = max_size
        self.local: LocalFile | None = None
        self.upload_id: int | None = None
        self.sent = 0                  # offset of the next chunk to send
        self.confirmed = 0             # bytes the server said it wrote
        self._connection: Connection | None = None
        self._generation = 0           # bumped per session: stale callbacks are dropped
        self._reading = False
        self._finishing = False
        self._retries = 0

    # -- the coordinator's calls --------------------------------------------------------

    def begin(self) -> None:
        d = self._transfers.run_blocking(describe, self.transfer.path, self.transfer.name,
                                         self._mime)
        d.addCallbacks(self._described, self._fail)

    def resume(self, connection: Connection) -> None:
        self._connection = connection
        self._generation += 1
        if self.local is not None and not self.transfer.finished and not self._posting:
            self._start()

    def cancel(self) -> None:
        connection, upload_id = self._connection, self.upload_id
        self._generation += 1
        if connection is not None and upload_id is not None and not self._posting:
            connection.request("file_cancel", {"upload_id": upload_id}).addErrback(
                lambda _: None)

    def push(self, message: dict[str, Any]) -> None:
        if message.get("action") == "file_progress":
            offset = message.get("offset")
            if type(offset) is int and offset > self.confirmed:
                self.confirmed = self.transfer.done = offset
                self._retries = 0
                self._transfers.progress(self.transfer)
                self._pump()
        elif message.get("action") == "file_error" and not self._finishing:
            self._refused(f"the server refused a chunk: {message.get('error')}")

    # -- steps --------------------------------------------------------------------------

    @property
    def _posting(self) -> bool:
        return self.transfer.file_id is not None

    def _described(self, local: LocalFile) -> None:
        self.local = local
        self.transfer.size = local.size
        if self._max_size and local.size > self._max_size:
            self._fail(FileTooLarge(f"{self.transfer.name} is {local.size} bytes; the"
                                    f" server accepts files of at most {self._max_size}",
                                    max_size=self._max_size))
            return
        connection = self._transfers.connection
        if connection is None:
            self.pause()
        else:
            self.resume(connection)

    def _start(self) -> None:
        connection, local = self._connection, self.local
        assert local is not None
        if connection is None:
            return
        self.transfer.state = RUNNING
        self._transfers.progress(self.transfer)
        generation = self._generation
        d = connection.request("file_upload", {
            "name": self.transfer.name, "size": local.size, "mime": local.mime,
            "sha256": local.sha256})
        d.addCallbacks(self._started, self._start_failed, callbackArgs=(generation,),
                       errbackArgs=(generation,))

    def _started(self, reply: dict[str, Any], generation: int) -> None:
        if generation != self._generation:
            return
        upload_id, offset = reply.get("upload_id"), reply.get("offset")
        if type(upload_id) is not int or type(offset) is not int:
            self._fail(MessengerError("the server's file_upload reply has no upload_id"))
            return
        self.upload_id = upload_id
        self._transfers.uploads[upload_id] = self
        self.sent = self.confirmed = self.transfer.done = offset
        self._finishing = False
        self._transfers.progress(self.transfer)
        self._pump()

    def _pump(self) -> None:
        local = self.local
        assert local is not None
        if self._connection is None or self._reading or self._finishing:
            return
        if self.sent >= local.size:
            self._finish()
            return
        if self.sent - self.confirmed >= WINDOW:
            return
        self._reading = True
        generation, offset = self._generation, self.sent
        length = min(BLOCK, local.size - offset)
        d = self._transfers.run_blocking(read_block, self.transfer.path, offset, length)
        d.addCallbacks(self._read, self._fail, callbackArgs=(generation, offset))

    def _read(self, block: bytes, generation: int, offset: int) -> None:
        self._reading = False
        connection = self._connection
        if generation != self._generation or connection is None or offset != self.sent:
            self._pump()
            return
        if not block:
            self._fail(LocalFileError(f"{self.transfer.path} became shorter while it was"
                                      " being sent"))
            return
        chunk = max(1024, self._chunk_size(connection))
        view = memoryview(block)
        try:
            for start in range(0, len(view), chunk):
                piece = view[start:start + chunk]
                connection.send_binary(binary.pack_data(binary.UPLOAD_DATA, self.upload_id,
                                                        offset + start, piece))
        except (NotConnected, RequestTooLarge):
            return      # the session is going; the next one resumes
        self.sent = offset + len(block)
        self._pump()

    @staticmethod
    def _chunk_size(connection: Connection) -> int:
        protocol = connection.protocol
        limit = protocol.max_send if protocol is not None else 16 * 1024
        return limit - binary.DATA_HEADER_SIZE - FRAME_OVERHEAD

    def _finish(self) -> None:
        connection = self._connection
        if connection is None or self.upload_id is None:
            return
        self._finishing = True
        generation = self._generation
        d = connection.request("file_finish", {"upload_id": self.upload_id})
        d.addCallbacks(self._finished, self._finish_failed, callbackArgs=(generation,),
                       errbackArgs=(generation,))

    def _finished(self, reply: dict[str, Any], generation: int) -> None:
        view = reply.get("file")
        if not isinstance(view, dict) or type(view.get("file_id")) is not int:
            self._fail(MessengerError("the server's file_finish reply has no file"))
            return
        self.transfer.file_id = view["file_id"]
        self.transfer.done = self.transfer.size or 0
        if self.upload_id is not None:
            self._transfers.uploads.pop(self.upload_id, None)
        if self._post is None:
            self._transfers.finished(self)
        else:
            self._post(self)

    # -- failures -----------------------------------------------------------------------

    def _start_failed(self, failure: Failure, generation: int) -> None:
        if generation != self._generation:
            return
        self._retry_or_fail(failure.value)

    def _finish_failed(self, failure: Failure, generation: int) -> None:
        self._finishing = False
        if generation != self._generation:
            return
        error = failure.value
        if isinstance(error, Conflict) and type(error.extra.get("offset")) is int:
            self._refused(error.message)      # bytes are missing: ask where to go on
        elif isinstance(error, NotFound):
            self.upload_id = None             # expired meanwhile: start over
            self._refused(error.message)
        else:
            self._retry_or_fail(error)

    def _retry_or_fail(self, error: BaseException) -> None:
        if isinstance(error, NotConnected):
            return                            # the next session resumes
        if isinstance(error, (TooManyRequests, ServiceUnavailable, Conflict)):
            wait = getattr(error, "retry_after", None) or error.extra.get("retry_after")
            self._retries += 1
            if self._retries > MAX_RETRIES:
                self._fail(error)
                return
            generation = self._generation
            self._transfers.clock.callLater(
                float(wait) if isinstance(wait, (int, float)) else 1.0,
                lambda: generation == self._generation and self._start())
            return
        self._fail(error)

    def _refused(self, why: str) -> None:
        """Ask the server where the upload stands and go on from there (a few times)."""
        self._retries += 1
        self._generation += 1
        if self._retries > MAX_RETRIES:
            self._fail(MessengerError(f"upload of {self.transfer.name} kept failing: {why}"))
            return
        self.log.info("Upload of {name} resumes: {why}", name=self.transfer.name, why=why)
        self._start()

    def _fail(self, error: Any) -> None:
        if isinstance(error, Failure):
            error = error.value
        if not isinstance(error, MessengerError):
            self.log.error("Upload of {name} failed: {error!r}", name=self.transfer.name,
                           error=error)
            error = LocalFileError(f"upload of {self.transfer.name} failed: {error}")
        self._generation += 1
        self._transfers.finished(self, error)

