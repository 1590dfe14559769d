"""What the client core tells front ends about groups: the records of the ``group``
observers (one per group push of docs/PROTOCOL.md) and of the ``unread`` observers.

A front end subscribes once, ``client.subscribe("group", on_group)``, and tells the
records apart by class. Group *messages* are not here: they are `IncomingMessage` records
of the ``message`` observers (``group`` set, ``mentions`` listed), in the one ``msg_id``
sequence with direct messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """A group as a push or reply describes it (``members``, ``owner`` and ``role`` only
    where the server sent them)."""

    group_id: int
    name: str
    topic: str = ""
    announce_only: bool = False
    created: float = 0.0
    created_by: str = ""
    members: int | None = None          # how many members
    owner: str | None = None
    role: str | None = None             # the user's own role (in replies, not pushes)

    @classmethod
    def from_jim(cls, group: dict[str, Any]) -> GroupInfo:
        members = group.get("members")
        return cls(int(group["group_id"]), str(group["name"]), str(group.get("topic", "")),
                   bool(group.get("announce_only")), group.get("created", 0.0),
                   str(group.get("created_by", "")),
                   members if type(members) is int else None,
                   group.get("owner") if isinstance(group.get("owner"), str) else None,
                   group.get("role") if isinstance(group.get("role"), str) else None)


@dataclass(frozen=True, slots=True)
class GroupCreated:
    """The user was made a member of a new group."""

    group: GroupInfo
    by: str
    time: float


@dataclass(frozen=True, slots=True)
class GroupUpdated:
    """The group's name, topic or ``announce_only`` changed."""

    group: GroupInfo
    by: str
    time: float


@dataclass(frozen=True, slots=True)
class GroupMemberAdded:
    """A member was added (``account_name`` may be the user: then it is a new group for
    it)."""

    group: GroupInfo
    account_name: str
    role: str
    by: str
    time: float


@dataclass(frozen=True, slots=True)
class GroupMemberRemoved:
    """A member left (``reason`` "left") or was removed ("removed"); when
    ``account_name`` is the user, the group is gone for it."""

    group_id: int
    account_name: str
    reason: str
    by: str
    time: float


@dataclass(frozen=True, slots=True)
class GroupRoleChanged:
    group_id: int
    account_name: str
    role: str                           # "owner", "admin" or "member"
    by: str
    time: float


@dataclass(frozen=True, slots=True)
class GroupDeleted:
    group_id: int
    name: str
    by: str
    time: float


GroupEvent = (GroupCreated | GroupUpdated | GroupMemberAdded | GroupMemberRemoved
              | GroupRoleChanged | GroupDeleted)


def group_event_from_jim(message: dict[str, Any]) -> GroupEvent | None:
    """The event record of a group push (None for an action that is not one)."""
    action, by, time = message["action"], str(message["by"]), message.get("time", 0.0)
    if action == "group_created":
        return GroupCreated(GroupInfo.from_jim(message["group"]), by, time)
    if action == "group_updated":
        return GroupUpdated(GroupInfo.from_jim(message["group"]), by, time)
    if action == "group_member_added":
        member = message["member"]
        return GroupMemberAdded(GroupInfo.from_jim(message["group"]),
                                str(member["account_name"]), str(member["role"]), by, time)
    if action == "group_member_removed":
        return GroupMemberRemoved(int(message["group_id"]), str(message["account_name"]),
                                  str(message["reason"]), by, time)
    if action == "group_role_changed":
        return GroupRoleChanged(int(message["group_id"]), str(message["account_name"]),
                                str(message["role"]), by, time)
    if action == "group_deleted":
        return GroupDeleted(int(message["group_id"]), str(message["name"]), by, time)
    return None


GROUP_PUSHES = ("group_created", "group_updated", "group_member_added",
                "group_member_removed", "group_role_changed", "group_deleted")


@dataclass(frozen=True, slots=True)
class GroupUnread:
    unread: int                         # messages by others after the marker (capped)
    mentions: int                       # of which mention the user
    read_up_to: int


@dataclass(frozen=True, slots=True)
class UnreadCounts:
    """The server's unread counts (``get_unread``): only conversations with something
    unread appear; ``direct`` is keyed by account name, ``groups`` by group id."""

    direct: dict[str, tuple[int, int]] = field(default_factory=dict)   # (unread, read_up_to)
    groups: dict[int, GroupUnread] = field(default_factory=dict)

    @classmethod
    def from_jim(cls, reply: dict[str, Any]) -> UnreadCounts:
        direct = {str(item["with"]): (int(item["unread"]), int(item["read_up_to"]))
                  for item in reply.get("direct") or ()}
        groups = {int(item["group_id"]): GroupUnread(int(item["unread"]),
                                                     int(item["mentions"]),
                                                     int(item["read_up_to"]))
                  for item in reply.get("groups") or ()}
        return cls(direct, groups)


