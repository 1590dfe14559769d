"""File transfers of the client core: the `Transfer` record front ends see, and the
coordinator that keeps every upload and download going across reconnects.

A transfer survives the connection: when the session ends, each transfer waits; when a
new session is up, each one asks the server where it stands (an upload by starting it
again: the server answers with the offset it has on disk; a download from the bytes it
has written to its ``.part`` file) and goes on from there. Front ends hear of it through
three event kinds, all carrying the same `Transfer` record: ``transfer_progress``,
``transfer_done`` and ``transfer_failed`` (docs/CLIENT.md, "Files").

The bytes travel in binary frames (`messenger.wire.binary`): `Transfers` receives the
server's file data and its ``file_progress`` / ``file_error`` pushes from the connection
and hands each to its job (`messenger.client.uploads`, `messenger.client.downloads`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from messenger.client.errors import ClientError, MessengerError, TransferCancelled
from messenger.client.events import Observers
from messenger.wire import binary
from messenger.wire.errors import BadRequest

if TYPE_CHECKING:
    from messenger.client.connection import Connection

UPLOAD = "upload"
DOWNLOAD = "download"
# States of a transfer, as front ends see them.
PREPARING = "preparing"   # reading the local file (size, SHA-256, image preview)
WAITING = "waiting"       # no connection: goes on by itself after the next login
RUNNING = "running"       # bytes are moving (or the server is being asked where it stands)
DONE = "done"
FAILED = "failed"
_ids = itertools.count(1)


class Transfer:
    """One upload or download and how far it got. The core updates it; front ends read
    it (events carry it) and wait for it with `when_done`."""

    def __init__(self, kind: str, name: str, path: Path, to: str | None = None) -> None:
        self.transfer_id = next(_ids)
        self.kind = kind                   # UPLOAD or DOWNLOAD
        self.name = name                   # the file's name as people see it
        self.path = path                   # the local file (read, or written at the end)
        self.to = to                       # send_file: the recipient of the message
        self.group: int | None = None      # send_group_file: the group of the message
        self.size: int | None = None       # bytes, once known
        self.done = 0                      # bytes the server confirmed / written locally
        self.state = PREPARING
        self.file_id: int | None = None    # the server's id, once known
        self.attachment: dict[str, Any] | None = None   # send_file: what the message carries
        self.message: dict[str, Any] | None = None      # send_file: the message's ack
        self.error: MessengerError | None = None
        self._waiters: list[defer.Deferred[Transfer]] = []

    @property
    def finished(self) -> bool:
        return self.state in (DONE, FAILED)

    @property
    def fraction(self) -> float:
        """0.0 to 1.0 (1.0 for an empty file)."""
        if not self.size:
            return 1.0 if self.state == DONE or self.size == 0 else 0.0
        return min(1.0, self.done / self.size)

    def when_done(self) -> defer.Deferred[Transfer]:
        """Fires with this record once done, or fails with its error."""
        if self.state == DONE:
            return defer.succeed(self)
        if self.state == FAILED:
            assert self.error is not None
            return defer.fail(self.error)
        waiter: defer.Deferred[Transfer] = defer.Deferred()
        self._waiters.append(waiter)
        return waiter

    def _settle(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if self.state == DONE:
                waiter.callback(self)
            else:
                waiter.errback(self.error)

    def __repr__(self) -> str:
        return (f"<Transfer {self.transfer_id} {self.kind} {self.name!r} {self.state}"
                f" {self.done}/{self.size}>")


class Job:
    """What the coordinator needs of an upload or a download."""

    transfer: Transfer
    _connection: Connection | None
    _generation: int          # bumped by every pause/resume/cancel: late replies are stale
    _transfers: Transfers

    def resume(self, connection: Connection) -> None: ...

    def pause(self) -> None:
        """The session is gone: wait for the next one (replies of this one are stale)."""
        self._connection = None
        self._generation += 1
        if not self.transfer.finished:
            self.transfer.state = WAITING
            self._transfers.progress(self.transfer)

    def cancel(self) -> None: ...
    def push(self, message: dict[str, Any]) -> None: ...
    def data(self, offset: int, data: memoryview) -> None: ...


class Transfers:
    """Every transfer of one client, the session they run on, and where events go."""

    log = Logger()

    def __init__(self, observers: Observers, run_blocking: Callable[..., Any],
                 clock: Any) -> None:
        self._observers = observers
        self.run_blocking = run_blocking
        self.clock = clock
        self.connection: Connection | None = None
        self._jobs: dict[int, Job] = {}
        self.uploads: dict[int, Job] = {}      # server upload id -> job
        self.downloads: dict[int, Job] = {}    # file id -> job

    def all(self) -> list[Transfer]:
        return [job.transfer for job in self._jobs.values()]

    def add(self, job: Job) -> Transfer:
        self._jobs[job.transfer.transfer_id] = job
        return job.transfer

    def job_of(self, transfer: Transfer) -> Job | None:
        return self._jobs.get(transfer.transfer_id)

    # -- the session --------------------------------------------------------------------

    def attach(self, connection: Connection) -> None:
        """A session is up: every transfer goes on."""
        self.connection = connection
        for job in list(self._jobs.values()):
            job.resume(connection)

    def detach(self) -> None:
        """The session ended: every transfer waits for the next."""
        self.connection = None
        for job in list(self._jobs.values()):
            job.pause()

    def file_data(self, plaintext: bytes) -> None:
        """A binary frame from the server: file data for a download."""
        try:
            frame = binary.parse(plaintext)
        except BadRequest as error:
            self.log.warn("Ignoring a malformed file frame: {error}", error=error.message)
            return
        if not isinstance(frame, binary.DataFrame) or frame.kind != binary.FILE_DATA:
            return
        job = self.downloads.get(frame.ident)
        if job is not None:
            job.data(frame.offset, frame.data)

    def file_push(self, message: dict[str, Any]) -> None:
        """``file_progress`` or ``file_error`` from the server."""
        upload_id, file_id = message.get("upload_id"), message.get("file_id")
        job = (self.uploads.get(upload_id) if type(upload_id) is int else
               self.downloads.get(file_id) if type(file_id) is int else None)
        if job is not None:
            job.push(message)

    # -- what jobs report -----------------------------------------------------------------

    def progress(self, transfer: Transfer) -> None:
        self._observers.emit("transfer_progress", transfer)

    def finished(self, job: Job, error: MessengerError | None = None) -> None:
        """The job is over: done, or failed with ``error``."""
        transfer = job.transfer
        if transfer.finished:
            return
        self._jobs.pop(transfer.transfer_id, None)
        for table in (self.uploads, self.downloads):
            for key in [key for key, value in table.items() if value is job]:
                del table[key]
        if error is None:
            transfer.state = DONE
            self._observers.emit("transfer_done", transfer)
        else:
            transfer.state = FAILED
            transfer.error = error
            self._observers.emit("transfer_failed", transfer)
        transfer._settle()

    def cancel(self, transfer: Transfer) -> None:
        job = self._jobs.get(transfer.transfer_id)
        if job is None:
            return
        job.cancel()
        self.finished(job, TransferCancelled(f"{transfer.kind} of {transfer.name} cancelled"))

    def abandon_all(self, error: ClientError) -> None:
        """Give every transfer up (logout, another account)."""
        for job in list(self._jobs.values()):
            job.cancel()
            self.finished(job, error)
