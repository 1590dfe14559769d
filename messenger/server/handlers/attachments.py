"""A ``msg`` that carries a file (``attachment``): the plain message path plus the file.

The sender must be allowed to download the file it attaches (its own upload, or a file
posted in one of its conversations: forwarding needs no new upload). The server writes
the attachment as everyone sees it: the file's id, name (the sender's choice for this
message, else the upload's), size, MIME type and SHA-256 from its own records, and the
image fields the sender made (width, height, thumbnail; the server never decodes an
image). From then on every participant of the conversation may download the file (in a
group: every member whose membership covers the message). The message is acknowledged
after its commit, pushed to the recipient (or the group's members) and synced like any
other; a resend with the same request id is acknowledged with the first copy. A
recipient who blocked the sender refuses it as any message (403); a group refuses a
non-member, and a plain member of an announcement channel, as for any group message.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from messenger.server.directory import UserRef
from messenger.server.handlers import conversations, messages
from messenger.server.replies import Ack
from messenger.server.session import Session
from messenger.store import attachments, files
from messenger.store.errors import Unavailable
from messenger.wire import jim
from messenger.wire.errors import BadRequest, Forbidden, MessengerError, NotFound, ServerError

log = Logger()

IMAGE_FIELDS = ("width", "height", "thumbnail")


def attachment_view(row: files.FileRow, request: dict[str, Any]) -> dict[str, Any]:
    """The attachment object of a message (docs/PROTOCOL.md, "Attachments")."""
    view = {"file_id": row.id, "name": request.get("name") or row.name, "size": row.size,
            "mime": row.mime, "sha256": row.sha256}
    for name in IMAGE_FIELDS:
        if request.get(name) is not None:
            view[name] = request[name]
    return view


@defer.inlineCallbacks
def send(session: Session, request: dict[str, Any]) -> Any:
    """The ``msg`` handler's path for a message with ``attachment`` (direct or to a
    group)."""
    ctx = session.ctx
    sender = session.account
    assert sender is not None
    body = request.get("message") or ""
    messages.check_body(body, ctx.config.max_body)
    claimed = request.get("from")
    if claimed is not None and claimed.lower() != sender.name.lower():
        raise BadRequest("'from' must be your own account name")
    recipient = None
    if request.get("group") is None:
        recipient = ctx.directory.cached(request["to"])
        if recipient is None:
            recipient = yield ctx.directory.lookup(request["to"])
            if recipient is None:
                raise NotFound(f"no user named '{request['to']}'")
        ctx.blocks.check(recipient.id, sender.id, recipient.name)
    wanted = request["attachment"]
    row = yield ctx.db.read(files.readable_txn, sender.id, wanted["file_id"])
    if row is None:
        raise Forbidden(f"you cannot attach file {wanted['file_id']}: attach a file you"
                        " uploaded or one sent to you")
    view = attachment_view(row, wanted)
    encoded = jim.encode(view).decode("utf-8")
    messages.check_quota(session, body + encoded)
    now = ctx.clock.seconds()
    if recipient is None:
        group_id = request["group"]
        item: tuple[Any, ...] = (sender.id, group_id, request["id"], body, now,
                                 conversations.mention_candidates(body), row.id, encoded)
        result = yield _commit(ctx.files.group_messages, item)
        return _group_stored(result, session, group_id, body, view)
    item = (sender.id, recipient.id, request["id"], body, now, row.id, encoded)
    result = yield _commit(ctx.files.messages, item)
    return _stored(result, session, recipient, body, view)


class _Waiter:
    """A group commit token (``settle``) that fires a Deferred with the row's result."""

    __slots__ = ("deferred",)

    def __init__(self) -> None:
        self.deferred: defer.Deferred[Any] = defer.Deferred()

    def settle(self, result: Any) -> None:
        if isinstance(result, BaseException):
            self.deferred.errback(result)
        else:
            self.deferred.callback(result)


@defer.inlineCallbacks
def _commit(commit: Any, item: tuple[Any, ...]) -> Any:
    """Queue ``item`` for its group commit; the row's result once committed. Everything
    from there to the push runs in the commit's callback (no wait in between), so that
    in a cluster the push joins its batch in the message stream."""
    waiter = _Waiter()
    commit.submit(item, waiter)
    try:
        result = yield waiter.deferred
    except (MessengerError, Unavailable):
        raise
    except Exception:
        log.failure("A message with an attachment could not be stored")
        raise ServerError("the message could not be stored") from None
    return result


def _stored(result: Any, session: Session, recipient: UserRef, body: str,
            view: dict[str, Any]) -> Ack:
    if result == attachments.FILE_GONE:
        raise NotFound(f"file {view['file_id']} no longer exists")
    if type(result) is not tuple:
        messages._not_stored(session, recipient, result)
    msg_id, created, new = result
    if new:
        session.ctx.router.push_encoded(recipient.id, jim.encode({
            "action": "msg", "msg_id": msg_id, "time": created,
            "from": session.account.name, "to": recipient.name,  # type: ignore[union-attr]
            "message": body, "attachment": view}))
    return Ack(msg_id, created)


def _group_stored(result: Any, session: Session, group_id: int, body: str,
                  view: dict[str, Any]) -> Ack:
    """A group message with a file, committed: one push for the members online (the
    members at commit time, as for every group message), then the sender's answer."""
    if result == attachments.FILE_GONE:
        raise NotFound(f"file {view['file_id']} no longer exists")
    if type(result) is not tuple:
        conversations._not_stored(result)
    msg_id, created, new, recipients, mentions = result
    if new and recipients:
        session.ctx.router.push_many(recipients, {
            "action": "msg", "msg_id": msg_id, "time": created,
            "from": session.account.name, "group": group_id,  # type: ignore[union-attr]
            "message": body, "mentions": list(mentions), "attachment": view})
    return Ack(msg_id, created)
