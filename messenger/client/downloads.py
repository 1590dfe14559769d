"""One download: ask for the file, read it in chunks into ``NAME.part``, verify, rename.

Steps (docs/PROTOCOL.md, "Files"): ``file_get`` says whether this user may read the file
and gives its size and SHA-256; read frames ask for `READ_SIZE` bytes at a time, at most
`WINDOW` bytes ahead of what was written to disk, so neither side holds more than that;
the data frames are written in order to ``PATH.part`` off the reactor thread and hashed
as they come; once all bytes are there, the SHA-256 is checked and the ``.part`` file
renamed to ``PATH`` (a file with the wrong hash is removed: `DownloadCorrupt`).

A download cut off goes on after the next login from the bytes its ``.part`` file holds
(they are hashed once more), even after the client itself was restarted.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from messenger.client.errors import (
    DownloadCorrupt,
    FileNotReadable,
    LocalFileError,
    MessengerError,
    NotConnected,
)
from messenger.client.failures import reply_error
from messenger.client.transfers import RUNNING, Job, Transfer, Transfers
from messenger.wire import binary, codes

if TYPE_CHECKING:
    from messenger.client.connection import Connection

READ_SIZE = binary.MAX_READ   # bytes asked for by one read frame: the most one answer holds
WINDOW = 4 * 1024 * 1024      # bytes asked for beyond what is written to disk
MAX_RETRIES = 5
HASH_BLOCK = 1024 * 1024


class PartFile:
    """The ``.part`` file and the SHA-256 of what it holds (used in one thread at a time:
    the job chains its operations)."""

    def __init__(self, part: Path, size: int) -> None:
        self.part = part
        try:
            part.parent.mkdir(parents=True, exist_ok=True)
            mode = "r+b" if part.exists() else "w+b"
            self.stream = open(part, mode)  # noqa: SIM115 (closed by complete / close)
            length = self.stream.seek(0, os.SEEK_END)
            if length > size:
                self.stream.truncate(0)
                length = self.stream.seek(0)
            self.hasher = hashlib.sha256()
            self.stream.seek(0)
            remaining = length
            while remaining:
                block = self.stream.read(min(HASH_BLOCK, remaining))
                self.hasher.update(block)
                remaining -= len(block)
        except OSError as error:
            raise LocalFileError(f"cannot write {part}: {error.strerror or error}") from None
        self.length = length

    def write(self, data: bytes | memoryview) -> None:
        try:
            self.stream.write(data)
        except OSError as error:
            raise LocalFileError(f"cannot write {self.part}: {error.strerror or error}"
                                 ) from None
        self.hasher.update(data)

    def complete(self, sha256: str, target: Path) -> None:
        """Flush, check the hash, rename; a wrong hash removes the part file."""
        try:
            self.stream.flush()
            os.fsync(self.stream.fileno())
            self.stream.close()
            if self.hasher.hexdigest() != sha256:
                self.part.unlink()
                raise DownloadCorrupt(f"{target.name}: the downloaded bytes do not have the"
                                      " file's SHA-256; download it again")
            os.replace(self.part, target)
        except OSError as error:
            raise LocalFileError(f"cannot write {target}: {error.strerror or error}"
                                 ) from None

    def close(self, remove: bool = False) -> None:
        self.stream.close()
        if remove:
            self.part.unlink(missing_ok=True)


class DownloadJob(Job):
    log = Logger()

    def __init__(self, transfers: Transfers, file_id: int, path: Path) -> None:
        self._transfers = transfers
        self.transfer = Transfer("download", path.name, path)
        self.transfer.file_id = file_id
        self.part_path = path.with_name(path.name + ".part")
        self.view: dict[str, Any] | None = None
        self._part: PartFile | None = None
        self._connection: Connection | None = None
        self._generation = 0
        self.received = 0           # bytes accepted in order (written or being written)
        self.written = 0
        self.requested = 0
        self._writes: defer.Deferred[Any] = defer.succeed(None)
        self._opening = False
        self._completing = False
        self._retries = 0

    @property
    def file_id(self) -> int:
        assert self.transfer.file_id is not None
        return self.transfer.file_id

    # -- the coordinator's calls --------------------------------------------------------

    def begin(self) -> None:
        self._transfers.downloads[self.file_id] = self
        connection = self._transfers.connection
        if connection is None:
            self.pause()
        else:
            self.resume(connection)

    def resume(self, connection: Connection) -> None:
        self._connection = connection
        self._generation += 1
        if self._completing:
            return
        self.transfer.state = RUNNING
        generation = self._generation
        d = connection.request("file_get", {"file_id": self.file_id})
        d.addCallbacks(self._granted, self._refused, callbackArgs=(generation,),
                       errbackArgs=(generation,))

    def cancel(self) -> None:
        self._generation += 1
        part, self._part = self._part, None
        if part is not None:
            self._writes.addBoth(lambda _: self._transfers.run_blocking(part.close, True))

    def push(self, message: dict[str, Any]) -> None:
        if message.get("action") != "file_error":
            return
        error = reply_error("file_get", message)
        if message.get("response") in (codes.FORBIDDEN, codes.BAD_REQUEST):
            self._fail(error)
        else:
            self._retry(error)

    def data(self, offset: int, data: memoryview) -> None:
        part = self._part
        if part is None or offset != self.received or self._completing:
            return                  # stale: asked on an earlier connection
        size = self.transfer.size or 0
        if offset + len(data) > size:
            self._fail(MessengerError(f"the server sent more than {size} bytes"))
            return
        self.received += len(data)
        self._writes.addCallback(lambda _: self._transfers.run_blocking(part.write, data))
        self._writes.addCallbacks(self._written, self._fail, callbackArgs=(len(data),))
        self._pump()

    # -- steps --------------------------------------------------------------------------

    def _granted(self, reply: dict[str, Any], generation: int) -> None:
        if generation != self._generation:
            return
        view = reply.get("file")
        if not isinstance(view, dict) or type(view.get("size")) is not int:
            self._fail(MessengerError("the server's file_get reply has no file"))
            return
        self.view = view
        self.transfer.size = view["size"]
        if self._part is None:
            if not self._opening:
                self._opening = True
                d = self._transfers.run_blocking(PartFile, self.part_path, view["size"])
                d.addCallbacks(self._opened, self._fail, callbackArgs=(generation,))
            return
        # Bytes of the last connection still being written go first; then read again
        # from where the file ends.
        self._writes.addCallback(self._read_again, generation)

    def _read_again(self, _: Any, generation: int) -> None:
        if generation == self._generation:
            self.received = self.requested = self.written
            self._pump()

    def _opened(self, part: PartFile, generation: int) -> None:
        self._opening = False
        if self.transfer.finished:
            self._transfers.run_blocking(part.close)
            return
        self._part = part
        self.received = self.written = self.requested = part.length
        self.transfer.done = part.length
        self._transfers.progress(self.transfer)
        if generation == self._generation:
            self._pump()

    def _pump(self) -> None:
        connection, size = self._connection, self.transfer.size or 0
        if connection is None or self._part is None:
            return
        if self.written >= size:
            self._complete()
            return
        try:
            while self.requested < size:
                length = min(READ_SIZE, size - self.requested)
                if self.requested + length - self.written > WINDOW:
                    break
                connection.send_binary(binary.pack_read(self.file_id, self.requested, length))
                self.requested += length
        except NotConnected:
            return

    def _written(self, _: Any, length: int) -> None:
        self.written += length
        self.transfer.done = self.written
        self._retries = 0
        self._transfers.progress(self.transfer)
        self._pump()

    def _complete(self) -> None:
        part, view = self._part, self.view
        if self._completing or part is None or view is None:
            return
        self._completing = True
        d = self._writes.addCallback(lambda _: self._transfers.run_blocking(
            part.complete, view["sha256"], self.transfer.path))
        d.addCallbacks(lambda _: self._transfers.finished(self), self._fail)

    # -- failures -----------------------------------------------------------------------

    def _refused(self, failure: Failure, generation: int) -> None:
        if generation != self._generation or failure.check(NotConnected):
            return
        error = failure.value
        if isinstance(error, FileNotReadable) or not isinstance(error, MessengerError) or (
                error.code < 500 and error.code != codes.TOO_MANY_REQUESTS):
            self._fail(error)
        else:
            self._retry(error)

    def _retry(self, error: MessengerError) -> None:
        self._retries += 1
        if self._retries > MAX_RETRIES:
            self._fail(error)
            return
        connection = self._connection
        if connection is not None:
            wait = error.extra.get("retry_after", 1.0)
            self._transfers.clock.callLater(float(wait) if isinstance(wait, (int, float))
                                            else 1.0, self._again, self._generation)

    def _again(self, generation: int) -> None:
        if generation == self._generation and self._connection is not None:
            self.resume(self._connection)

    def _fail(self, error: Any) -> None:
        if isinstance(error, Failure):
            error = error.value
        if not isinstance(error, MessengerError):
            error = LocalFileError(f"download of {self.transfer.name} failed: {error}")
        if self.transfer.finished:
            return
        self.cancel()
        self._transfers.finished(self, error)
