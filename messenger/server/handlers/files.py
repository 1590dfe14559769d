"""File actions: start or resume an upload, finish it, cancel it, ask to download a file.

The bytes themselves travel in binary frames (`messenger.server.files.frames`); these
JSON requests frame a transfer. ``file_upload`` checks the size against the server's
largest file and the owner's quota before any byte is stored (the quota reserves the
declared size until the upload finishes or goes), and resumes the owner's unfinished
upload of the same content where the server's disk says it stopped. ``file_finish``
answers with a file id only once the content is verified (SHA-256), flushed to disk and
recorded. ``file_get`` checks that the caller may download the file, and from then on
this connection's reads of it are served; anyone else gets the same ``403`` whether or
not the file exists.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from messenger.server.files import frames
from messenger.server.session import Session
from messenger.server.states import LOGGED_IN
from messenger.store import files
from messenger.wire import codes
from messenger.wire.errors import BadRequest, Forbidden, NotFound


def file_view(row: files.FileRow) -> dict[str, Any]:
    return {"file_id": row.id, "name": row.name, "size": row.size, "mime": row.mime,
            "sha256": row.sha256}


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


@defer.inlineCallbacks
def file_upload(session: Session, request: dict[str, Any]) -> Any:
    """201 (a new upload) or 200 (resumed): ``upload_id`` and ``offset``, where the
    next chunk starts (the size when the server needs no bytes)."""
    ctx = session.ctx
    limits = ctx.config.files
    size = request["size"]
    if size > limits.max_size:
        raise BadRequest(f"the file is {_mib(size)}; this server accepts files of at most"
                         f" {_mib(limits.max_size)}", max_size=limits.max_size)
    owner = session.account.id  # type: ignore[union-attr]
    try:
        row, resumed = yield ctx.db.write(
            files.open_upload_txn, owner, request["sha256"], size, request["name"],
            request["mime"].lower(), ctx.clock.seconds(), limits.quota)
    except files.QuotaExceeded as over:
        raise Forbidden(f"not enough storage left: {_mib(over.used)} of your"
                        f" {_mib(over.quota)} are in use and this file needs {_mib(size)};"
                        " files you sent are freed once no message refers to them",
                        quota=over.quota, used=over.used) from None
    offset = yield ctx.files.attach(session, row)
    return {"response": codes.OK if resumed else codes.CREATED, "upload_id": row.id,
            "offset": offset, "size": size}


@defer.inlineCallbacks
def file_finish(session: Session, request: dict[str, Any]) -> Any:
    """201 with ``file`` once stored; 200 with the same ``file`` for a finish sent again."""
    row, new = yield session.ctx.files.finish(session, request["upload_id"])
    return {"response": codes.CREATED if new else codes.OK, "file": file_view(row)}


@defer.inlineCallbacks
def file_cancel(session: Session, request: dict[str, Any]) -> Any:
    upload_id = request["upload_id"]
    found = yield session.ctx.files.discard(upload_id,
                                            session.account.id)  # type: ignore[union-attr]
    if not found:
        raise NotFound(f"no upload {upload_id}")
    return {"response": codes.OK}


@defer.inlineCallbacks
def file_get(session: Session, request: dict[str, Any]) -> Any:
    """200 with ``file``: this connection may now read it (binary read frames)."""
    row = yield session.ctx.db.read(files.readable_txn,
                                    session.account.id,  # type: ignore[union-attr]
                                    request["file_id"])
    if row is None:
        raise Forbidden(frames.NOT_READABLE)
    frames.allow_reads(session, row.id, row.sha256, row.size)
    return {"response": codes.OK, "file": file_view(row)}


ROUTES = {
    "file_upload": (file_upload, LOGGED_IN, True),
    "file_finish": (file_finish, LOGGED_IN, True),
    "file_cancel": (file_cancel, LOGGED_IN),
    "file_get": (file_get, LOGGED_IN),
}
