"""Conversations beyond the direct path: group messages, group history, read markers and
unread counts (``msg`` and ``history`` with ``group``, ``mark_read``, ``get_unread``).

A group message goes the direct messages' way (DESIGN.md section 8): queued for a group
commit (its own, beside the direct one; one database writer orders both), acknowledged
after the commit, stored once. The batch transaction checks membership and returns the
members to push to; the push is encoded once and handed to the router for all of them
(`Router.push_many`). ``mentions`` in the push lists the members written as ``@name`` in
the body, so each client can tell whether it is one of them.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from messenger.server.replies import Ack, Later, Page
from messenger.server.session import Session
from messenger.server.states import LOGGED_IN
from messenger.store import groupmsgs, groups, reads
from messenger.store.errors import Unavailable
from messenger.store.messages import SyncRow
from messenger.wire import codes, jim
from messenger.wire.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    MessengerError,
    NotFound,
    ServerError,
)

log = Logger()

NOT_MEMBER = "you are not a member of this group"
# "@name" where name is an account name, not inside a word or an e-mail address.
MENTION_RE = re.compile(r"(?<![A-Za-z0-9_.@-])@([A-Za-z0-9][A-Za-z0-9_.-]{2,31})")
MAX_MENTIONS = 50


def mention_candidates(body: str) -> tuple[str, ...]:
    """The lower-case names written as ``@name`` in ``body`` (at most `MAX_MENTIONS`).
    A name at the end of a sentence ("thanks @bob.") is tried without the trailing
    punctuation too; the store keeps only the names of members."""
    if "@" not in body:
        return ()
    names: list[str] = []
    for match in MENTION_RE.finditer(body):
        name = match.group(1).lower()
        names.append(name)
        trimmed = name.rstrip("._-")
        if trimmed != name and len(trimmed) >= 3:
            names.append(trimmed)
        if len(names) >= MAX_MENTIONS:
            break
    return tuple(dict.fromkeys(names))


def extra_view(view: dict[str, Any], extra: tuple[Any, ...]) -> dict[str, Any]:
    """Add ``reply_to``, ``edited`` and ``deleted`` (the `replies.EXTRA` columns at the
    end of a message row) to its view, each only when set: a plain message keeps the
    shape it always had."""
    reply_to, edited, deleted = extra
    if reply_to is not None:
        view["reply_to"] = reply_to
    if edited is not None:
        view["edited"] = edited
    if deleted is not None:
        view["deleted"] = deleted
    return view


def group_message_view(row: groupmsgs.GroupMessageRow) -> dict[str, Any]:
    msg_id, created, sender, group_id, body, mentions = row[:6]
    view = extra_view({"msg_id": msg_id, "time": created, "from": sender, "group": group_id,
                       "message": body, "mentions": mentions.split() if mentions else []},
                      row[6:9])
    attachment = row[-1]
    if attachment is not None:
        view["attachment"] = jim.decode(attachment.encode("utf-8"))
    return view


def sync_view(row: SyncRow) -> dict[str, Any]:
    """A message of a sync: direct (``to``) or group (``group`` and ``mentions``), with
    its ``attachment`` when it carries a file, and ``reply_to``, ``edited``, ``deleted``
    when they apply."""
    msg_id, created, sender, recipient, group_id, body, mentions = row[:7]
    attachment = row[-1]
    if group_id is None:
        view = {"msg_id": msg_id, "time": created, "from": sender, "to": recipient,
                "message": body}
    else:
        view = {"msg_id": msg_id, "time": created, "from": sender, "group": group_id,
                "message": body, "mentions": mentions.split() if mentions else []}
    if attachment is not None:
        view["attachment"] = jim.decode(attachment.encode("utf-8"))
    return extra_view(view, row[7:10])


# -- sending ------------------------------------------------------------------------------

def send(session: Session, request: dict[str, Any], body: str) -> _GroupSent:
    """Queue a group message (body, quota and ``from`` already checked by ``msg``); its
    `Ack` comes after the commit, through a `Later`."""
    ctx = session.ctx
    sent = _GroupSent(session, request["id"], request["group"], body,
                      request.get("reply_to"))
    # Group messages are stored even with persistence off (a benchmark switch): their
    # membership check lives in the database.
    item: tuple[Any, ...] = (session.account.id, sent.group_id, sent.request_id, body,  # type: ignore[union-attr]
                             ctx.clock.seconds(), mention_candidates(body))
    if sent.reply_to is not None:
        item += (sent.reply_to,)
    ctx.group_messages.submit(item, sent)
    return sent


class _GroupSent(Later):
    """One group message on its way to the database; `settle` runs after its batch
    committed: one push for the members online, then the sender's answer."""

    __slots__ = ("group_id", "body", "reply_to")

    def __init__(self, session: Session, request_id: str, group_id: int, body: str,
                 reply_to: int | None = None) -> None:
        Later.__init__(self, session, request_id)
        self.group_id = group_id
        self.body = body
        self.reply_to = reply_to

    def settle(self, result: Any) -> None:
        try:
            outcome: Any = self._stored(result)
        except MessengerError as error:
            outcome = error
        Later.settle(self, outcome)

    def _stored(self, result: Any) -> Ack:
        if type(result) is not tuple:
            _not_stored(result, self.reply_to)
        msg_id, created, new, recipients, mentions = result
        if new and recipients:
            session = self.session
            push = {"action": "msg", "msg_id": msg_id, "time": created,
                    "from": session.account.name, "group": self.group_id,
                    "message": self.body, "mentions": list(mentions)}
            if self.reply_to is not None:
                push["reply_to"] = self.reply_to
            session.ctx.router.push_many(recipients, push)
        return Ack(msg_id, created)


def reply_elsewhere(reply_to: int | None) -> NotFound:
    """The refusal of a reply whose quoted message is not of its conversation."""
    return NotFound(f"'reply_to': no message {reply_to} in this conversation (a reply"
                    " quotes an earlier message of the same conversation)")


def _not_stored(result: Any, reply_to: int | None = None) -> None:
    """A refusal from the batch transaction, or a failed transaction."""
    if isinstance(result, Unavailable):
        raise result  # a store that is down answers 503 (the outage is logged once)
    if isinstance(result, BaseException):
        log.failure("A group message could not be stored", Failure(result))
        raise ServerError("the message could not be stored")
    if result == groupmsgs.ANNOUNCE_ONLY:
        raise Forbidden("only the group's owner and admins may post in this announcement"
                        " channel")
    if result == groupmsgs.ID_REUSED:
        raise Conflict("this request id was already used for another message")
    if result == groupmsgs.REPLY_ELSEWHERE:
        raise reply_elsewhere(reply_to)
    raise Forbidden(NOT_MEMBER)


# -- reading ------------------------------------------------------------------------------

@defer.inlineCallbacks
def history(session: Session, request: dict[str, Any]) -> Any:
    """One page of a group's messages the caller may see, oldest first, ids below
    ``before``; when cut to fit a frame, the newest stay."""
    limit = request.get("limit") or 50
    try:
        rows = yield session.ctx.db.read(groupmsgs.history_txn, session.account.id,
                                         request["group"], request.get("before"), limit + 1,
                                         jim.MAX_SERVER_PAYLOAD)
    except groups.NotMember:
        raise Forbidden(NOT_MEMBER) from None
    more = len(rows) > limit
    if more:
        rows = rows[1:]
    return Page([group_message_view(r) for r in rows], more=more, keep_last=True)


@defer.inlineCallbacks
def mark_read(session: Session, request: dict[str, Any]) -> Any:
    """200 with ``read_up_to``: the conversation is read up to that message id (markers
    only move forward, and never past the newest message)."""
    ctx = session.ctx
    me = session.account
    up_to = request["up_to"]
    group_id = request.get("group")
    if group_id is not None:
        try:
            marker = yield ctx.db.write(reads.mark_group_txn, me.id, group_id, up_to)
        except groups.NotMember:
            raise Forbidden(NOT_MEMBER) from None
        return {"response": codes.OK, "read_up_to": marker}
    other = yield ctx.directory.lookup(request["with"])
    if other is None:
        raise NotFound(f"no user named '{request['with']}'")
    if other.id == me.id:
        raise BadRequest("'with' must name another user")
    marker = yield ctx.db.write(reads.mark_direct_txn, me.id, other.id, up_to)
    return {"response": codes.OK, "read_up_to": marker}


@defer.inlineCallbacks
def get_unread(session: Session, request: dict[str, Any]) -> Any:
    """200: ``direct`` and ``groups``, the conversations with unread messages, from the
    markers kept on the server (what a client shows after logging in anywhere)."""
    me = session.account
    direct, group_rows = yield session.ctx.db.read(reads.unread_txn, me.id, me.name)
    return {"response": codes.OK,
            "direct": [{"with": name, "unread": unread, "read_up_to": marker}
                       for name, unread, marker in direct],
            "groups": [{"group_id": group_id, "unread": unread, "mentions": mentioned,
                        "read_up_to": marker}
                       for group_id, unread, mentioned, marker in group_rows]}


ROUTES = {
    "mark_read": (mark_read, LOGGED_IN),
    "get_unread": (get_unread, LOGGED_IN, True),
}
