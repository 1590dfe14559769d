"""The bytes of files on disk: content named by its SHA-256, uploads by their number.

::

    <files dir>/blobs/3a/3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b
    <files dir>/partial/1042          (upload 1042, being received)
    <files dir>/trash/3a7b...-9f2c    (a blob no file refers to, being deleted)

No name a client chose ever reaches the file system: a blob's path is made from its hash
(checked to be 64 hex digits), a partial file's from the upload's number. Every function
here blocks (it is file I/O) and runs in the server's file I/O threads, never on the
reactor thread.

Durability: a partial file is flushed (``fdatasync``) every `SYNC_EVERY` bytes and before
it becomes a blob; a blob appears by a hard link of the complete partial file, and the
link is made durable by an ``fsync`` of its directory before the upload is acknowledged.
Between those, the kernel is asked to start writing each `WRITEBACK_EVERY` bytes out at
once (``sync_file_range``, Linux; it does not wait): the disk then takes an upload in
small steps, not in one burst at the flush, and the database's commits (every message
waits for one) never queue behind tens of megabytes.

One writer per partial file: whoever writes it holds an exclusive POSIX lock on it
(``lockf``), so two cluster nodes sharing the directory never write one upload at once;
the second gets `Busy`. Within one server process one `Upload` object owns the file.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import os
import time
from pathlib import Path
from typing import Any

from messenger.wire.validators import SHA256_RE

READ_BLOCK = 1024 * 1024
SYNC_EVERY = 16 * 1024 * 1024
WRITEBACK_EVERY = 1024 * 1024
_SYNC_FILE_RANGE_WRITE = 2
ORPHAN_AGE = 3600.0       # a blob file without a row this old is left over by a crash


class Busy(Exception):
    """Another process holds the partial file (an upload going on at another node)."""


class BlobMissing(Exception):
    """A blob's file is not there and cannot be made from a partial file."""


class BlobStore:
    """Paths and blocking operations under one files directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.partial = self.root / "partial"
        self.trash = self.root / "trash"

    def prepare(self) -> None:
        for path in (self.root, self.blobs, self.partial, self.trash):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)

    # -- paths --------------------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        if not SHA256_RE.fullmatch(sha256):
            raise ValueError("not a SHA-256 digest")
        return self.blobs / sha256[:2] / sha256

    def partial_path(self, upload_id: int) -> Path:
        return self.partial / str(int(upload_id))

    # -- partial files ------------------------------------------------------------------

    def open_partial(self, upload_id: int, size: int) -> tuple[int, int]:
        """Open (or create) upload ``upload_id``'s file and lock it: ``(fd, length)``.
        More bytes than the upload's ``size`` cannot be valid: they are cut off."""
        fd = os.open(self.partial_path(upload_id), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                     0o600)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EAGAIN, errno.EACCES):
                raise Busy(str(upload_id)) from None
            raise
        length = os.fstat(fd).st_size
        if length > size:
            os.ftruncate(fd, size)
            length = size
        return fd, length

    @staticmethod
    def hash_prefix(fd: int, length: int) -> hashlib._Hash:
        """A SHA-256 of the first ``length`` bytes of ``fd`` (to resume an upload)."""
        hasher = hashlib.sha256()
        offset = 0
        while offset < length:
            block = os.pread(fd, min(READ_BLOCK, length - offset), offset)
            if not block:
                raise OSError(errno.EIO, "the partial file is shorter than it was")
            hasher.update(block)
            offset += len(block)
        return hasher

    @staticmethod
    def write(fd: int, offset: int, data: memoryview | bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(fd, view, offset)
            offset += written
            view = view[written:]

    @staticmethod
    def sync(fd: int) -> None:
        os.fdatasync(fd)

    @staticmethod
    def start_writeback(fd: int, offset: int, length: int) -> None:
        """Start writing a range out, without waiting (nothing where the system call is
        missing: the periodic flush still bounds what waits)."""
        if _sync_file_range is not None:
            _sync_file_range(fd, ctypes.c_int64(offset), ctypes.c_int64(length),
                             _SYNC_FILE_RANGE_WRITE)

    @staticmethod
    def close(fd: int) -> None:
        """Close a partial file (its lock goes with it)."""
        os.close(fd)

    def remove_partial(self, upload_id: int) -> None:
        try:
            self.partial_path(upload_id).unlink()
        except FileNotFoundError:
            pass

    # -- blobs --------------------------------------------------------------------------

    def place(self, sha256: str, upload_id: int) -> None:
        """Make the complete partial file of ``upload_id`` the blob ``sha256`` (a hard
        link; nothing if the blob exists: the same content is stored once), durably."""
        target = self.blob_path(sha256)
        folder = target.parent
        made = not folder.exists()
        folder.mkdir(mode=0o700, exist_ok=True)
        if not target.exists():
            try:
                os.link(self.partial_path(upload_id), target)
            except FileExistsError:
                pass
        # Also when another upload linked it just now: its directory entry must be on
        # disk before this upload is acknowledged too.
        _fsync_dir(folder)
        if made:
            _fsync_dir(self.blobs)

    def ensure(self, sha256: str, upload_id: int | None) -> None:
        """Inside the transaction that records the blob: its file must exist. It was
        placed before; if a removal of the unused blob deleted it meanwhile, it is placed
        again from the partial file, else `BlobMissing`."""
        if self.blob_path(sha256).exists():
            return
        if upload_id is not None and self.partial_path(upload_id).exists():
            self.place(sha256, upload_id)
            return
        raise BlobMissing(sha256)

    def remove_blob(self, sha256: str) -> None:
        try:
            self.blob_path(sha256).unlink()
        except FileNotFoundError:
            pass

    def trash_blob(self, sha256: str) -> Path | None:
        """Take a blob out of ``blobs/`` at once (a rename: cheap inside the database
        transaction that deletes its row); `empty_trash` deletes it later."""
        target = self.trash / f"{sha256}-{os.urandom(4).hex()}"
        try:
            os.rename(self.blob_path(sha256), target)
        except FileNotFoundError:
            return None
        return target

    @staticmethod
    def empty_trash(paths: list[Path | None]) -> None:
        for path in paths:
            if path is not None:
                _unlink(str(path))

    def read(self, sha256: str, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes of a blob from ``offset``."""
        fd = os.open(self.blob_path(sha256), os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    # -- start-up sweeps ------------------------------------------------------------------

    def sweep_partials(self, live: set[int], now: float | None = None) -> int:
        """Remove partial files of uploads that no longer exist (a crash between the
        row's deletion and the file's) and were last written over `ORPHAN_AGE` ago (a
        file of an upload started after ``live`` was read is young); returns how many."""
        now = time.time() if now is None else now
        removed = 0
        for entry in os.scandir(self.partial):
            if (entry.name.isdigit() and int(entry.name) not in live
                    and now - entry.stat().st_mtime > ORPHAN_AGE):
                _unlink(entry.path)
                removed += 1
        return removed

    def sweep_blobs(self, known: set[str], now: float | None = None) -> int:
        """Remove blob files that have no row and were linked over `ORPHAN_AGE` ago (a
        crash between placing the file and committing the row); returns how many. A
        link changes the file's ctime, so a blob being finished right now is young."""
        now = time.time() if now is None else now
        removed = 0
        for entry in os.scandir(self.trash):     # deletions a crash interrupted
            _unlink(entry.path)
        for folder in os.scandir(self.blobs):
            if not folder.is_dir():
                continue
            for entry in os.scandir(folder.path):
                if entry.name in known or not SHA256_RE.fullmatch(entry.name):
                    continue
                if now - entry.stat().st_ctime > ORPHAN_AGE:
                    _unlink(entry.path)
                    removed += 1
        return removed


def _load_sync_file_range() -> Any:
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    return function


_sync_file_range = _load_sync_file_range()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
