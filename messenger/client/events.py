"""What the client core tells its front ends: event records and the observer registry.

Every observer is a callable of one argument, the event record of its kind, called on the
reactor thread. A front end subscribes with `MessengerClient.subscribe(kind, callback)`;
the Qt bridge turns each kind into a signal. An observer that raises is logged and the
others still run: a broken window cannot stop the client.

Kinds and their records:

===============  =====================================================================
``state``        `ConnectionState`: connecting, handshaking, ..., reconnecting in N s
``message``      `IncomingMessage`: a direct or group message, each ``msg_id`` exactly
                 once, in increasing ``msg_id`` order (live pushes and sync merged)
``message_status``  `messenger.client.outbox.OutgoingMessage`: an own message changed
                 status (pending, acked with its ``msg_id``, or failed)
``presence``     `PresenceChange`: a contact went online, away or offline, or its
                 account was deleted (status ``deleted``)
``broadcast``    `Broadcast`: a premium user's post to everyone
``account``      `AccountInfo`: the logged-in account (after login, and when an admin
                 changes its roles)
``notice``       `Notice`: a server notice (e.g. "your account was locked")
``call``         `CallEvent`: ``call_ring``, ``call_start`` or ``call_end``
``server_key``   `ServerKeyEvent`: a server key was pinned for the first time or replaced
``transfer_progress``  `messenger.client.transfers.Transfer`: an upload or download
                 moved on (``done`` of ``size`` bytes), or is waiting for a connection
``transfer_done``  the same record, finished (``file_id``; for ``send_file`` also
                 ``message``, the acknowledgement of the message that carries the file)
``transfer_failed``  the same record, given up (``error``: a typed error; cancelled
                 ones have `TransferCancelled`)
``group``        a change to one of the user's groups: `GroupCreated`, `GroupUpdated`,
                 `GroupMemberAdded`, `GroupMemberRemoved`, `GroupRoleChanged`,
                 `GroupDeleted` (`messenger.client.groupevents`)
``unread``       `UnreadCounts`: the server's unread counts, after every login
``receipt``      `messenger.client.receipts.ReceiptUpdate`: another user has received or
                 read a conversation further (the ticks of own messages)
``typing``       `messenger.client.typing.TypingEvent`: someone started or stopped
                 typing in a conversation
``message_changed``  `messenger.client.edits.MessageChange`: a message edited or deleted
                 for everyone (pushed, or caught up after a login)
``push``         the raw JIM dict of every push, known or not (for tools and debugging)
===============  =====================================================================
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from twisted.logger import Logger

from messenger.wire.jim import MAX_FILE_SIZE, MAX_SERVER_PAYLOAD

# -- connection states --------------------------------------------------------------------

class State(enum.StrEnum):
    """The connection as a front end sees it (docs/CLIENT.md, section 3)."""

    OFFLINE = "offline"                # not started, or stopped / logged out
    CONNECTING = "connecting"          # TCP (or TLS) connection being made
    HANDSHAKING = "handshaking"        # HMAC challenge and key exchange
    LOGGING_IN = "logging_in"          # resume / authenticate / register in flight
    SYNCING = "syncing"                # logged in; fetching what arrived while away
    ONLINE = "online"                  # logged in and caught up
    RECONNECTING = "reconnecting"      # waiting ``retry_in`` seconds before the next attempt
    LOGIN_REQUIRED = "login_required"  # no usable token: a password login is needed
    FAILED = "failed"                  # stopped trying: ``reason`` says why (key changed, ...)


EVENT_KINDS = ("state", "message", "message_status", "presence", "broadcast", "account",
               "notice", "call", "server_key", "group", "unread", "transfer_progress",
               "transfer_done", "transfer_failed", "receipt", "typing", "push",
               "message_changed")


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """One observation of the connection."""

    name: State
    reason: str | None = None           # why we are here (for reconnecting/failed/...)
    retry_in: float | None = None       # reconnecting: seconds until the next attempt
    retry_at: float | None = None       # reconnecting: clock time of the next attempt
    attempt: int = 0                    # reconnecting: failed attempts in a row
    error: BaseException | None = field(default=None, compare=False)  # a typed error

    @property
    def logged_in(self) -> bool:
        return self.name in (State.SYNCING, State.ONLINE)

    def __str__(self) -> str:
        text = str(self.name).replace("_", " ")
        if self.name == State.RECONNECTING and self.retry_in is not None:
            text = f"reconnecting in {self.retry_in:.1f} s"
        if self.reason:
            text += f" ({self.reason})"
        return text


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """The limits the server announces in its login reply (``limits``), so that the
    client refuses locally what the server would refuse; the defaults stand until then
    (and for a server that announces none)."""

    max_frame: int = 128 * 1024         # bytes of a sealed client->server frame
    max_body: int = 16 * 1024           # bytes of UTF-8 in a message or broadcast
    max_payload: int = MAX_SERVER_PAYLOAD  # bytes of JSON in a server->client frame
    max_file_size: int = 100 * 1024 * 1024  # bytes of one file (uploads)

    @classmethod
    def from_reply(cls, reply: dict[str, Any]) -> ServerLimits:
        """The limits of a login reply; a missing or nonsensical value keeps its default
        (an unknown key is ignored)."""
        limits = reply.get("limits")
        if not isinstance(limits, dict):
            return cls()
        default = cls()
        values = {}
        for name, ceiling in (("max_frame", MAX_SERVER_PAYLOAD * 64),
                              ("max_body", MAX_SERVER_PAYLOAD * 64),
                              ("max_payload", MAX_SERVER_PAYLOAD * 64),
                              ("max_file_size", MAX_FILE_SIZE)):
            value = limits.get(name)
            ok = type(value) is int and 0 < value <= ceiling
            values[name] = value if ok else getattr(default, name)
        return cls(**values)


# -- pushes -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Attachment:
    """The file a message carries (docs/PROTOCOL.md, "Attachments"). Images have
    ``width``, ``height`` and a ``thumbnail`` (base64 JPEG, PNG, ...), made by the
    sender: decode it only with `messenger.client.images.decode_thumbnail`."""

    file_id: int
    name: str
    size: int
    mime: str
    sha256: str
    width: int | None = None
    height: int | None = None
    thumbnail: str | None = None

    @property
    def is_image(self) -> bool:
        return self.mime.startswith("image/") and self.width is not None

    @classmethod
    def from_jim(cls, value: Any) -> Attachment | None:
        """The attachment of a message, or None when there is none or it is malformed."""
        if type(value) is not dict:
            return None
        try:
            file_id, size = value["file_id"], value["size"]
            name, mime, sha256 = value["name"], value["mime"], value["sha256"]
        except KeyError:
            return None
        if type(file_id) is not int or type(size) is not int or not all(
                isinstance(text, str) for text in (name, mime, sha256)):
            return None
        width, height, thumb = value.get("width"), value.get("height"), value.get("thumbnail")
        return cls(file_id, name, size, mime, sha256,
                   width if type(width) is int else None,
                   height if type(height) is int else None,
                   thumb if isinstance(thumb, str) else None)


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A message to the user: direct (``recipient`` is the user) or in a group
    (``group`` is its id, ``recipient`` None); both share one ``msg_id`` sequence."""

    msg_id: int
    time: float
    sender: str
    recipient: str | None
    text: str
    from_sync: bool = False             # fetched by sync (arrived while away), not pushed
    group: int | None = None            # the group's id, for a group message
    mentions: tuple[str, ...] = ()      # members written as @name (group messages)
    attachment: Attachment | None = None  # the file it carries, if any
    reply_to: int | None = None         # the msg_id this one quotes (same conversation)
    edited: float | None = None         # when its author last edited it
    deleted: float | None = None        # when it was deleted for everyone (text "")

    @classmethod
    def from_jim(cls, message: dict[str, Any], from_sync: bool = False) -> IncomingMessage:
        attachment = Attachment.from_jim(message.get("attachment"))
        group = message.get("group")
        extra = (_int_or_none(message.get("reply_to")), _number_or_none(message.get("edited")),
                 _number_or_none(message.get("deleted")))
        if group is None:
            return cls(message["msg_id"], message["time"], message["from"], message["to"],
                       message["message"], from_sync, None, (), attachment, *extra)
        return cls(message["msg_id"], message["time"], message["from"], None,
                   message["message"], from_sync, group,
                   tuple(str(name) for name in message.get("mentions") or ()), attachment,
                   *extra)

    def mentions_of(self, account_name: str) -> bool:
        """Does this group message mention ``account_name`` (a client highlights and
        notifies those, even in a muted conversation)?"""
        wanted = account_name.lower()
        return any(name.lower() == wanted for name in self.mentions)


def _int_or_none(value: Any) -> int | None:
    return value if type(value) is int else None


def _number_or_none(value: Any) -> float | None:
    return value if type(value) in (int, float) else None


@dataclass(frozen=True, slots=True)
class PresenceChange:
    account_name: str
    status: str                         # "online", "away", "offline"; "deleted": the
    time: float                         # account is gone (``contact_deleted``)


@dataclass(frozen=True, slots=True)
class Broadcast:
    broadcast_id: int
    time: float
    sender: str
    text: str

    @classmethod
    def from_jim(cls, message: dict[str, Any]) -> Broadcast:
        return cls(message["broadcast_id"], message["time"], message["from"],
                   message["message"])


@dataclass(frozen=True, slots=True)
class AccountInfo:
    account_name: str
    email: str
    admin: bool
    premium: bool

    @classmethod
    def from_jim(cls, user: dict[str, Any]) -> AccountInfo:
        return cls(user["account_name"], user.get("email", ""), bool(user.get("admin")),
                   bool(user.get("premium")))


@dataclass(frozen=True, slots=True)
class Notice:
    level: int                          # 100 basic, 101 important; 4xx for an error notice
    message: str
    time: float


@dataclass(frozen=True, slots=True)
class CallEvent:
    kind: str                           # "call_ring", "call_start" or "call_end"
    fields: dict[str, Any]              # the push as received (call_id, from, key, ...)


@dataclass(frozen=True, slots=True)
class ServerKeyEvent:
    address: str                        # "host:port"
    fingerprint: str                    # "sha256:..."
    first_use: bool                     # nothing was pinned: this key is now
    replaced: str | None = None         # the fingerprint it replaced (accept_new_key)


# -- the registry -------------------------------------------------------------------------

Observer = Callable[[Any], None]


class Observers:
    """Callbacks by event kind. ``subscribe`` returns a function that unsubscribes.

    Events emitted inside `held` (a state machine's transition) are queued and delivered,
    in order, once the outermost held block ends: an observer always sees a finished
    transition, and may call any client method (``stop`` included) without finding the
    machine half-way. Outside `held`, `emit` delivers at once.
    """

    log = Logger()

    def __init__(self) -> None:
        self._by_kind: dict[str, tuple[Observer, ...]] = {kind: () for kind in EVENT_KINDS}
        self._depth = 0
        self._queue: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._flushing = False

    def subscribe(self, kind: str, callback: Observer) -> Callable[[], None]:
        if kind not in self._by_kind:
            raise ValueError(f"unknown event kind {kind!r}; known: {', '.join(EVENT_KINDS)}")
        self._by_kind[kind] = self._by_kind[kind] + (callback,)

        def unsubscribe() -> None:
            current = self._by_kind[kind]
            if callback in current:
                position = current.index(callback)
                self._by_kind[kind] = current[:position] + current[position + 1:]
        return unsubscribe

    def wanted(self, kind: str) -> bool:
        return bool(self._by_kind[kind])

    def emit(self, kind: str, event: Any) -> None:
        if kind not in self._by_kind:
            raise ValueError(f"unknown event kind {kind!r}")
        self.later(self._deliver, kind, event)

    def later(self, fn: Callable[..., None], *args: Any) -> None:
        """Call ``fn(*args)`` in turn with the events: after those emitted before it."""
        self._queue.append((fn, args))
        if self._depth == 0:
            self._flush()

    @contextmanager
    def held(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._flush()

    def _flush(self) -> None:
        if self._flushing:
            return                      # the loop below delivers it, in order
        self._flushing = True
        try:
            while self._queue and self._depth == 0:
                fn, args = self._queue.popleft()
                fn(*args)
        finally:
            self._flushing = False

    def _deliver(self, kind: str, event: Any) -> None:
        for callback in self._by_kind[kind]:  # a tuple: (un)subscribing meanwhile is safe
            try:
                callback(event)
            except Exception:
                self.log.failure("Observer {callback!r} of {kind} events failed",
                                 callback=callback, kind=kind)
