"""What the chat list remembers between runs: unread counts, how far each chat was read,
the last message's preview and time, which chats are muted, and what is known of each
group (name, the user's role, announcement channel or not). No Qt here.

Kept per server and account in ``chats.json`` in the config dir (0600, written
atomically off the reactor thread, a second after a change and on quit), so that the
list shows at once at start, before the server has answered.

The server keeps the read markers (``mark_read``) and tells the unread counts after each
login (`apply_server_counts`): they replace what this file remembered, so counts are
right after a restart and on another computer. Between logins, counting is by message id
(the server numbers messages in one sequence): ``seen`` is the highest incoming message
id already counted, so a message the core delivers twice (after a crash, the last
second's messages can come again) is counted once. The read position per chat is the
highest message id read there.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from twisted.internet import defer

from messenger.client.credentials import write_private_file

STATE_FILE = "chats.json"
PREVIEW = 160                    # characters of the last message kept for the list
FEED = "feed"                    # the broadcast feed's key
NOTICES = "notices"              # the service messages' key


def person_key(name: str) -> str:
    """The key of a direct conversation (names are not case sensitive)."""
    return "@" + name.lower()


def group_key(group_id: int) -> str:
    """The key of a group's conversation."""
    return f"#{group_id}"


def group_id_of(key: str) -> int | None:
    """The group id of a group's key (None for any other key)."""
    if key.startswith("#") and key[1:].isdigit():
        return int(key[1:])
    return None


def _from_json(cls: Any, data: Any) -> Any:
    """A dataclass from the file; a field of the wrong type keeps its default."""
    record = cls()
    if not isinstance(data, dict):
        return record
    for spec in fields(cls):
        value, default = data.get(spec.name), getattr(record, spec.name)
        if isinstance(default, bool) or isinstance(value, bool):
            ok = isinstance(default, bool) and isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float))
            value = float(value) if ok else value
        else:
            ok = isinstance(value, type(default))
        if ok:
            setattr(record, spec.name, value)
    return record


def shown_text(text: str, attachment: Any = None) -> str:
    """A message as the chat list and notifications tell it: its text, or for a file
    without a caption the file's name ("📎 notes.pdf")."""
    if text or attachment is None:
        return text
    name = attachment.get("name") if isinstance(attachment, dict) else \
        getattr(attachment, "name", "")
    return f"📎 {name}" if name else "📎 a file"


def preview_of(text: str) -> str:
    """One line of a message for the chat list."""
    line = " ".join(text.split())
    return line if len(line) <= PREVIEW else line[:PREVIEW - 1] + "…"


@dataclass
class ChatRecord:
    title: str = ""              # the name as registered (people), for the list
    last_read: int = 0           # highest message (or broadcast) id read here
    unread: int = 0
    muted: bool = False
    last_id: int = 0             # id of the newest message shown as the preview
    last_time: float = 0.0       # its time: the chat's last activity
    preview: str = ""
    preview_from: str = ""       # who wrote it ("" when nobody did)
    mentions: int = 0            # unread messages that mention the user (groups)

    @classmethod
    def from_json(cls, data: Any) -> ChatRecord:
        return _from_json(cls, data)


OWNER, ADMIN, MEMBER = "owner", "admin", "member"


@dataclass
class GroupMeta:
    """What the list knows of a group (from ``group_list``, replies and pushes)."""

    group_id: int = 0
    name: str = ""
    topic: str = ""
    announce_only: bool = False
    role: str = MEMBER           # the user's role
    members: int = 0
    owner: str = ""
    created: float = 0.0
    created_by: str = ""
    gone: str = ""               # "removed", "left" or "deleted" once no longer a member

    @property
    def manages(self) -> bool:
        """May add and remove members, change the name, topic and channel mode."""
        return not self.gone and self.role in (OWNER, ADMIN)

    @property
    def can_post(self) -> bool:
        """Only the owner and admins post in an announcement channel."""
        return not self.gone and (not self.announce_only or self.role in (OWNER, ADMIN))

    def update(self, info: Any) -> None:
        """Take what a `GroupInfo` (a push or a reply) says; fields it lacks stay."""
        self.group_id, self.name = info.group_id, info.name
        self.topic, self.announce_only = info.topic, info.announce_only
        self.created = float(info.created or self.created)
        self.created_by = info.created_by or self.created_by
        if info.members is not None:
            self.members = info.members
        if info.owner is not None:
            self.owner = info.owner
        if info.role is not None:
            self.role = info.role

    @classmethod
    def from_json(cls, data: Any) -> GroupMeta:
        return _from_json(cls, data)


@dataclass
class ChatState:
    """One account's chats on one server."""

    seen: int = 0                # highest incoming message id counted
    chats: dict[str, ChatRecord] = field(default_factory=dict)
    groups: dict[str, GroupMeta] = field(default_factory=dict)     # by chat key

    def record(self, key: str) -> ChatRecord:
        record = self.chats.get(key)
        if record is None:
            record = self.chats[key] = ChatRecord()
        return record

    def group(self, group_id: int) -> GroupMeta:
        key = group_key(group_id)
        meta = self.groups.get(key)
        if meta is None:
            meta = self.groups[key] = GroupMeta(group_id, f"Group {group_id}")
        return meta

    def forget(self, key: str) -> None:
        """A chat removed from the list (a group the user is no longer in)."""
        self.chats.pop(key, None)
        self.groups.pop(key, None)

    def incoming(self, key: str, msg_id: int, time: float, sender: str, text: str,
                 reading: bool, mention: bool = False, count: bool = True) -> bool:
        """A message to us; True when it is new and unread (worth a notification).
        ``count`` False: the server's counts include it already (a synced message after
        the counts came): not counted again, but announced when the server counted
        something unread in this chat (it is one of those)."""
        record = self.record(key)
        self._preview(record, msg_id, time, sender, text)
        if msg_id <= self.seen:
            return False                 # counted before (delivered again after a crash)
        self.seen = msg_id
        if reading or msg_id <= record.last_read:
            record.last_read = max(record.last_read, msg_id)
            return False
        if not count:
            return record.unread > 0
        record.unread += 1
        record.mentions += mention
        return True

    def apply_server_counts(self, listed: dict[str, tuple[int, int, int]],
                            keep: Collection[str] = ()) -> list[str]:
        """The server's unread counts after a login, ``{key: (unread, mentions,
        read_up_to)}`` for the conversations with something unread, replace the
        remembered ones; every other conversation is read. Chats in ``keep`` (a marker
        of theirs is on its way) keep their own. Returns the keys this computer has read
        further than the server knows (read while offline): they keep their own counts,
        and their markers are to be sent."""
        ahead = []
        listed = {key: value for key, value in listed.items() if key not in keep}
        for key, record in self.chats.items():
            if key.startswith(("@", "#")) and key not in listed and key not in keep:
                record.unread = record.mentions = 0
                record.last_read = max(record.last_read, record.last_id)
        for key, (unread, mentions, read_up_to) in listed.items():
            record = self.record(key)
            if record.last_read > read_up_to:
                ahead.append(key)
                continue
            record.unread, record.mentions, record.last_read = unread, mentions, read_up_to
        return ahead

    def outgoing(self, key: str, msg_id: int, time: float, sender: str, text: str) -> None:
        """Our own message, stored: the chat's newest activity, and read up to it (who
        writes has read what came before, as in every messenger)."""
        record = self.record(key)
        self._preview(record, msg_id, time, sender, text)
        if msg_id > record.last_read:
            record.last_read = msg_id
            record.unread = record.mentions = 0

    def broadcast(self, broadcast_id: int, time: float, sender: str, text: str,
                  reading: bool, own: bool = False) -> bool:
        """A post pushed to the feed; True when it is new and unread (own posts never
        are)."""
        record = self.record(FEED)
        new = broadcast_id > max(record.last_id, record.last_read)
        self._preview(record, broadcast_id, time, sender, text)
        if not new or reading or own:
            record.last_read = max(record.last_read, broadcast_id)
            return False
        record.unread += 1
        return True

    def broadcast_page(self, posts: list[tuple[int, float, str, str]], reading: bool,
                       me: str) -> int:
        """A page the feed loaded, ``(id, time, sender, text)`` each; how many of them
        are new and unread. They count only when this account has seen the feed before
        (then they came while the program was closed): on a first start, old posts are
        history, not news."""
        record = self.record(FEED)
        seen_before = record.last_id > 0
        counted = 0
        for broadcast_id, time, sender, text in sorted(posts):
            own = sender.lower() == me.lower()
            if seen_before:
                counted += self.broadcast(broadcast_id, time, sender, text, reading, own)
            else:
                self._preview(record, broadcast_id, time, sender, text)
                record.last_read = max(record.last_read, broadcast_id)
        return counted

    def note(self, key: str, msg_id: int, time: float, sender: str, text: str) -> bool:
        """A message seen in a history page: the preview if it is the chat's newest
        (counts nothing); True when the preview changed."""
        record = self.record(key)
        if msg_id <= record.last_id:
            return False
        self._preview(record, msg_id, time, sender, text)
        return True

    def read(self, key: str) -> bool:
        """The chat was read to its end; True when that changed anything."""
        record = self.chats.get(key)
        if record is None or (not record.unread and record.last_read >= record.last_id):
            return False
        record.unread = record.mentions = 0
        record.last_read = max(record.last_read, record.last_id)
        return True

    def set_muted(self, key: str, muted: bool) -> None:
        self.record(key).muted = muted

    @staticmethod
    def _preview(record: ChatRecord, msg_id: int, time: float, sender: str,
                 text: str) -> None:
        if msg_id >= record.last_id:
            record.last_id, record.last_time = msg_id, time
            record.preview, record.preview_from = preview_of(text), sender

    def to_json(self) -> dict[str, Any]:
        return {"seen": self.seen,
                "chats": {key: asdict(record) for key, record in self.chats.items()},
                "groups": {key: asdict(meta) for key, meta in self.groups.items()}}

    @classmethod
    def from_json(cls, data: Any) -> ChatState:
        if not isinstance(data, dict):
            return cls()
        seen = data.get("seen")
        chats = data.get("chats") if isinstance(data.get("chats"), dict) else {}
        groups = data.get("groups") if isinstance(data.get("groups"), dict) else {}
        return cls(seen if isinstance(seen, int) and not isinstance(seen, bool) else 0,
                   {str(key): ChatRecord.from_json(value) for key, value in chats.items()},
                   {str(key): GroupMeta.from_json(value) for key, value in groups.items()
                    if group_id_of(str(key)) is not None})


class ChatStateFile:
    """``chats.json``: the `ChatState` of every account this config dir has seen."""

    def __init__(self, path: Path, accounts: dict[str, ChatState] | None = None) -> None:
        self.path = path
        self.accounts = accounts if accounts is not None else {}

    @staticmethod
    def key(address: str, account: str) -> str:
        return f"{address} {account.lower()}"

    def state_for(self, address: str, account: str) -> ChatState:
        key = self.key(address, account)
        state = self.accounts.get(key)
        if state is None:
            state = self.accounts[key] = ChatState()
        return state

    def render(self) -> bytes:
        data = {"version": 1, "accounts": {key: state.to_json()
                                           for key, state in self.accounts.items()}}
        return json.dumps(data, separators=(",", ":"), sort_keys=True).encode("utf-8")

    def save(self, run_blocking: Any) -> defer.Deferred[None]:
        """Write the file off the reactor thread (0600, atomically)."""
        return run_blocking(write_private_file, self.path, self.render())


def load_chat_state(config_dir: Path) -> ChatStateFile:
    """Read ``chats.json`` (blocking: call through a thread). A missing or damaged file
    gives an empty state: the worst outcome is unread counts starting again at zero."""
    path = Path(config_dir) / STATE_FILE
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return ChatStateFile(path)
    accounts = data.get("accounts") if isinstance(data, dict) else None
    if not isinstance(accounts, dict):
        return ChatStateFile(path)
    return ChatStateFile(path, {str(key): ChatState.from_json(value)
                                for key, value in accounts.items()})
