"""What messenger-cli prints: one line per item (or one JSON object), events as lines,
and every failure as one line and an exit status (`explain`)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from twisted.internet import defer

from messenger.client.cli.options import (
    EXIT_CONNECTION,
    EXIT_LOGIN,
    EXIT_REFUSED,
    PROG,
    CliError,
)
from messenger.client.edits import MessageChange
from messenger.client.errors import (
    ClientError,
    DownloadCorrupt,
    HmacError,
    LocalFileError,
    MessageTooLong,
    MessengerError,
    PasswordNeeded,
    RequestTooLarge,
    ServerKeyChanged,
)
from messenger.client.events import (
    Broadcast,
    CallEvent,
    IncomingMessage,
    Notice,
    PresenceChange,
)
from messenger.client.failures import describe
from messenger.client.groupevents import (
    GroupCreated,
    GroupDeleted,
    GroupMemberAdded,
    GroupMemberRemoved,
    GroupRoleChanged,
    GroupUpdated,
)


def _when(stamp: Any) -> str:
    if not isinstance(stamp, (int, float)):
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def format_message(message: dict[str, Any]) -> str:
    """``#<id> <time> <from> -> <to>: <text>``; for a group message the target is
    ``group #<id>``, ``@`` marks where members are mentioned, and a file is shown as
    ``[file <id>: <name>, <size> bytes]``."""
    group = message.get("group")
    to = message.get("to") if group is None else f"group #{group}"
    mentions = message.get("mentions") or ()
    tail = f" [mentions: {', '.join(mentions)}]" if mentions else ""
    attachment = message.get("attachment")
    if isinstance(attachment, dict):
        tail += (f" [file {attachment.get('file_id')}: {attachment.get('name')},"
                 f" {attachment.get('size')} bytes]")
    text = message.get("message")
    if message.get("deleted") is not None:
        text = "(message deleted)"
    elif message.get("edited") is not None:
        tail += " (edited)"
    if message.get("reply_to") is not None:
        text = f"[re #{message['reply_to']}] {text}"
    return (f"#{message.get('msg_id')} {_when(message.get('time'))}"
            f" {message.get('from')} -> {to}: {text}{tail}")


def format_event(event: Any) -> str | None:
    """One line for a push, or None for kinds tail does not print."""
    if isinstance(event, IncomingMessage):
        return format_message(event_json(event))
    if isinstance(event, MessageChange):
        what = "deleted" if event.is_deleted else f"edited: {event.text}"
        return f"~ #{event.msg_id} {what} (by {event.by})"
    if isinstance(event, PresenceChange):
        if event.status == "deleted":
            return f"* {event.account_name}'s account was deleted"
        return f"* {event.account_name} is {event.status}"
    if isinstance(event, Broadcast):
        return (f"[broadcast #{event.broadcast_id}] {_when(event.time)} {event.sender}:"
                f" {event.text}")
    if isinstance(event, Notice):
        return f"! {event.message}"
    if isinstance(event, CallEvent):
        peer = event.fields.get("from") or event.fields.get("user_id") or ""
        return f"~ {event.kind} {peer}".rstrip()
    return _group_line(event)


def _by(by: str) -> str:
    """Who made a group change: an account, or (empty) the server's operator."""
    return by or "the server's administrator"


GROUP_ACTIONS = {GroupCreated: "group_created", GroupUpdated: "group_updated",
                 GroupMemberAdded: "group_member_added",
                 GroupMemberRemoved: "group_member_removed",
                 GroupRoleChanged: "group_role_changed", GroupDeleted: "group_deleted"}
REMOVED_HOW = {"left": "left", "deleted": "is gone (account deleted)"}


def _group_line(event: Any) -> str | None:
    """One line for a change to one of the user's groups (kind ``group``), else None."""
    data = _group_json(event)
    if data is None:
        return None
    action, by = data["event"], _by(data["by"])
    who = data.get("account_name")
    how = REMOVED_HOW.get(data.get("reason", ""), f"removed by {by}")
    what = {"group_created": f"created by {by}",
            "group_updated": f"changed by {by}",
            "group_member_added": f"{who} added by {by}",
            "group_member_removed": f"{who} {how}",
            "group_role_changed": f"{who} is now {data.get('role')} (by {by})",
            "group_deleted": f"deleted by {by}"}[action]
    name = f" {data['name']!r}" if "name" in data else ""
    return f"~ group #{data['group_id']}{name}: {what}"


def _group_json(event: Any) -> dict[str, Any] | None:
    """``event_json`` of a group change: its push's action and fields."""
    action = GROUP_ACTIONS.get(type(event))
    if action is None:
        return None
    out: dict[str, Any] = {"event": action, "by": event.by, "time": event.time}
    group = getattr(event, "group", None)
    if group is not None:
        out.update(group_id=group.group_id, name=group.name)
        if action == "group_updated":
            out.update(topic=group.topic, announce_only=group.announce_only)
    for key in ("group_id", "name", "account_name", "role", "reason"):
        if hasattr(event, key):
            out[key] = getattr(event, key)
    return out


def event_json(event: Any) -> dict[str, Any]:
    if isinstance(event, IncomingMessage):
        out: dict[str, Any] = {"event": "message", "msg_id": event.msg_id,
                               "time": event.time, "from": event.sender,
                               "to": event.recipient, "message": event.text}
        if event.group is not None:
            out.update(to=None, group=event.group, mentions=list(event.mentions))
        if event.attachment is not None:
            a = event.attachment
            out["attachment"] = {"file_id": a.file_id, "name": a.name, "size": a.size,
                                 "mime": a.mime}
        for key in ("reply_to", "edited", "deleted"):
            if getattr(event, key) is not None:
                out[key] = getattr(event, key)
        return out
    if isinstance(event, MessageChange):
        return {"event": "message_changed", "change_id": event.change_id,
                "msg_id": event.msg_id, "kind": event.kind, "message": event.text,
                "by": event.by}
    if isinstance(event, PresenceChange):
        return {"event": "presence", "account_name": event.account_name,
                "status": event.status}
    if isinstance(event, Broadcast):
        return {"event": "broadcast", "broadcast_id": event.broadcast_id,
                "time": event.time, "from": event.sender, "message": event.text}
    if isinstance(event, Notice):
        return {"event": "notice", "level": event.level, "message": event.message}
    if isinstance(event, CallEvent):
        return {"event": event.kind, **{k: v for k, v in event.fields.items()
                                        if k not in ("key", "token")}}
    return _group_json(event) or {"event": type(event).__name__}


class Output:
    def __init__(self, as_json: bool, out: Any = None, err: Any = None) -> None:
        self.as_json = as_json
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def line(self, text: str, data: Any = None) -> None:
        if self.as_json:
            text = json.dumps(data if data is not None else {"text": text},
                              ensure_ascii=False)
        self.out.write(text + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()


def explain(error: BaseException) -> tuple[str, int]:
    """The one-line message and exit status for a failure."""
    if isinstance(error, CliError):
        return error.message, error.status
    if isinstance(error, ServerKeyChanged):
        return error.message, EXIT_CONNECTION
    if isinstance(error, HmacError):
        return (f"{error.message} (the shared secret does not match the server's: check"
                " --secret-file)", EXIT_CONNECTION)
    if isinstance(error, PasswordNeeded):
        return (f"{error.message} (run: {PROG} login NAME)", EXIT_LOGIN)
    if isinstance(error, (MessageTooLong, RequestTooLarge, LocalFileError, DownloadCorrupt)):
        return error.message, EXIT_REFUSED
    if isinstance(error, ClientError):
        return describe(error), EXIT_CONNECTION
    if isinstance(error, MessengerError):
        return error.message, EXIT_REFUSED
    if isinstance(error, defer.TimeoutError):
        return "timed out waiting for the server", EXIT_CONNECTION
    text = describe(error)
    return (f"cannot connect: {text}", EXIT_CONNECTION)
