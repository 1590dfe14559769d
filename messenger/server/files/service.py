"""`FilesService`: uploads in this process, the file I/O threads, and the housekeeping.

One per server, built by the `ServerContext` (``ctx.files``). It keeps the uploads this
process is receiving (`Upload`, by id), hands out lanes of its I/O threads, and runs the
housekeeping: uploads untouched for ``--upload-expiry-hours`` are deleted with their
partial files; files no message refers to, once their grace period is over, are deleted,
and then every blob no file refers to, with its file. Uploads whose connection went away
keep their open partial file (and hash) for `IDLE_RELEASE` seconds, so a client that
reconnects at once goes on without the file being read again; then the file is closed,
and its lock with it (another node of a cluster may take the upload over).

The binary frames of a connection are handled by `messenger.server.files.frames`, the
JSON actions by `messenger.server.handlers.files`; both call in here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from messenger.server.crypto import CryptoPool, Lane
from messenger.server.files.blobs import BlobMissing, BlobStore, Busy
from messenger.server.files.uploads import Mismatch, Upload
from messenger.server.states import State
from messenger.store import attachments, files
from messenger.store.groupcommit import GroupCommit
from messenger.wire.errors import Conflict, NotFound

if TYPE_CHECKING:
    from messenger.server.config import ServerConfig
    from messenger.store.db import Database

HOUSEKEEPING_INTERVAL = 600.0
FIRST_HOUSEKEEPING = 60.0
IDLE_INTERVAL = 30.0
IDLE_RELEASE = 60.0        # seconds an upload without a connection keeps its file open
SWEEP_INTERVAL = 24 * 3600.0  # leftovers of crashes (and of restores) are looked for daily
BATCH = 50                 # rows per housekeeping transaction (blob files are unlinked in it)


def _trash_into(trashed: list[Any], blobs: BlobStore, sha256: str) -> None:
    trashed.append(blobs.trash_blob(sha256))


class IOPool(CryptoPool):
    """The lane pool of `messenger.server.crypto`, with threads of its own for file I/O:
    a client downloading in a loop waits behind its own reads, not in front of others."""

    def __init__(self, reactor: Any, threads_max: int) -> None:
        super().__init__(reactor, threads_max)
        self._threads = ThreadPool(minthreads=0, maxthreads=threads_max, name="files")


class FilesService:
    log = Logger()

    def __init__(self, config: ServerConfig, clock: Any, db: Database, bounded: Any,
                 group_commit: Callable[[Database, Any], GroupCommit[Any, Any]] | None = None
                 ) -> None:
        self.config = config.files
        self.clock = clock
        self.db = bounded                     # reads and writes, bounded (503 when full)
        self.blobs = BlobStore(config.files_path)
        self.pool = IOPool(clock, max(1, self.config.io_threads))
        # Messages with an attachment commit in their own batches (the plain message
        # paths stay as they are); the one writer orders them all, and in a cluster
        # ``group_commit`` (`ServerContext.group_commit`) gives their batches a place in
        # the message stream like every other message batch. Tokens have ``settle``.
        make = group_commit or GroupCommit
        self.messages: GroupCommit[Any, Any] = make(db, attachments.insert_batch_txn)
        self.group_messages: GroupCommit[Any, Any] = make(
            db, attachments.GroupAttachments().insert_batch_txn)
        self.uploads: dict[int, Upload] = {}
        self._loops: list[task.LoopingCall] = []
        self._first: Any = None
        self._housekeeping: defer.Deferred[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self.blobs.prepare()
        self.pool.start()
        idle = task.LoopingCall(self.release_idle)
        idle.clock = self.clock
        idle.start(IDLE_INTERVAL, now=False)
        self._loops.append(idle)
        self._first = self.clock.callLater(FIRST_HOUSEKEEPING, self._begin_housekeeping)

    def _begin_housekeeping(self) -> None:
        """A minute after the start (a server that stops at once does none): the sweep,
        then daily; the housekeeping, then every `HOUSEKEEPING_INTERVAL`."""
        self._first = None
        for work, interval in ((self._sweep_logged, SWEEP_INTERVAL),
                               (self.housekeeping, HOUSEKEEPING_INTERVAL)):
            loop = task.LoopingCall(work)
            loop.clock = self.clock
            loop.start(interval, now=True)
            self._loops.append(loop)

    @defer.inlineCallbacks
    def stop(self) -> Any:
        """Stop the timers, close the open partial files, stop the threads."""
        if self._first is not None and self._first.active():
            self._first.cancel()
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []
        if self._housekeeping is not None:
            yield self._housekeeping           # a round under way ends first
        uploads, self.uploads = list(self.uploads.values()), {}
        closing = [upload.release() for upload in uploads]
        if closing:
            yield defer.DeferredList(closing, consumeErrors=True)
        self.pool.stop()

    def lane(self) -> Lane:
        return self.pool.lane()

    def run(self, fn: Any, *args: Any) -> defer.Deferred[Any]:
        """Run one blocking file operation in the I/O threads (a lane of its own)."""
        return self.pool.lane().submit(fn, *args)

    # -- uploads ------------------------------------------------------------------------

    def attach(self, session: Any, row: files.UploadRow) -> defer.Deferred[int]:
        """Make ``session`` the connection feeding this upload (started or resumed); fires
        with the offset the next chunk must have."""
        now = self.clock.seconds()
        upload = self.uploads.get(row.id)
        if upload is None:
            upload = self.uploads[row.id] = Upload(row, self.pool.lane(), self.blobs, now)
        else:
            upload.row = row
        upload.session = session
        upload.last_active = now
        d = upload.prepare()
        d.addErrback(self._not_opened, upload)
        return d

    def _not_opened(self, failure: Any, upload: Upload) -> Any:
        if self.uploads.get(upload.id) is upload and not upload.prepared:
            del self.uploads[upload.id]
        if failure.check(Busy):
            raise Conflict(f"upload {upload.id} is being received on another connection; try"
                           f" again in {IDLE_RELEASE:.0f} s", retry_after=IDLE_RELEASE)
        return failure

    @defer.inlineCallbacks
    def finish(self, session: Any, upload_id: int) -> Any:
        """Verify and store a complete upload; fires with ``(FileRow, new)``: ``new`` is
        False when it had been finished before (a finish sent again)."""
        owner = session.account.id
        upload = self.uploads.get(upload_id)
        if upload is None or upload.row.owner_id != owner:
            row = yield self.db.read(files.get_upload_txn, upload_id)
            if row is None or row.owner_id != owner:
                done = yield self.db.read(files.file_of_upload_txn, upload_id, owner)
                if done is not None:
                    return done, False
                raise NotFound(f"no upload {upload_id}: start it with file_upload")
            yield self.attach(session, row)
            upload = self.uploads[upload_id]
        if upload.finishing:
            raise Conflict(f"upload {upload_id} is being finished already")
        upload.finishing = True
        try:
            result = yield self._finish(upload, owner)
        finally:
            upload.finishing = False
        return result, True

    @defer.inlineCallbacks
    def _finish(self, upload: Upload, owner: int) -> Any:
        try:
            yield upload.complete()
        except Mismatch:
            yield self.discard(upload.id, owner)
            raise
        known = upload.row.known
        ensure = functools.partial(self.blobs.ensure, upload_id=None if known else upload.id)
        try:
            row = yield self.db.write(files.finish_txn, upload.id, owner,
                                      self.clock.seconds(), ensure)
        except BlobMissing:
            # A known upload whose content was deleted meanwhile: it needs its bytes.
            yield self.db.write(files.forget_known_txn, upload.id)
            upload.row = upload.row._replace(known=False)
            upload.prepared = False
            raise Conflict("the server no longer holds this content: resume the upload and"
                           " send it", offset=0) from None
        if row is None:
            raise NotFound(f"no upload {upload.id}: start it with file_upload")
        self.uploads.pop(upload.id, None)
        if not known:
            self.run(self.blobs.remove_partial, upload.id).addErrback(
                lambda f: self.log.failure("Removing a finished upload's file failed", f))
        return row

    @defer.inlineCallbacks
    def discard(self, upload_id: int, owner: int) -> Any:
        """Cancel an upload: its row, its partial file; True if there was one."""
        upload = self.uploads.pop(upload_id, None)
        if upload is not None and upload.row.owner_id != owner:
            self.uploads[upload_id] = upload
            upload = None
        if upload is not None:
            yield upload.release()
        deleted = yield self.db.write(files.delete_upload_txn, upload_id, owner)
        if deleted or upload is not None:
            yield self.run(self.blobs.remove_partial, upload_id)
        return bool(deleted or upload is not None)

    def release_idle(self, now: float | None = None) -> None:
        """Close the files of uploads nobody has fed for `IDLE_RELEASE` seconds."""
        now = self.clock.seconds() if now is None else now
        for upload in list(self.uploads.values()):
            session = upload.session
            alive = session is not None and session.state is not State.CLOSED
            if (not alive and not upload.finishing
                    and now - upload.last_active >= IDLE_RELEASE):
                del self.uploads[upload.id]
                upload.release().addErrback(
                    lambda f: self.log.failure("Closing an idle upload failed", f))

    # -- housekeeping -------------------------------------------------------------------

    def housekeeping(self, now: float | None = None) -> defer.Deferred[None]:
        """One round (never fails: a failure is logged, the next round tries again)."""
        when = self.clock.seconds() if now is None else now
        return self._exclusive(lambda: self._round(when), "File housekeeping failed")

    def _sweep_logged(self) -> defer.Deferred[Any]:
        return self._exclusive(self.sweep, "Sweeping the files directory failed")

    def _exclusive(self, work: Any, what: str) -> defer.Deferred[Any]:
        """One piece of housekeeping at a time (one asked for meanwhile waits for its
        next turn); `stop` waits for the one under way before the database closes."""
        if self._housekeeping is None:
            d = self._housekeeping = work()
            d.addErrback(lambda f: self.log.failure(what, f))
            d.addBoth(self._round_done)
        return self._housekeeping

    def _round_done(self, result: Any) -> None:
        self._housekeeping = None

    @defer.inlineCallbacks
    def _round(self, now: float) -> Any:
        active = [upload.id for upload in self.uploads.values()
                  if upload.session is not None and upload.session.state is not State.CLOSED]
        if active:
            yield self.db.write(files.touch_uploads_txn, active, now)
        expired_total = 0
        while True:
            expired = yield self.db.write(files.expire_uploads_txn,
                                          now - self.config.upload_expiry, BATCH)
            for upload_id in expired:
                upload = self.uploads.pop(upload_id, None)
                if upload is not None:
                    yield upload.release()
                yield self.run(self.blobs.remove_partial, upload_id)
            expired_total += len(expired)
            if len(expired) < BATCH:
                break
        files_total = blobs_total = 0
        while True:
            # The blob files leave blobs/ inside the transaction (a rename), and are
            # deleted after it: the database writer never waits for a large unlink.
            trashed: list[Any] = []
            deleted, blobs = yield self.db.write(
                files.collect_txn, now - self.config.unposted_grace, BATCH,
                functools.partial(_trash_into, trashed, self.blobs))
            yield self.run(self.blobs.empty_trash, trashed)
            files_total += deleted
            blobs_total += len(blobs)
            if deleted < BATCH and len(blobs) < BATCH:
                break
        if expired_total or files_total or blobs_total:
            self.log.info("Files housekeeping: {uploads} expired upload(s), {files} unused"
                          " file(s) and {blobs} unused blob(s) deleted",
                          uploads=expired_total, files=files_total, blobs=blobs_total)

    @defer.inlineCallbacks
    def sweep(self, now: float | None = None) -> Any:
        """At start and daily: remove partial files of uploads that are gone and blob
        files without a row (left by a crash at the wrong moment, or by a restore of an
        older database), once they are an hour old."""
        live = yield self.db.read(files.upload_ids_txn)
        known = yield self.db.read(files.blob_hashes_txn)
        partials = yield self.run(self.blobs.sweep_partials, live, now)
        orphans = yield self.run(self.blobs.sweep_blobs, known, now)
        if partials or orphans:
            self.log.info("Removed {partials} stale partial file(s) and {orphans} orphaned"
                          " blob file(s)", partials=partials, orphans=orphans)
