"""Binary file frames of one connection: upload data in, read requests in, file data out.

`handle` is called by the request pipeline (`messenger.server.requests.dispatch`) for
every phase-3 plaintext that is a binary frame (`messenger.wire.binary`). Binary frames
are not requests: they get no reply. A refused one is answered with a ``file_error``
push naming the upload or file (nothing of it was written), a malformed one with a
``400`` reply with ``"id": null``, as for a malformed JSON frame; both count as bad
requests (too many close the connection). Answers (file data) go back on the connection
the read came from, in the order of the reads.

They are not charged to the request rate (8 KiB per unit would cap a transfer at a few
hundred KiB/s); instead a connection's binary frames have their own bucket
(`FRAMES_PER_SECOND`), and past it the connection is not read for a moment, nothing is
refused. The memory one connection can make the server hold is bounded too: reading
stops while more than `UPLOAD_QUEUE` bytes of its chunks wait for the disk, or while its
reads waiting to be answered reach `MAX_READS` or `read_budget` bytes, which is at most
half of ``--max-queued-bytes``; the outbound's own gate stops reading while answers wait
for the socket, so what waits is bounded by that and the reads already let in. Answers
are written like replies (they answer the client's own reads): a client that reads
slowly is slowed down, never dropped.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from messenger.server.files.uploads import PROGRESS_STEP, Upload
from messenger.server.ratelimit import Bucket
from messenger.server.states import State
from messenger.wire import binary
from messenger.wire.errors import (
    BadRequest,
    Forbidden,
    MessengerError,
    NotAuthorised,
    NotFound,
    ServerError,
)

if TYPE_CHECKING:
    from messenger.server.crypto import Lane
    from messenger.server.files.service import FilesService
    from messenger.server.protocol import ServerProtocol

log = Logger()

FRAMES_PER_SECOND = 2000.0   # binary frames a connection may send, sustained ...
FRAMES_BURST = 4000          # ... after a burst of this many
UPLOAD_QUEUE = 2 * 1024 * 1024
MAX_READS = 8
NOT_READABLE = "you cannot download this file"


class SessionFiles:
    """What one connection has to do with files: what it may read, and its queues."""

    __slots__ = ("opened", "lane", "reads", "read_bytes", "upload_bytes", "bucket", "wait",
                 "__weakref__")

    def __init__(self) -> None:
        self.opened: dict[int, tuple[str, int]] = {}   # file id -> (sha256, size)
        self.lane: Lane | None = None
        self.reads = 0
        self.read_bytes = 0
        self.upload_bytes = 0
        self.bucket = Bucket(FRAMES_PER_SECOND, FRAMES_BURST)
        self.wait: Any = None


_states: weakref.WeakKeyDictionary[Any, SessionFiles] = weakref.WeakKeyDictionary()


def state_of(session: Any) -> SessionFiles:
    """The connection's file state (made on first use; it goes with the connection)."""
    state = _states.get(session)
    if state is None:
        state = _states[session] = SessionFiles()
    return state


def allow_reads(session: Any, file_id: int, sha256: str, size: int) -> None:
    """``file_get`` granted this connection the file: its reads are served from now on."""
    state_of(session).opened[file_id] = (sha256, size)


def handle(service: FilesService, session: ServerProtocol, plaintext: bytes) -> None:
    """One binary frame from ``session``."""
    if session.state is not State.READY:
        session.answer(None, NotAuthorised("log in first: file frames need an"
                                           " authenticated session"))
        return
    state = state_of(session)
    _charge(session, state)
    try:
        frame = binary.parse(plaintext)
    except BadRequest as error:
        _bad(session, None, error)
        return
    if isinstance(frame, binary.ReadFrame):
        _read(service, session, state, frame)
    elif frame.kind == binary.UPLOAD_DATA:
        _upload_data(service, session, state, frame)
    else:
        _bad(session, None, BadRequest("file data frames go from the server to the client"))


def _charge(session: ServerProtocol, state: SessionFiles) -> None:
    """Count one frame; past the bucket, stop reading until it has drained enough."""
    bucket, clock = state.bucket, session.ctx.clock
    bucket.record(clock.seconds(), 1)
    excess = bucket.level - bucket.burst
    if excess > 0 and state.wait is None:
        session.gate.hold("file frames")
        state.wait = clock.callLater(excess / bucket.rate, _refilled, session, state)


def _refilled(session: ServerProtocol, state: SessionFiles) -> None:
    state.wait = None
    session.gate.release("file frames")


def _bad(session: ServerProtocol, key: dict[str, Any] | None, error: MessengerError) -> None:
    """Refuse a frame: a ``file_error`` push (``key`` names the upload or file) or, for a
    frame that could not be read at all, a 400 reply without id."""
    if key is None:
        session.answer(None, error)
    else:
        session.push({"action": "file_error", **key, **error.to_reply(),
                      "time": session.ctx.clock.seconds()})
    if session.requests.bad_request(session):
        session.ctx.refusals.note("too many bad requests", session.address)
        session.close()


# -- upload data ------------------------------------------------------------------------

def _upload_data(service: FilesService, session: ServerProtocol, state: SessionFiles,
                 frame: binary.DataFrame) -> None:
    key = {"upload_id": frame.ident}
    upload = service.uploads.get(frame.ident)
    if upload is None or upload.session is not session:
        _bad(session, key, NotFound(f"no upload {frame.ident} on this connection: start or"
                                    " resume it with file_upload"))
        return
    if upload.failed:
        return      # refused already; it waits for the client to resume it
    size = len(frame.data)
    try:
        upload.check_chunk(frame.offset, size)
    except MessengerError as error:
        upload.failed = True
        _bad(session, key, error)
        return
    upload.last_active = session.ctx.clock.seconds()
    state.upload_bytes += size
    if state.upload_bytes > UPLOAD_QUEUE:
        session.gate.hold("file writes")
    d = upload.accept(frame.offset, frame.data)
    d.addCallbacks(_written, _not_written, callbackArgs=(session, state, upload, size),
                   errbackArgs=(session, state, upload, size))


def _queue_done(session: ServerProtocol, state: SessionFiles, size: int) -> None:
    state.upload_bytes -= size
    if state.upload_bytes <= UPLOAD_QUEUE:
        session.gate.release("file writes")


def _written(committed: int, session: ServerProtocol, state: SessionFiles, upload: Upload,
             size: int) -> None:
    _queue_done(session, state, size)
    upload.committed = committed
    if committed - upload.reported >= PROGRESS_STEP or committed == upload.row.size:
        upload.reported = committed
        feeder = upload.session
        if feeder is not None:
            feeder.push({"action": "file_progress", "upload_id": upload.id,
                         "offset": committed, "time": session.ctx.clock.seconds()})


def _not_written(failure: Any, session: ServerProtocol, state: SessionFiles, upload: Upload,
                 size: int) -> None:
    _queue_done(session, state, size)
    if upload.failed:
        return
    upload.failed = True
    upload.prepared = False
    error = failure.value
    if not isinstance(error, MessengerError):
        log.failure("Writing upload {upload} failed", failure, upload=upload.id)
        error = ServerError("the server could not store the data; resume the upload later")
    feeder = upload.session
    if feeder is not None:
        feeder.push({"action": "file_error", "upload_id": upload.id, **error.to_reply(),
                     "time": session.ctx.clock.seconds()})


# -- reads --------------------------------------------------------------------------------

def read_budget(session: ServerProtocol) -> int:
    """Bytes of answers one connection may have waiting: half of what it may have queued
    (``--max-queued-bytes``), so that file data never overflows it."""
    return session.ctx.config.max_queued_bytes // 2


def _read(service: FilesService, session: ServerProtocol, state: SessionFiles,
          frame: binary.ReadFrame) -> None:
    key = {"file_id": frame.file_id, "offset": frame.offset}
    opened = state.opened.get(frame.file_id)
    if opened is None:
        _bad(session, key, Forbidden(NOT_READABLE))
        return
    sha256, size = opened
    if frame.offset >= size:
        _bad(session, key, BadRequest(f"offset {frame.offset} is at or past the end of file"
                                      f" {frame.file_id} ({size} bytes)", size=size))
        return
    length = min(frame.length, size - frame.offset)
    if state.lane is None:
        state.lane = service.lane()
    state.reads += 1
    state.read_bytes += length
    if state.reads >= MAX_READS or state.read_bytes >= read_budget(session):
        session.gate.hold("file reads")
    d = state.lane.submit(service.blobs.read, sha256, frame.offset, length)
    d.addCallbacks(_answered, _unreadable, callbackArgs=(session, state, frame, length),
                   errbackArgs=(session, state, frame, length))


def _read_done(session: ServerProtocol, state: SessionFiles, length: int) -> None:
    state.reads -= 1
    state.read_bytes -= length
    if state.reads < MAX_READS and state.read_bytes < read_budget(session):
        session.gate.release("file reads")


def _answered(data: bytes, session: ServerProtocol, state: SessionFiles,
              frame: binary.ReadFrame, length: int) -> None:
    """Write the answer, then count the read done: in that order, the outbound's own
    gate (writes waiting for the socket) is held before the next read is let in."""
    if len(data) != length:
        log.error("File {file} is shorter on disk than recorded", file=frame.file_id)
        _bad(session, {"file_id": frame.file_id, "offset": frame.offset},
             ServerError("the file could not be read"))
    else:
        # An answer to the client's own read, as a reply is: bounded by the reads let
        # in, never the reason to drop a client that reads what it asked for.
        session.push_encoded(binary.pack_data(binary.FILE_DATA, frame.file_id,
                                              frame.offset, data), reply=True)
    _read_done(session, state, length)


def _unreadable(failure: Any, session: ServerProtocol, state: SessionFiles,
                frame: binary.ReadFrame, length: int) -> None:
    _read_done(session, state, length)
    log.failure("Reading file {file} failed", failure, file=frame.file_id)
    session.push({"action": "file_error", "file_id": frame.file_id, "offset": frame.offset,
                  **ServerError("the file could not be read").to_reply(),
                  "time": session.ctx.clock.seconds()})
